"""ONNX export: one static-shape, self-contained file that computes what the torch model computes."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

from hwnas.hardware.export import export_onnx, onnx_matches_torch
from hwnas.utils.errors import CandidateFailed


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(8, 4, 1),
    )


def test_export_is_static_self_contained_and_named(tmp_path):
    model = tiny_net()
    model.train()
    path = export_onnx(model, (1, 3, 16, 16), tmp_path / "sub" / "m.onnx")
    assert path.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]  # no external data, no temp
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["input"]
    assert [o.name for o in graph.output] == ["logits"]
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 16, 16]
    assert model.training  # the caller's mode is restored


def test_export_matches_torch(tmp_path):
    model = tiny_net().eval()
    path = export_onnx(model, (1, 3, 16, 16), tmp_path / "m.onnx")
    assert onnx_matches_torch(model, path, torch.randn(1, 3, 16, 16)) < 1e-4


def test_export_is_quiet(tmp_path, capsys):
    export_onnx(tiny_net(), (1, 3, 8, 8), tmp_path / "m.onnx")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


class Broken(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


def test_export_failure_is_candidate_failed(tmp_path):
    with pytest.raises(CandidateFailed, match="export failed"):
        export_onnx(Broken(), (1, 3, 8, 8), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())

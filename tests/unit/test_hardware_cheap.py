"""Cheap metrics are counted on the real model, and match hand formulas."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.hardware.cheap import (
    cheap_metrics,
    count_macs,
    count_params,
    peak_activation_bytes,
    peak_activation_bytes_onnx,
)
from hwnas.hardware.export import export_onnx


def test_conv_macs_by_hand():
    conv = nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1)
    # out 32 x 8 x 8, each a dot product of 16 * 3 * 3 inputs
    assert count_macs(conv, (1, 16, 16, 16)) == 32 * 8 * 8 * 16 * 3 * 3


def test_grouped_linear_and_transposed():
    assert count_macs(nn.Conv2d(16, 16, 3, padding=1, groups=16), (1, 16, 8, 8)) == 16 * 8 * 8 * 9
    assert count_macs(nn.Linear(10, 5), (2, 10)) == 2 * 5 * 10
    assert count_macs(nn.ConvTranspose2d(4, 2, 2, stride=2), (1, 4, 3, 3)) == 4 * 3 * 3 * 2 * 4


class FunctionalUp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def test_bilinear_upsampling_is_counted_as_module_or_function():
    expected = 4 * (1 * 3 * 8 * 8)  # 4 neighbours per output element
    assert count_macs(FunctionalUp(), (1, 3, 4, 4)) == expected
    assert count_macs(nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 4, 4)) == expected
    assert count_macs(nn.Upsample(scale_factor=2, mode="nearest"), (1, 3, 4, 4)) == 0


class Skip(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + x


def test_peak_activation_liveness_sees_skip_connections(tmp_path):
    shape = (1, 8, 16, 16)
    one = 8 * 16 * 16 * 4
    assert peak_activation_bytes(Skip(), shape) == 2 * one  # per layer: input + output
    path = export_onnx(Skip(), shape, tmp_path / "skip.onnx")
    assert peak_activation_bytes_onnx(path) == 3 * one  # x is held for the add


def test_cheap_metrics_dict():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
    m = cheap_metrics(model, (1, 3, 4, 4))
    assert m["params"] == count_params(model) == 3 * 4 + 4
    assert m["macs"] == 4 * 4 * 4 * 3 and m["flops"] == 2 * m["macs"]
    assert m["peak_act_mb"] > 0


class PaddedSkip(Skip):
    """``Skip`` with explicit pads: the exporter computes the pads in a subgraph shape inference
    cannot read, which left every later tensor's size unknown (counted as 0) before folding."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(8, 8, 3))
        self.b = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(8, 8, 3))


def test_peak_activation_liveness_sees_through_explicit_pads(tmp_path):
    shape = (1, 8, 16, 16)
    one, padded = 8 * 16 * 16 * 4, 8 * 18 * 18 * 4
    path = export_onnx(PaddedSkip(), shape, tmp_path / "padded.onnx")
    assert peak_activation_bytes_onnx(path) == 2 * one + padded  # x held, a's output, its padded copy

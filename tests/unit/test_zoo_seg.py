"""The written-out segmentation and SR graphs match Qualcomm's published sizes and output shapes.

Their sources are not importable offline, so the manifest's parameter count (or, where that figure
disagrees with the float model's size, the size) is the only check that the graph is the one timed.
"""

from __future__ import annotations

import pytest
import torch

from hwnas.hardware.device_data import package_dir, published_fp32_params, published_params
from hwnas.hardware.zoo_seg import BUILDERS as SEG
from hwnas.hardware.zoo_sr import BUILDERS as SR

#: model id -> (reduced input, expected output shape, output dtype)
CASES = {
    "deeplabv3_plus_mobilenet": ((1, 3, 65, 65), (1, 65, 65), torch.uint8),
    "pspnet": ((1, 3, 33, 33), (1, 150, 33, 33), torch.float32),
    "ddrnet23_slim": ((1, 3, 128, 256), (1, 19, 16, 32), torch.float32),
    "sesr_m5": ((1, 3, 16, 16), (1, 3, 64, 64), torch.float32),
    "xlsr": ((1, 3, 16, 16), (1, 3, 64, 64), torch.float32),
}

#: DDRNet-23-slim's manifest says 6.13M parameters, but its float size (21.7 MB, i.e. MiB of fp32)
#: is 5.69M parameters, the figure the DDRNet paper gives for the segmentation network; check the size.
BY_SIZE = {"ddrnet23_slim"}


def _published(model_id: str) -> float:
    """Parameters the manifest implies, from its count or (for ``BY_SIZE``) its fp32 size in MiB."""
    return published_fp32_params(model_id) if model_id in BY_SIZE else published_params(model_id)


def _build(model_id: str) -> torch.nn.Module:
    return (SEG.get(model_id) or SR[model_id])().eval()


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_parameters_match_manifest(model_id: str) -> None:
    ours = sum(p.numel() for p in _build(model_id).parameters())
    assert ours == pytest.approx(_published(model_id), rel=0.03)


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_forward_shape(model_id: str) -> None:
    shape, expected, dtype = CASES[model_id]
    with torch.no_grad():
        out = _build(model_id)(torch.rand(shape))
    assert tuple(out.shape) == expected
    assert out.dtype == dtype


def test_builders_are_keyed_by_model_id() -> None:
    for model_id in SEG:
        assert (package_dir() / "models" / model_id / "manifest.yaml").is_file()

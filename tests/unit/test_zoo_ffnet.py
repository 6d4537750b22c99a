"""The written-out FFNet graphs match Qualcomm's published sizes and output strides.

FFNet's source is cloned by ``qai-hub-models`` at run time, so the manifest's parameter count is the
only offline check that the backbone depth, widths and head are the ones the device timed; the
forward at a reduced size checks the stride (1/8 for the full-res models, 1/4 for the low-res ones).
"""

from __future__ import annotations

import pytest
import torch

from hwnas.hardware.device_data import published_params
from tests.conftest import device_data_or_skip

PKG = device_data_or_skip()

from hwnas.hardware.zoo_ffnet import BUILDERS  # noqa: E402 - after the skip, like the other zoo tests

#: model id -> (smallest input whose coarsest branch is 1x1, expected logits shape)
CASES = {
    "ffnet_40s": ((1, 3, 64, 128), (1, 19, 8, 16)),
    "ffnet_54s": ((1, 3, 64, 128), (1, 19, 8, 16)),
    "ffnet_78s": ((1, 3, 64, 128), (1, 19, 8, 16)),
    "ffnet_78s_lowres": ((1, 3, 32, 64), (1, 19, 8, 16)),
    "ffnet_122ns_lowres": ((1, 3, 32, 64), (1, 19, 8, 16)),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_model_has_a_case() -> None:
    assert set(BUILDERS) == set(CASES)
    for model_id in BUILDERS:
        assert (PKG / "models" / model_id / "manifest.yaml").is_file()


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_parameters_match_manifest_and_stride(model_id: str) -> None:
    model = BUILDERS[model_id]().eval()
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(published_params(model_id), rel=0.03)
    shape, expected = CASES[model_id]
    with torch.no_grad():
        out = model(torch.rand(shape))
    assert tuple(out.shape) == expected

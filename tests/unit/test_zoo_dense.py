"""The written-out PIDNet, MiDaS and SINet graphs match Qualcomm's published sizes and output shapes.

Their sources are cloned at run time, so the published size is the check that the graph is the one
timed. Two manifest counts disagree with their own model and are replaced by a better-grounded figure
(``REFERENCE``); the forward at a reduced size checks the wiring without the published resolution's cost.
"""

from __future__ import annotations

import functools

import pytest
import torch

from hwnas.hardware.device_data import published_params
from hwnas.utils.errors import DataError
from tests.conftest import device_data_or_skip

PKG = device_data_or_skip()

from hwnas.hardware.zoo_dense import BUILDERS  # noqa: E402 - documented next to the wheel's models

#: model id -> (reduced input, expected output shape)
CASES = {
    "pidnet": ((1, 3, 64, 128), (1, 19, 8, 16)),  # logits at 1/8, as published
    "midas": ((1, 3, 64, 64), (1, 1, 64, 64)),  # the patch keeps the channel axis
    "sinet": ((1, 3, 64, 64), (1, 2, 64, 64)),
}

#: PIDNet's manifest says 8.06M parameters, but its float size (29.1 MB, MiB of fp32) is 7.63M, the
#: PIDNet-S figure of the paper; SINet's says 91.9K where the SINet paper (arXiv 1911.09099) gives 86.9K,
#: which this graph has to the hundred.
REFERENCE = {"pidnet": 29.1 * 2**20 / 4, "sinet": 86.9e3}


@functools.cache
def _build(model_id: str) -> torch.nn.Module:
    """Built once per session: the MiDaS encoder comes from timm, whose import is the slow part."""
    try:
        return BUILDERS[model_id]().eval()
    except DataError as err:  # pragma: no cover - MiDaS's encoder needs the pinned timm
        pytest.skip(str(err))


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_parameters_match_published_size(model_id: str) -> None:
    ours = sum(p.numel() for p in _build(model_id).parameters())
    assert ours == pytest.approx(REFERENCE.get(model_id, published_params(model_id)), rel=0.03)
    assert ours == pytest.approx(published_params(model_id), rel=0.06)


@pytest.mark.parametrize("model_id", sorted(CASES))
def test_forward_shape(model_id: str) -> None:
    shape, expected = CASES[model_id]
    with torch.no_grad():
        out = _build(model_id)(torch.rand(shape))
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()


def test_builders_are_keyed_by_model_id() -> None:
    assert set(BUILDERS) == set(CASES)
    for model_id in BUILDERS:
        assert (PKG / "models" / model_id / "manifest.yaml").is_file()

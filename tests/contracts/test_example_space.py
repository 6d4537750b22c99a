"""The example of ``docs/plugins.md``, run as written: a user's own search space in a dozen lines, checked by
the whole :class:`~hwnas.testing.SearchSpaceContract` (and the sound twin of the broken spaces of
``test_contracts_catch_breakage.py``)."""

from __future__ import annotations

import pytest
from torch import nn

from hwnas.search_space.base import SearchSpace
from hwnas.testing import SearchSpaceContract


class TinySpace(SearchSpace):
    name = "tiny"

    def choices(self):
        return {"width": [8, 16], "depth": [1, 2, 3]}

    def baseline(self):
        return self.make({"width": 8, "depth": 2})

    def build(self, spec, *, num_classes, in_channels=3):
        w = spec["width"]
        convs = [nn.Conv2d(in_channels if i == 0 else w, w, 3, padding=1) for i in range(spec["depth"])]
        return nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, num_classes))


class TestTinySpace(SearchSpaceContract):
    @pytest.fixture
    def space(self):
        return TinySpace()

"""The supernet contracts (:mod:`hwnas.testing.supernets`) on every ``conf/search_space`` option that has
one: ``mixed_supernet`` (gradient strategies) and ``supernet`` (``evaluator=supernet``'s elastic one).

Which spaces have which is read from the spaces themselves. A mixed supernet is built tiny: any of
``TINY`` its ``mixed_supernet`` accepts is passed (a DARTS search network of 4 channels and 3 cells);
otherwise its own sizes apply (the hourglass's fixed gradient widths).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hwnas.search_space.base import SearchSpace
from hwnas.testing import DifferentiableSupernetContract, ElasticSupernetContract
from hwnas.utils.config import build_space
from tests.contracts.options import compose, options

#: Size arguments of a mixed supernet, passed where its factory takes them.
TINY = {"channels": 4, "layers": 3}
NUM_CLASSES = 5


def _spaces() -> dict[str, SearchSpace]:
    tmp = Path("/nonexistent-contract-run")  # composing only: nothing is written
    return {o: build_space(compose([f"search_space={o}"], tmp)) for o in options("search_space")}


SPACES = _spaces()
MIXED = [o for o, s in SPACES.items() if callable(getattr(s, "mixed_supernet", None))]
ELASTIC = [o for o, s in SPACES.items() if callable(getattr(s, "supernet", None))]


def test_the_supernets_are_found() -> None:
    assert len(MIXED) >= 2 and ELASTIC, (MIXED, ELASTIC)


class TestMixedSupernets(DifferentiableSupernetContract):
    @pytest.fixture(params=MIXED)
    def space(self, request) -> SearchSpace:
        return SPACES[request.param]

    @pytest.fixture
    def supernet(self, space: SearchSpace):
        accepted = inspect.signature(space.mixed_supernet).parameters
        tiny = {k: v for k, v in TINY.items() if k in accepted}
        return space.mixed_supernet(num_classes=NUM_CLASSES, in_channels=3, **tiny)


class TestElasticSupernets(ElasticSupernetContract):
    @pytest.fixture(params=ELASTIC)
    def supernet(self, request):
        return SPACES[request.param].supernet(num_classes=NUM_CLASSES, in_channels=3)

"""The search-space contract (:class:`hwnas.testing.SearchSpaceContract`) on every ``conf/search_space``
option, built as a search builds it; the forward rule runs at every ``conf/dataset`` option's input shape
and class count (read from its config and class, at the contract tests' tiny size: no files needed)."""

from __future__ import annotations

import pytest
from hydra.utils import get_class

from hwnas.search_space.base import SearchSpace
from hwnas.testing import SearchSpaceContract
from hwnas.utils.config import build_space
from tests.contracts.options import compose, expect_known_break, options


@pytest.fixture(scope="module", params=options("search_space"))
def configured_space(request, tmp_path_factory) -> SearchSpace:
    return build_space(compose([f"search_space={request.param}"], tmp_path_factory.mktemp("space")))


@pytest.fixture(scope="module", params=options("dataset"))
def dataset_io(request, tmp_path_factory) -> tuple[tuple[int, int, int], int]:
    """``((C, H, W), classes)`` the option's datamodule declares."""
    node = compose([f"dataset={request.param}"], tmp_path_factory.mktemp("data")).dataset
    size = node.image_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    channels = node.get("in_channels", get_class(node._target_).in_channels)
    return (int(channels), int(h), int(w)), int(node.num_classes)


#: Rules an option breaks today (reported with the contract work, not fixed by it): strict xfails.
KNOWN_BREAKS: dict[tuple[str, str], str] = {}  # (space, rule) -> why: a strict xfail until it is fixed


class TestConfiguredSpaces(SearchSpaceContract):
    @pytest.fixture(autouse=True)
    def _known_breaks(self, request, configured_space: SearchSpace) -> None:
        expect_known_break(request, configured_space.name, KNOWN_BREAKS)

    @pytest.fixture
    def space(self, configured_space: SearchSpace) -> SearchSpace:
        return configured_space

    @pytest.fixture
    def input_shape(self, dataset_io) -> tuple[int, int, int]:
        return dataset_io[0]

    @pytest.fixture
    def num_classes(self, dataset_io) -> int:
        return dataset_io[1]

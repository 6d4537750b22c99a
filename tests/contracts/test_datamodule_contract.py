"""The datamodule contract (:class:`hwnas.testing.DataModuleContract`) on every ``conf/dataset`` option,
built as a search builds it (the tricks' augmentations injected) at the contract tests' tiny size.

An option whose ``root`` is unset reads files from disk that are not here: it is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hwnas.testing import DataModuleContract
from hwnas.utils.config import build_datamodule
from tests.contracts.options import compose, needs_files, options


class TestConfiguredDataModules(DataModuleContract):
    @pytest.fixture(params=options("dataset"))
    def make_datamodule(self, request, tmp_path) -> Callable[[], Any]:
        cfg = compose([f"dataset={request.param}"], tmp_path)
        reason = needs_files(cfg)
        if reason:
            pytest.skip(f"dataset={request.param}: {reason}")
        return lambda: build_datamodule(cfg)

"""The end-of-run sink contract (:class:`hwnas.testing.RunSinkContract`) on every ``conf/logger`` option,
built as a search builds it: the logger instantiated from its file, its sink from the ``run_sink`` node it
names (``sink_for``). W&B runs in its ``disabled`` mode (``tests/conftest.py``): nothing leaves the machine.
An option that names no ``run_sink`` (CSV) has no end-of-run outputs and is skipped with that reason."""

from __future__ import annotations

from typing import Any

import pytest

from hwnas.callbacks.logger_sinks import sink_for
from hwnas.lit.fit import instantiate_dict
from hwnas.testing import RunSinkContract
from tests.conftest import compose_cfg
from tests.contracts.options import options


class TestConfiguredSinks(RunSinkContract):
    @pytest.fixture(params=options("logger"))
    def sink(self, request, tmp_path, monkeypatch) -> Any:
        monkeypatch.setenv("WANDB_MODE", "disabled")
        monkeypatch.setenv("WANDB_SILENT", "true")
        cfg = compose_cfg("search", [f"logger={request.param}"], tmp_path / "run")
        [logger] = instantiate_dict(cfg.logger)  # as the tasks instantiate them
        built = sink_for(logger)
        if built is None:
            pytest.skip(f"logger={request.param} names no run_sink: it has no end-of-run outputs")
        yield built
        logger.finalize("success")

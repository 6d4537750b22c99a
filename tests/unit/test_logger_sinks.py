"""Which end-of-run sink a logger gets is config: the ``run_sink`` node of its own ``conf/logger`` file.

No class-name strings decide it: a sink named in config is used whatever the logger's class is called, a
logger without a ``run_sink`` (CSV) gets none, and the ``run_sink`` key never reaches Lightning's logger.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger

from hwnas.callbacks.logger_sinks import TensorBoardLogger, TensorBoardSink, WandbSink, sink_for
from hwnas.callbacks.search_logger import SearchLogger
from hwnas.lit.fit import instantiate_dict
from hwnas.search.objectives import Objective
from tests.conftest import CONF

OPTIONS = sorted(p.stem for p in (CONF / "logger").glob("*.yaml"))
#: The sink each shipped option names (None: no end-of-run outputs).
EXPECTED = {"csv": None, "tensorboard": TensorBoardSink, "wandb": WandbSink}
OBJECTIVES = [Objective("val/miou", "maximize"), Objective("hw/latency_ms", "minimize")]


class RecordingSink:
    """A sink that records what it was asked to write (named by config in a test)."""

    calls: list[tuple[str, str]] = []

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def table(self, key: str, df: pd.DataFrame) -> None:
        self.calls.append(("table", key))

    def image(self, key: str, path: Path) -> None:
        self.calls.append(("image", key))

    def scatter(self, key: str, df: pd.DataFrame, *, x: str, y: str, title: str) -> None:
        self.calls.append(("scatter", key))

    def curve(self, key: str, steps: list[int], values: list[float], *, step_name: str) -> None:
        self.calls.append(("curve", key))

    def summary(self, values: dict[str, Any]) -> None:
        self.calls.append(("summary", ",".join(sorted(values))))

    def close(self, status: str) -> None:
        self.calls.append(("close", status))


def test_every_logger_option_is_covered() -> None:
    assert sorted(EXPECTED) == OPTIONS, "a new conf/logger option: say here which sink it brings"


@pytest.mark.parametrize("option", OPTIONS)
def test_each_option_instantiates_a_lightning_logger_with_its_configured_sink(
    option: str, make_cfg: Callable[..., DictConfig]
) -> None:
    cfg = make_cfg("search", [f"logger={option}"])
    [logger] = instantiate_dict(cfg.logger)  # as the tasks instantiate them
    assert isinstance(logger, Logger)
    factory = getattr(logger, "sink_factory", None)
    if EXPECTED[option] is None:
        assert factory is None and sink_for(logger) is None
    else:  # the partial the YAML names (built with the logger at the end of the run)
        assert isinstance(factory, functools.partial) and factory.func is EXPECTED[option]


def test_the_sink_comes_from_config_not_from_the_class_name(tmp_path: Path) -> None:
    """A class named like a backend's logger but without ``run_sink`` gets no sink; a sink named in config
    is used for a logger whatever its class is called."""
    WandbLogger = type("WandbLogger", (), {})  # noqa: N806 - the name the old dispatch matched on
    assert sink_for(WandbLogger()) is None
    logger = TensorBoardLogger(save_dir=tmp_path, name="tb", run_sink=RecordingSink)
    sink = sink_for(logger)
    assert isinstance(sink, RecordingSink) and sink.logger is logger


def test_run_sink_never_reaches_lightning(tmp_path: Path) -> None:
    """Lightning hands unknown keywords to TensorBoard's ``SummaryWriter`` (which refuses them): the
    writer starts, so ``run_sink`` was kept back."""
    logger = TensorBoardLogger(
        save_dir=tmp_path, name="tb", default_hp_metric=False, run_sink=functools.partial(TensorBoardSink)
    )
    logger.log_metrics({"x": 1.0}, step=0)
    sink = sink_for(logger)
    assert isinstance(sink, TensorBoardSink) and sink.writer is logger.experiment
    logger.finalize("success")
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*"))


def test_search_logger_writes_through_the_sink_the_config_names(
    make_cfg: Callable[..., DictConfig],
) -> None:
    RecordingSink.calls = []
    cfg = make_cfg(
        "search",
        ["logger=tensorboard", f"logger.tensorboard.run_sink._target_={__name__}.RecordingSink"],
    )
    slog = SearchLogger(instantiate_dict(cfg.logger), OBJECTIVES, n_trials=2)
    trials = pd.DataFrame({"arch_key": ["a", "b"], "val/miou": [0.5, 0.4], "hw/latency_ms": [2.0, 1.0]})
    slog.log_search(trials, trials, None, {"front_size": 2})
    slog.close("success")
    assert RecordingSink.calls == [
        ("table", "trials"),
        ("table", "pareto"),
        ("scatter", "pareto_front"),
        ("summary", "front_size"),
        ("close", "success"),
    ]


def test_a_logger_node_without_run_sink_is_named_before_the_run(
    make_cfg: Callable[..., DictConfig], caplog: pytest.LogCaptureFixture
) -> None:
    """A run dir saved before the sinks were config (``src/final.py run=<dir>`` reuses its loggers) names
    Lightning's own class and no ``run_sink``: said up front, with the option that brings one."""
    from omegaconf import OmegaConf

    from hwnas.callbacks.logger_sinks import check_logger_config

    shipped = make_cfg("search", ["logger=[csv,tensorboard,wandb]"]).logger
    check_logger_config(shipped)
    assert "run_sink" not in caplog.text
    old = OmegaConf.create(
        {
            "csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "x"},
            "tensorboard": {"_target_": "pytorch_lightning.loggers.TensorBoardLogger", "save_dir": "x"},
        }
    )
    check_logger_config(old)
    [warning] = [r.getMessage() for r in caplog.records if "run_sink" in r.getMessage()]
    assert warning.startswith("logger.tensorboard (TensorBoardLogger) names no run_sink")
    assert "pass logger=tensorboard" in warning

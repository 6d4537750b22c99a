"""Every conf/hardware option instantiates offline; the Lightning callback checks early and logs hw/*."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from hwnas.callbacks.latency import LatencyCallback
from hwnas.hardware.base import Profiler
from hwnas.hardware.estimate import EstimateProfiler
from hwnas.hardware.qai_hub import TOKEN_ENV, QaiHubProfiler
from hwnas.utils.errors import ProfilerUnavailable

CONF = Path(__file__).resolve().parents[2] / "conf"
OPTIONS = sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))


@pytest.mark.parametrize("name", OPTIONS)
def test_every_hardware_option_instantiates_without_network(name, monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    text = (CONF / "hardware" / f"{name}.yaml").read_text()
    assert text.startswith("# ")
    node = OmegaConf.create(
        {
            "paths": {"cache_dir": str(tmp_path), "shared_dir": str(tmp_path)},
            "hardware": OmegaConf.load(CONF / "hardware" / f"{name}.yaml"),
        }
    )
    assert "input_size" in node.hardware and node.hardware.batch_size == 1
    prof = instantiate(node.hardware)
    assert isinstance(prof, Profiler)
    # The phone target measures at its 256x256 deployment resolution; the others at the data size.
    expected = (1, 3, 256, 256) if name == "snapdragon888" else (1, 3, 64, 64)
    assert prof.resolve_input_shape((3, 64, 64)) == expected


class FakeLogger:
    def __init__(self) -> None:
        self.metrics: dict = {}
        self.params: dict = {}

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_hyperparams(self, params):
        self.params.update(params)


class FakeDM:
    def input_shape(self, batch_size: int = 1):
        return (batch_size, 3, 32, 32)

    def calibration_batches(self, n: int, batch_size: int = 1):
        return [np.zeros((batch_size, 3, 32, 32), np.float32)] * n


def test_callback_logs_latency_at_fit_end():
    logger = FakeLogger()
    trainer = SimpleNamespace(datamodule=FakeDM(), loggers=[logger], global_step=7, is_global_zero=True)
    module = SimpleNamespace(model=nn.Conv2d(3, 4, 3))
    cb = LatencyCallback(EstimateProfiler(), arch_key=None)
    cb.setup(trainer, module, "fit")
    cb.on_fit_end(trainer, module)
    assert cb.report is not None and logger.metrics["hw/latency_ms"] == cb.report.median_ms
    assert logger.params["hw/source"] == "estimated"


def test_callback_setup_fails_before_training_without_token(monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    cb = LatencyCallback(QaiHubProfiler(hub=object()))
    with pytest.raises(ProfilerUnavailable):
        cb.setup(SimpleNamespace(), SimpleNamespace(), "fit")

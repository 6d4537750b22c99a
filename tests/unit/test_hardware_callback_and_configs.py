"""Every conf/hardware option instantiates offline; the Lightning callback checks early and logs hw/*, and
``src/train.py`` runs it on the model it trained."""

from __future__ import annotations

import json
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
    # The phone targets (snapdragon888 and the fitted Snapdragon options) measure at the 256x256 deployment
    # resolution; the others at the data size.
    phone = name == "snapdragon888" or "calibration" in node.hardware
    expected = (1, 3, 256, 256) if phone else (1, 3, 64, 64)
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


def test_a_model_the_profiler_cannot_measure_costs_a_warning_not_the_training(tmp_path, caplog):
    from hwnas.hardware.table import TableProfiler

    table = tmp_path / "lat.csv"
    table.write_text("arch,ms\nanother-arch,1.0\n")
    logger = FakeLogger()
    trainer = SimpleNamespace(datamodule=FakeDM(), loggers=[logger], global_step=1, is_global_zero=True)
    cb = LatencyCallback(TableProfiler(table, "ms"), arch_key="not-in-the-table")
    cb.on_fit_end(trainer, SimpleNamespace(model=nn.Conv2d(3, 4, 3)))
    assert cb.report is None and logger.metrics == {}
    assert "not-in-the-table" in caplog.text and "not measured" in caplog.text


# -- src/train.py logs the trained model's latency on hardware= (conf/callbacks/default.yaml) --------------


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No AI Hub token or SNPE SDK: hardware=snapdragon888 (backend auto) resolves to the offline estimate."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))


def test_the_train_config_wires_the_latency_callback_with_the_chosen_hardware(make_cfg, offline):
    from hwnas.tasks.train import _callbacks

    cfg = make_cfg("train", ["hardware=snapdragon888"])
    node = cfg.callbacks.latency
    assert node._target_ == "hwnas.callbacks.latency.LatencyCallback" and node._partial_ is True
    [latency] = [cb for cb in _callbacks(cfg, arch_key="some-key") if isinstance(cb, LatencyCallback)]
    assert latency.profiler.target == "snapdragon888" and latency.arch_key == "some-key"
    off = make_cfg("train", ["hardware=snapdragon888", "callbacks.latency=null"])
    assert not any(isinstance(cb, LatencyCallback) for cb in _callbacks(off, arch_key="k"))


def test_a_short_train_run_logs_the_models_latency_on_the_chosen_hardware(make_cfg, offline):
    """``python src/train.py hardware=snapdragon888`` at debug scale: hw/latency_ms in the CSV logger's
    metrics and in metrics.json (offline, the target's estimate)."""
    import pandas as pd

    from hwnas.tasks import train

    overrides = ["debug=fast", "hardware=snapdragon888", "logger=csv", "export.onnx=false"]
    cfg = make_cfg("train", overrides)
    metrics = train.run(cfg)
    assert metrics["hw/latency_ms"] > 0 and metrics["hw/source"] == "estimated"
    assert metrics["hw/backend"] == "estimate"
    saved = json.loads((Path(cfg.run_dir) / "metrics.json").read_text())
    assert saved["hw/latency_ms"] == metrics["hw/latency_ms"]
    [csv] = Path(cfg.run_dir).glob("csv/version_*/metrics.csv")
    logged = pd.read_csv(csv)["hw/latency_ms"].dropna()
    assert list(logged) == pytest.approx([metrics["hw/latency_ms"]])
    assert "hw/source: estimated" in (csv.parent / "hparams.yaml").read_text()

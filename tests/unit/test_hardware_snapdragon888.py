"""``hardware=snapdragon888 backend=auto`` picks the best route available and says why."""

from __future__ import annotations

import logging

import pytest

from hwnas.hardware.estimate import EstimateProfiler
from hwnas.hardware.qai_hub import TOKEN_ENV, QaiHubProfiler
from hwnas.hardware.snapdragon888 import snapdragon888
from hwnas.hardware.snpe import SnpeProfiler
from hwnas.utils.errors import ConfigError


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    monkeypatch.setattr("hwnas.hardware.snapdragon888.qai_hub_installed", lambda: True)


def _sdk(tmp_path):
    tool = tmp_path / "snpe/bin/x86_64-linux-clang/snpe-onnx-to-dlc"
    tool.parent.mkdir(parents=True)
    tool.touch()
    return str(tmp_path / "snpe")


def _adb(cmd):
    return "List of devices attached\nXYZ\tdevice\n"


def test_auto_prefers_ai_hub_when_configured(clean_env, monkeypatch, caplog):
    monkeypatch.setenv(TOKEN_ENV, "t")
    with caplog.at_level(logging.INFO, logger="hwnas.hardware.snapdragon888"):
        prof = snapdragon888(backend="auto", qai_hub={"device": "Samsung Galaxy S21"})
    assert isinstance(prof, QaiHubProfiler) and prof.target == "snapdragon888"
    (line,) = [r.getMessage() for r in caplog.records]
    assert "-> qai_hub" in line and "token" in line


def test_auto_token_but_no_package_is_not_ai_hub(clean_env, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "t")
    monkeypatch.setattr("hwnas.hardware.snapdragon888.qai_hub_installed", lambda: False)
    assert isinstance(snapdragon888(backend="auto"), EstimateProfiler)


def test_auto_falls_back_to_snpe_with_sdk_and_device(clean_env, tmp_path):
    prof = snapdragon888(backend="auto", snpe={"snpe_root": _sdk(tmp_path), "runner": _adb})
    assert isinstance(prof, SnpeProfiler)


def test_auto_falls_back_to_estimate_and_says_why(clean_env, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="hwnas.hardware.snapdragon888"):
        prof = snapdragon888(backend="auto", input_size=128, estimate={"constants": {"efficiency": 0.2}})
    assert isinstance(prof, EstimateProfiler) and prof.input_size == (128, 128)
    assert prof.constants.efficiency == 0.2
    (line,) = [r.getMessage() for r in caplog.records]
    assert "-> estimate" in line and "no AI Hub token" in line and "SNPE_ROOT" in line


def test_explicit_backend_and_invalid_backend(clean_env):
    assert isinstance(snapdragon888(backend="estimate"), EstimateProfiler)
    assert isinstance(snapdragon888(backend="qai_hub"), QaiHubProfiler)
    with pytest.raises(ConfigError) as err:
        snapdragon888(backend="nnapi")
    assert err.value.key == "hardware.backend" and err.value.choices == [
        "auto",
        "qai_hub",
        "snpe",
        "estimate",
    ]

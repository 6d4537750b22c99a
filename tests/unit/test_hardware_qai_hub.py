"""Qualcomm AI Hub path, tested up to the network boundary with a fake ``qai_hub`` module."""

from __future__ import annotations

import enum
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from hwnas.hardware.qai_hub import TOKEN_ENV, QaiHubProfiler, parse_profile
from hwnas.utils.errors import CandidateFailed, ProfilerUnavailable

SHAPE = (1, 3, 16, 16)

# Real format of InferenceJob.download_profile() (qai-hub 0.56, profile format 1.2).
PROFILE = {
    "execution_summary": {
        "estimated_inference_time": 1830,
        "estimated_inference_peak_memory": 12_582_912,
        "first_load_time": 150_230,
        "warm_load_time": 20_110,
        "all_inference_times": [1850, 1830, 1790, 1910, 1820, 1835, 1801, 1822, 1845, 2100],
    },
    "execution_detail": [
        {"name": "/stem/Conv", "type": "Conv2d", "compute_unit": "NPU", "execution_time": 210},
        {"name": "/up/Resize", "type": "ResizeBilinear", "compute_unit": "NPU", "execution_time": 95},
        {"name": "/head/ArgMax", "type": "ArgMax", "compute_unit": "CPU", "execution_time": 60},
    ],
}


class FakeUserError(Exception):
    pass


class FakeJob:
    def __init__(self, kind: str, n: int, success: bool = True) -> None:
        self.job_id = f"j{kind}{n}"
        self.kind = kind
        self._success = success

    def wait(self):
        return SimpleNamespace(success=self._success, message="device lost" if not self._success else "")

    def get_target_model(self):
        return f"model-of-{self.job_id}"

    def download_profile(self):
        return PROFILE


class FakeHub:
    """Stands in for the qai_hub module; records every call, fails on demand."""

    UserError = FakeUserError

    class QuantizeDtype(enum.Enum):
        INT8 = 1

    def __init__(self, fail_profile: int = 0, exc: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_profile = fail_profile
        self.exc = exc or ConnectionError("503 service unavailable")

    def Device(self, name):  # noqa: N802 - mirrors qai_hub.Device
        return SimpleNamespace(name=name)

    def get_devices(self, name: str = ""):
        self.calls.append(("get_devices", {"name": name}))
        return [SimpleNamespace(name="Samsung Galaxy S21")] if name in ("", "Samsung Galaxy S21") else []

    def submit_quantize_job(self, **kw):
        self.calls.append(("quantize", kw))
        return FakeJob("q", len(self.calls))

    def submit_compile_job(self, **kw):
        self.calls.append(("compile", kw))
        return FakeJob("c", len(self.calls))

    def submit_inference_job(self, **kw):
        self.calls.append(("inference", kw))
        if self.fail_profile:
            self.fail_profile -= 1
            raise self.exc
        return FakeJob("i", len(self.calls))

    def submit_profile_job(self, **kw):  # deprecated: must never be used
        raise AssertionError("submit_profile_job is deprecated")

    @property
    def submitted(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))


@pytest.fixture
def token(monkeypatch, tmp_path):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    monkeypatch.setenv(TOKEN_ENV, "test-token")


def calib():
    return [np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)]


def test_without_token_nothing_is_sent_and_the_error_names_the_setting(no_token):
    hub = FakeHub()
    prof = QaiHubProfiler(hub=hub)
    with pytest.raises(ProfilerUnavailable) as err:
        prof.check()
    msg = str(err.value)
    assert "qai-hub configure --api_token" in msg and TOKEN_ENV in msg
    with pytest.raises(ProfilerUnavailable):
        prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib())
    assert hub.calls == []


def test_client_ini_token_counts(no_token, tmp_path, monkeypatch):
    ini = tmp_path / "client.ini"
    ini.write_text("[api]\napi_token = abc\napi_url = https://workbench.aihub.qualcomm.com\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    QaiHubProfiler(hub=FakeHub()).check()


def test_missing_package_names_the_extra(no_token, monkeypatch):
    monkeypatch.setattr("hwnas.hardware.qai_hub.qai_hub_installed", lambda: False)
    with pytest.raises(ProfilerUnavailable, match=r"pip install -e '\.\[qualcomm\]'"):
        QaiHubProfiler().check()


def test_full_flow_with_fake_hub(token, tmp_path):
    hub = FakeHub()
    prof = QaiHubProfiler(hub=hub, workdir=tmp_path, target_runtime="qnn_dlc", sleep=lambda s: None)
    r = prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib(), arch_key="hg-1")
    assert hub.submitted == ["get_devices", "quantize", "compile", "inference"]
    quant, comp, inf = (kw for name, kw in hub.calls[1:])
    assert (
        quant["calibration_data"]["input"][0].shape == SHAPE and len(quant["calibration_data"]["input"]) == 2
    )
    assert quant["weights_dtype"] is FakeHub.QuantizeDtype.INT8
    assert comp["options"].startswith("--target_runtime qnn_dlc")
    assert comp["model"] == "model-of-jq2" and inf["model"] == "model-of-jc3"
    assert inf["profile"] is True and inf["device"].name == "Samsung Galaxy S21"
    assert r.source == "measured" and r.backend == "qai_hub" and r.precision == "int8"
    assert r.n_samples == 10 and r.median_ms == pytest.approx(1.8325)  # median of the 10 iterations, µs -> ms
    assert r.extra["job_ids"] == {"quantize": "jq2", "compile": "jc3", "inference": "ji4"}
    assert r.extra["n_layers_off_npu"] == 1 and r.extra["layers_off_npu"][0]["name"] == "/head/ArgMax"


def test_transient_errors_retry_with_backoff_then_succeed(token, tmp_path):
    sleeps: list[float] = []
    hub = FakeHub(fail_profile=2)
    prof = QaiHubProfiler(hub=hub, workdir=tmp_path, max_retries=3, backoff_s=5, sleep=sleeps.append)
    prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib())
    assert sleeps == [5, 10]
    assert hub.submitted.count("inference") == 3


def test_persistent_errors_become_a_failed_candidate(token, tmp_path):
    hub = FakeHub(fail_profile=99)
    prof = QaiHubProfiler(hub=hub, workdir=tmp_path, max_retries=2, backoff_s=1, sleep=lambda s: None)
    with pytest.raises(CandidateFailed, match="after 2 attempts"):
        prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib())


def test_user_errors_are_not_retried(token, tmp_path):
    hub = FakeHub(fail_profile=5, exc=FakeUserError("unsupported op"))
    prof = QaiHubProfiler(hub=hub, workdir=tmp_path, sleep=lambda s: pytest.fail("must not back off"))
    with pytest.raises(CandidateFailed, match="rejected: unsupported op"):
        prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib())
    assert hub.submitted.count("inference") == 1


def test_old_profile_format_uses_the_estimate():
    samples, extra = parse_profile(
        {"execution_summary": {"estimated_inference_time": 2500}, "execution_detail": []}
    )
    assert samples == [2.5] and extra["all_on_npu"]
    with pytest.raises(CandidateFailed):
        parse_profile({"execution_summary": {}})


class FakeHubWithSdk(FakeHub):
    """Compiled models carry the SDK in ``metadata`` under ``ModelMetadataKey`` (qai-hub's documented keys)."""

    class ModelMetadataKey(enum.Enum):
        QAIRT_SDK_VERSION = "qairt_sdk_version"
        QNN_SDK_VERSION = "qnn_sdk_version"

    def submit_compile_job(self, **kw):
        job = super().submit_compile_job(**kw)
        model = SimpleNamespace(metadata={self.ModelMetadataKey.QAIRT_SDK_VERSION: "2.50.0.260828221209"})
        job.get_target_model = lambda: model
        return job


@pytest.mark.parametrize("pinned", ["2.50", None])
def test_qairt_is_pinned_and_every_report_records_runtime_and_sdk(token, tmp_path, pinned):
    hub = FakeHubWithSdk()
    prof = QaiHubProfiler(hub=hub, workdir=tmp_path, target_runtime="precompiled_qnn_onnx",
                          qairt_version=pinned, sleep=lambda s: None)  # fmt: skip
    r = prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib(), arch_key="hg-1")
    comp, inf = (kw for name, kw in hub.calls if name in ("compile", "inference"))
    assert comp["options"].startswith("--target_runtime precompiled_qnn_onnx")
    assert ("--qairt_version 2.50" in comp["options"]) == (pinned is not None)
    assert ("--qairt_version 2.50" in inf["options"]) == (pinned is not None)
    assert r.toolchain["target_runtime"] == "precompiled_qnn_onnx"
    assert r.toolchain["qairt_requested"] == (pinned or "default")
    assert r.toolchain["qairt"] == "2.50.0.260828221209"
    assert prof.cache_identity()["qairt_version"] == pinned


def test_unknown_runtime_lists_precompiled_qnn_onnx():
    from hwnas.utils.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        QaiHubProfiler(target_runtime="qnn")
    assert "precompiled_qnn_onnx" in str(err.value) and "hardware.qai_hub.target_runtime" in str(err.value)


class FakeHubWithChipset(FakeHub):
    """``get_devices`` answers with the device's attributes, as AI Hub lists them."""

    def get_devices(self, name: str = ""):
        self.calls.append(("get_devices", {"name": name}))
        attrs = ["framework:qnn", "chipset:qualcomm-snapdragon-8gen3", "os:android"]
        return [SimpleNamespace(name="Samsung Galaxy S24", attributes=attrs)]


def test_report_names_the_devices_own_chipset_and_keeps_the_profile(token, tmp_path):
    from hwnas.hardware.layer_fit import profile_layers
    from hwnas.hardware.profile_files import read_profile

    prof = QaiHubProfiler(
        hub=FakeHubWithChipset(), device="Samsung Galaxy S24", workdir=tmp_path,
        profile_dir=tmp_path / "profiles", sleep=lambda s: None,
    )  # fmt: skip
    r = prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib(), arch_key="hg-2")
    assert r.device == "Samsung Galaxy S24 (qualcomm-snapdragon-8gen3) via Qualcomm AI Hub"
    kept = read_profile(r.extra["profile_json"])
    assert kept["chipset"] == "qualcomm-snapdragon-8gen3" and kept["device"] == "Samsung Galaxy S24"
    assert kept["onnx"].endswith(".onnx") and kept["toolchain"]["qairt_requested"] == "2.50"
    assert [row["us"] for row in profile_layers(kept["profile"])] == [210, 95, 60]


def test_without_listed_chipset_the_report_says_so_and_keeps_no_file(token, tmp_path):
    r = QaiHubProfiler(hub=FakeHub(), workdir=tmp_path, sleep=lambda s: None).profile(
        nn.Conv2d(3, 4, 1), SHAPE, calibration=calib()
    )
    assert r.device == "Samsung Galaxy S21 (chipset not listed) via Qualcomm AI Hub"
    assert "profile_json" not in r.extra

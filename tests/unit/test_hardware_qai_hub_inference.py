"""Device accuracy through Qualcomm AI Hub, tested up to the network boundary with a fake ``qai_hub``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hwnas.hardware.qai_hub import TOKEN_ENV, QaiHubProfiler
from hwnas.hardware.qai_hub_inference import run_on_device
from hwnas.utils.errors import CandidateFailed, ConfigError, ProfilerUnavailable

SHAPE = (1, 3, 8, 8)
K = 5  # classes


class FakeJob:
    def __init__(self, job_id: str, *, outputs: dict | None = None, success: bool = True) -> None:
        self.job_id = job_id
        self._outputs = outputs
        self._success = success

    def wait(self):  # real: qai_hub.JobStatus with .success / .message
        return SimpleNamespace(success=self._success, message="" if self._success else "device lost")

    def get_target_model(self):
        return f"model-of-{self.job_id}"

    def download_output_data(self):  # real: dict output name -> list of arrays (one per input sample)
        return self._outputs


class FakeHub:
    """Stands in for the qai_hub module: records calls; inference echoes each image as TFLite-like logits."""

    def __init__(self, *, fail_submit: int = 0, fail_status: int = 0, drop_outputs: int = 0) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_submit = fail_submit  # raise a transient error on the next n inference submissions
        self.fail_status = fail_status  # the next n inference jobs end FAILED
        self.drop_outputs = drop_outputs  # return this many fewer outputs than inputs

    def Device(self, name):  # noqa: N802 - mirrors qai_hub.Device
        return SimpleNamespace(name=name)

    def get_devices(self, name: str = ""):
        self.calls.append(("get_devices", {"name": name}))
        return [SimpleNamespace(name="Samsung Galaxy S21")]

    def submit_quantize_job(self, **kw):
        raise AssertionError("the model is already quantised: no quantize job")

    def submit_compile_job(self, **kw):
        self.calls.append(("compile", kw))
        return FakeJob(f"jc{len(self.calls)}")

    def submit_inference_job(self, **kw):
        self.calls.append(("inference", kw))
        if self.fail_submit:
            self.fail_submit -= 1
            raise ConnectionError("503 service unavailable")
        if self.fail_status:
            self.fail_status -= 1
            return FakeJob(f"ji{len(self.calls)}", success=False)
        # channels-last logits whose value is the image's own fill value, so order is checkable
        logits = [np.full((1, 8, 8, K), float(x[0, 0, 0, 0]), np.float32) for x in kw["inputs"]["input"]]
        logits = logits[: len(logits) - self.drop_outputs]
        return FakeJob(f"ji{len(self.calls)}", outputs={"output_0": logits, "aux": logits})

    @property
    def inference_calls(self) -> list[dict]:
        return [kw for name, kw in self.calls if name == "inference"]


@pytest.fixture
def token(monkeypatch, tmp_path):
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))
    monkeypatch.setenv(TOKEN_ENV, "test-token")


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "missing.ini"))


@pytest.fixture
def onnx_path(tmp_path) -> Path:
    path = tmp_path / "model.int8.onnx"
    path.write_bytes(b"placeholder: the fake hub never reads it")
    return path


def images(n: int) -> list[np.ndarray]:
    return [np.full(SHAPE, float(i), np.float32) for i in range(n)]


def test_outputs_come_back_in_order_one_inference_job_per_chunk(token, onnx_path):
    hub = FakeHub()
    prof = QaiHubProfiler(hub=hub, target_runtime="qnn_dlc", compile_options="--truncate_64bit_io")
    outs, info = run_on_device(prof, onnx_path, images(7), chunk_size=3, name="final-hg")

    assert [name for name, _ in hub.calls] == ["get_devices", "compile"] + ["inference"] * 3
    comp = hub.calls[1][1]
    assert comp["model"] == str(onnx_path) and comp["device"].name == "Samsung Galaxy S21"
    assert (
        comp["options"] == "--target_runtime qnn_dlc --truncate_64bit_io --qairt_version 2.50"
    )  # QAIRT pinned
    assert comp["input_specs"] == {"input": ((1, 3, 8, 8), "float32")}
    assert all(type(d) is int for d in comp["input_specs"]["input"][0])  # the client asserts int dims

    sent = hub.inference_calls
    assert [len(kw["inputs"]["input"]) for kw in sent] == [3, 3, 1]
    assert all(kw["model"] == "model-of-jc2" and kw["profile"] is False for kw in sent)
    assert [kw["name"] for kw in sent] == ["final-hg-1", "final-hg-2", "final-hg-3"]

    assert len(outs) == 7 and all(o.shape == (1, 8, 8, K) for o in outs)
    assert [float(o[0, 0, 0, 0]) for o in outs] == [float(i) for i in range(7)]
    assert info == {
        "compile_job": "jc2",
        "inference_jobs": ["ji3", "ji4", "ji5"],
        "device": "Samsung Galaxy S21",
        "target_runtime": "qnn_dlc",
        "compile_options": "--target_runtime qnn_dlc --truncate_64bit_io --qairt_version 2.50",
        "n_images": 7,
        "chunks": 3,
    }


def test_a_transient_error_on_one_chunk_is_retried(token, onnx_path):
    sleeps: list[float] = []
    hub = FakeHub(fail_submit=1, fail_status=1)  # 503 on submit, then a FAILED job, then success
    prof = QaiHubProfiler(hub=hub, max_retries=3, backoff_s=2, sleep=sleeps.append)
    outs, info = run_on_device(prof, onnx_path, images(4), chunk_size=2)
    assert sleeps == [2, 4]
    assert len(hub.inference_calls) == 4  # chunk 1 three times, chunk 2 once
    assert [float(o[0, 0, 0, 0]) for o in outs] == [0.0, 1.0, 2.0, 3.0]
    assert info["chunks"] == 2 and len(info["inference_jobs"]) == 2


def test_a_job_that_keeps_failing_is_a_failed_candidate(token, onnx_path):
    hub = FakeHub(fail_status=99)
    prof = QaiHubProfiler(hub=hub, max_retries=2, sleep=lambda s: None)
    with pytest.raises(CandidateFailed, match=r"inference chunk 1/2 failed after 2 attempts.*device lost"):
        run_on_device(prof, onnx_path, images(3), chunk_size=2)


def test_without_token_nothing_is_sent(no_token, onnx_path):
    hub = FakeHub()
    with pytest.raises(ProfilerUnavailable, match=TOKEN_ENV):
        run_on_device(QaiHubProfiler(hub=hub), onnx_path, images(2))
    assert hub.calls == []


def test_wrong_number_of_outputs_is_a_failed_candidate(token, onnx_path):
    hub = FakeHub(drop_outputs=1)
    prof = QaiHubProfiler(hub=hub, sleep=lambda s: None)
    with pytest.raises(CandidateFailed, match=r"returned 1 output\(s\) for 'output_0', expected 2"):
        run_on_device(prof, onnx_path, images(2), chunk_size=4)


def test_chunk_size_below_one_names_the_key(token, onnx_path):
    hub = FakeHub()
    with pytest.raises(ConfigError, match=r"final\.device\.chunk_size"):
        run_on_device(QaiHubProfiler(hub=hub), onnx_path, images(2), chunk_size=0)
    assert hub.calls == []

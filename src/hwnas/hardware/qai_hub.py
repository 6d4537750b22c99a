"""``hardware=snapdragon888 hardware.backend=qai_hub``: real latency on a Snapdragon 888 phone in the cloud.

Flow (Qualcomm AI Hub, ``qai-hub`` client): ONNX export -> ``submit_quantize_job`` (int8, with the
real calibration batches) -> ``submit_compile_job`` for the device (TFLite / QNN runtime) ->
``submit_inference_job(..., profile=True)`` (``submit_profile_job`` is deprecated) -> the profile's
per-iteration times and which layers ran off the NPU.

Nothing is sent before ``check()`` passes: it needs the ``qai-hub`` package (``pip install -e
'.[qualcomm]'``) and an API token (``qai-hub configure --api_token <TOKEN>`` or ``export
QAI_HUB_API_TOKEN=<TOKEN>``). ``qai_hub`` is imported lazily, never at import time.
"""

from __future__ import annotations

import configparser
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware._common import (
    check_choice,
    onnx_file,
    parse_input_size,
    split_calibration,
    summarise_ms,
    versions,
)
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.profile_files import write_profile
from hwnas.utils.errors import CandidateFailed, ConfigError, ProfilerUnavailable

log = logging.getLogger(__name__)

TOKEN_ENV = "QAI_HUB_API_TOKEN"
TOKEN_FIX = f"run `qai-hub configure --api_token <TOKEN>` or `export {TOKEN_ENV}=<TOKEN>`"
INSTALL_FIX = "pip install -e '.[qualcomm]'"
RUNTIMES = ("tflite", "qnn_dlc", "qnn_context_binary", "onnx", "precompiled_qnn_onnx")
#: The QAIRT SDK compile and profile jobs ask for unless ``qai_hub.qairt_version`` says otherwise: the one
#: Qualcomm's published measurements (qai-hub-models 0.65.0, ``hwnas.hardware.device_data``) were made with.
QAIRT_VERSION = "2.50"


def sdk_versions(hub: Any, compiled: Any) -> dict[str, str]:
    """The QAIRT / QNN SDK a compiled AI Hub model was built with, from its ``metadata`` (keys
    ``ModelMetadataKey.QAIRT_SDK_VERSION`` / ``QNN_SDK_VERSION``); empty when the model carries none
    (TFLite and plain ONNX compiles)."""
    keys = getattr(hub, "ModelMetadataKey", None)
    meta = getattr(compiled, "metadata", None) or {}
    out = {}
    for name, label in (("QAIRT_SDK_VERSION", "qairt"), ("QNN_SDK_VERSION", "qnn")):
        key = getattr(keys, name, None)
        if key is not None and meta.get(key):
            out[label] = str(meta[key])
    return out


def client_ini_path() -> Path:
    """Where ``qai-hub configure`` writes the token (``$QAIHUB_CLIENT_INI`` overrides it)."""
    return Path(os.path.expanduser(os.environ.get("QAIHUB_CLIENT_INI", "~/.qai_hub/client.ini")))


def token_source() -> str | None:
    """``"env"`` / ``"client.ini"`` if an AI Hub token is configured, else ``None`` (no network)."""
    if os.environ.get(TOKEN_ENV, "").strip():
        return "env"
    ini = client_ini_path()
    if ini.is_file():
        parser = configparser.ConfigParser()
        try:
            parser.read(ini)
        except configparser.Error:
            return None
        if parser.get("api", "api_token", fallback="").strip():
            return "client.ini"
    return None


def chipset_of(device: Any) -> str | None:
    """The chipset AI Hub lists for a device (its ``chipset:<name>`` attribute), or ``None``."""
    attrs = getattr(device, "attributes", None) or []
    return next((str(a).split(":", 1)[1] for a in attrs if str(a).startswith("chipset:")), None)


def qai_hub_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("qai_hub") is not None


def parse_profile(profile: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
    """Per-iteration latencies (ms) and details from an AI Hub profile dict (``download_profile()``).

    Times in the profile are microseconds. ``all_inference_times`` (profile format >= 1.2) gives every
    iteration; older profiles only give ``estimated_inference_time``.
    """
    summary = profile.get("execution_summary") or {}
    times_us = summary.get("all_inference_times") or []
    if not times_us and summary.get("estimated_inference_time") is not None:
        times_us = [summary["estimated_inference_time"]]
    if not times_us:
        raise CandidateFailed("AI Hub profile has no inference time (execution_summary is empty)")
    layers = profile.get("execution_detail") or []
    units = Counter(str(layer.get("compute_unit", "?")) for layer in layers)
    off_npu = [
        {"name": layer.get("name"), "type": layer.get("type"), "compute_unit": layer.get("compute_unit")}
        for layer in layers
        if layer.get("compute_unit") != "NPU"
    ]
    extra = {
        "estimated_inference_time_us": summary.get("estimated_inference_time"),
        "peak_memory_bytes": summary.get("estimated_inference_peak_memory"),
        "compute_units": dict(units),
        "n_layers": len(layers),
        "n_layers_off_npu": len(off_npu),
        "layers_off_npu": off_npu[:20],
        "all_on_npu": not off_npu,
    }
    return [float(t) / 1000.0 for t in times_us], extra


class QaiHubProfiler(Profiler):
    """Int8 latency measured on a real device through Qualcomm AI Hub.

    Args:
        target: Target name for logs and cache keys.
        device: AI Hub device name (Snapdragon 888: ``"Samsung Galaxy S21"``).
        target_runtime: ``tflite`` | ``qnn_dlc`` | ``qnn_context_binary`` | ``onnx`` |
            ``precompiled_qnn_onnx`` (a QNN context binary wrapped in ONNX, run by ONNX Runtime's QNN EP).
        qairt_version: The QAIRT SDK compile and profile jobs pin (``--qairt_version``; default
            ``QAIRT_VERSION``); ``null`` leaves AI Hub's default, which changes over time. The requested and
            the resolved version go into every report's ``toolchain``.
        compile_options: Extra ``submit_compile_job`` options.
        profile_options: Extra ``submit_inference_job`` options (e.g. ``"--max_profiler_iterations 50"``).
        max_retries: Attempts per remote call on transient errors (network, service, device).
        backoff_s: First back-off; doubles after each failed attempt.
        input_size: ``(H, W)`` to profile at, or ``None`` for the dataset's size.
        batch_size: Batch size of the profiled input.
        calibration_batches: How many real batches callers should pass for quantisation.
        workdir: Where ONNX exports are cached.
        hub: The ``qai_hub`` module or a stand-in (tests inject a fake); imported lazily when ``None``.
        sleep: Sleep function for the back-off (tests pass a no-op).
    """

    backend = "qai_hub"
    precision = "int8"

    def __init__(
        self,
        *,
        target: str = "snapdragon888",
        device: str = "Samsung Galaxy S21",
        target_runtime: str = "tflite",
        compile_options: str = "",
        profile_options: str = "",
        qairt_version: str | None = QAIRT_VERSION,
        profile_dir: str | Path | None = None,
        max_retries: int = 3,
        backoff_s: float = 10.0,
        input_size: Any = None,
        batch_size: int = 1,
        calibration_batches: int = 8,
        workdir: str | Path | None = None,
        hub: Any | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.device_name = device
        self.target_runtime = check_choice(target_runtime, RUNTIMES, key="hardware.qai_hub.target_runtime")
        self.compile_options = compile_options
        self.qairt_version = None if qairt_version in (None, "") else str(qairt_version)
        self.profile_options = profile_options
        self.profile_dir = None if profile_dir in (None, "") else Path(profile_dir)
        self._chipset: str | None = None
        if int(max_retries) < 1:
            raise ConfigError(f"must be >= 1, got {max_retries}", key="hardware.qai_hub.max_retries")
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.input_size = parse_input_size(input_size)
        self.batch_size = int(batch_size)
        self.calibration_batches = int(calibration_batches)
        self.workdir = workdir
        self._hub = hub
        self._client: Any | None = None
        self._sleep = sleep

    # ----- preconditions ------------------------------------------------------------------------
    def check(self) -> None:
        if self._hub is None and not qai_hub_installed():
            raise ProfilerUnavailable(
                "the Qualcomm AI Hub client (qai-hub) is not installed",
                key="hardware.backend",
                fix=INSTALL_FIX,
            )
        if token_source() is None:
            raise ProfilerUnavailable(
                f"no Qualcomm AI Hub API token configured (neither ${TOKEN_ENV} nor {client_ini_path()})",
                key="hardware.backend",
                fix=f"{TOKEN_FIX}; or use hardware.backend=estimate for an offline estimate",
            )

    def cache_identity(self) -> dict[str, Any]:
        return {
            **super().cache_identity(),
            "device": self.device_name,
            "target_runtime": self.target_runtime,
            "compile_options": self.compile_options,
            "qairt_version": self.qairt_version,
        }

    def describe(self) -> str:
        sdk = f"QAIRT {self.qairt_version}" if self.qairt_version else "AI Hub's default QAIRT"
        return f"{self.target} via Qualcomm AI Hub ({self.device_name}, {self.target_runtime}, {sdk}, int8)"

    def _options(self, given: str) -> str:
        """``given`` with ``--qairt_version`` added when pinned and not already there."""
        if self.qairt_version and "--qairt_version" not in given:
            given = f"{given} --qairt_version {self.qairt_version}"
        return given.strip()

    # ----- remote plumbing ----------------------------------------------------------------------
    def _module(self) -> Any:
        if self._hub is None:
            import qai_hub

            self._hub = qai_hub
        return self._hub

    def _api(self) -> Any:
        """The object to call: a token-configured ``Client`` for env tokens, else the module."""
        if self._client is None:
            hub = self._module()
            token = os.environ.get(TOKEN_ENV, "").strip()
            if token and hasattr(hub, "Client") and hasattr(hub, "ClientConfig"):
                self._client = hub.Client(config=hub.ClientConfig(api_token=token))
            else:
                self._client = hub
        return self._client

    def _permanent(self, exc: BaseException) -> bool:
        user_error = getattr(self._module(), "UserError", None)
        return isinstance(user_error, type) and isinstance(exc, user_error)

    def _retry(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` up to ``max_retries`` times with exponential back-off on transient errors."""
        delay = self.backoff_s
        for attempt in range(1, self.max_retries + 1):
            try:
                return fn()
            except CandidateFailed:
                raise
            except Exception as exc:
                if self._permanent(exc):
                    raise CandidateFailed(f"AI Hub {what} rejected: {exc}") from exc
                if attempt == self.max_retries:
                    raise CandidateFailed(f"AI Hub {what} failed after {attempt} attempts: {exc}") from exc
                log.warning(
                    "AI Hub %s failed (%s); retry %d/%d in %.0fs", what, exc, attempt, self.max_retries, delay
                )
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _finish(self, what: str, job: Any) -> Any:
        status = job.wait()
        if status is not None and not getattr(status, "success", True):
            message = getattr(status, "message", "") or "no message"
            raise RuntimeError(f"{what} job {getattr(job, 'job_id', '?')} failed: {message}")
        return job

    def _device(self) -> Any:
        hub, api = self._module(), self._api()
        found = self._retry("device lookup", lambda: api.get_devices(name=self.device_name))
        if not found:
            names = sorted({d.name for d in self._retry("device list", api.get_devices)})
            raise ConfigError(
                f"AI Hub has no device named {self.device_name!r}",
                key="hardware.qai_hub.device",
                choices=names,
            )
        self._chipset = chipset_of(found[0])
        return hub.Device(self.device_name)

    # ----- the flow -----------------------------------------------------------------------------
    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        self.check()  # never send anything without a token
        if not calibration:
            raise ConfigError(
                "AI Hub int8 profiling needs calibration data (real input batches)",
                key="hardware.calibration_batches",
                fix="pass calibration=datamodule.calibration_batches(n)",
            )
        hub, api = self._module(), self._api()
        input_shape = tuple(int(d) for d in input_shape)
        t0 = time.perf_counter()
        device = self._device()
        calib = {"input": split_calibration(calibration, input_shape)}
        sample = {"input": [np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)]}
        name = f"hwnas-{arch_key or 'model'}"
        with onnx_file(
            model, input_shape, onnx_path=onnx_path, arch_key=arch_key, workdir=self.workdir
        ) as path:
            kept_onnx = str(path) if (onnx_path is not None or arch_key) else None  # a temporary one goes
            q_job = self._retry(
                "quantize",
                lambda: self._finish(
                    "quantize",
                    api.submit_quantize_job(
                        model=str(path),
                        calibration_data=calib,
                        weights_dtype=hub.QuantizeDtype.INT8,
                        activations_dtype=hub.QuantizeDtype.INT8,
                        name=name,
                    ),
                ),
            )
        options = self._options(f"--target_runtime {self.target_runtime} {self.compile_options}")
        c_job = self._retry(
            "compile",
            lambda: self._finish(
                "compile",
                api.submit_compile_job(
                    model=q_job.get_target_model(), device=device, name=name, options=options
                ),
            ),
        )
        i_job = self._retry(
            "profile",
            lambda: self._finish(
                "profile",
                api.submit_inference_job(
                    model=c_job.get_target_model(),
                    device=device,
                    inputs=sample,
                    name=name,
                    options=self._options(self.profile_options),
                    profile=True,
                ),
            ),
        )
        raw = self._retry("profile download", i_job.download_profile)
        samples, extra = parse_profile(raw)
        med, p10, p90 = summarise_ms(samples)
        if not extra["all_on_npu"]:
            log.warning("%s: %d layer(s) not on the NPU", name, extra["n_layers_off_npu"])
        extra.update(
            job_ids={
                "quantize": getattr(q_job, "job_id", None),
                "compile": getattr(c_job, "job_id", None),
                "inference": getattr(i_job, "job_id", None),
            },
            target_runtime=self.target_runtime,
            input_shape=list(input_shape),
            profile_wall_s=round(time.perf_counter() - t0, 2),
        )
        toolchain = {
            **versions("qai-hub", "onnx", "torch"),
            "target_runtime": self.target_runtime,
            "qairt_requested": self.qairt_version or "default",
            **sdk_versions(hub, c_job.get_target_model()),
        }
        if self.profile_dir is not None:  # per-layer times for hwnas.hardware.layer_fit
            record = {"name": name, "device": self.device_name, "chipset": self._chipset, "onnx": kept_onnx,
                      "input_shape": list(input_shape), "toolchain": toolchain, "profile": raw}  # fmt: skip
            job_id = getattr(i_job, "job_id", None) or "job"
            extra["profile_json"] = str(write_profile(self.profile_dir, f"{name}-{job_id}", record))
        return LatencyReport(
            median_ms=med,
            p10_ms=p10,
            p90_ms=p90,
            n_samples=len(samples),
            backend=self.backend,
            device=f"{self.device_name} ({self._chipset or 'chipset not listed'}) via Qualcomm AI Hub",
            precision="int8",
            source="measured",
            toolchain=toolchain,
            extra=extra,
        )

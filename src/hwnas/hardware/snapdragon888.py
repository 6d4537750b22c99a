"""``hardware=snapdragon888``: the Snapdragon 888 (Samsung Galaxy S21) NPU at int8, by whichever route works.

``backend``: ``qai_hub`` (real phone in Qualcomm's cloud), ``snpe`` (your phone over adb),
``estimate`` (offline analytical model), or ``auto``: AI Hub if a token and the ``qai-hub`` package
are present, else SNPE if ``SNPE_ROOT`` and an adb device are, else the estimate. The choice and the
reason are logged in one line, and the report's ``backend``/``source`` always say which it was.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.hardware.base import Profiler
from hwnas.hardware.estimate import EstimateProfiler
from hwnas.hardware.qai_hub import QaiHubProfiler, qai_hub_installed, token_source
from hwnas.hardware.snpe import SnpeProfiler
from hwnas.utils.errors import ConfigError, ProfilerUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "qai_hub", "snpe", "estimate")
TARGET = "snapdragon888"


def choose_backend(snpe: SnpeProfiler) -> tuple[str, str]:
    """``(backend, reason)`` for ``backend=auto``; touches no network (only env, files, ``adb devices``)."""
    source = token_source()
    if source and qai_hub_installed():
        return "qai_hub", f"Qualcomm AI Hub token found ({source}) and qai-hub installed"
    why_not_hub = "no AI Hub token" if not source else "qai-hub not installed"
    try:
        snpe.check()
    except ProfilerUnavailable as exc:
        return "estimate", f"{why_not_hub}; SNPE unavailable ({exc.message}): using the offline estimate"
    return "snpe", f"{why_not_hub}; SNPE SDK and adb device found"


def snapdragon888(
    *,
    backend: str = "auto",
    input_size: Any = None,
    batch_size: int = 1,
    calibration_batches: int = 8,
    workdir: str | Path | None = None,
    qai_hub: Mapping[str, Any] | None = None,
    snpe: Mapping[str, Any] | None = None,
    estimate: Mapping[str, Any] | None = None,
) -> Profiler:
    """Build the Snapdragon 888 profiler for ``backend`` (see the module docstring).

    Args:
        backend: ``auto`` | ``qai_hub`` | ``snpe`` | ``estimate``.
        input_size: ``(H, W)`` to profile at, or ``None`` for the dataset's size.
        batch_size: Batch size of the profiled input.
        calibration_batches: Real batches callers pass for int8 calibration.
        workdir: Where ONNX exports are cached.
        qai_hub: Keyword arguments of ``QaiHubProfiler`` (``device``, ``target_runtime``, ...).
        snpe: Keyword arguments of ``SnpeProfiler`` (``snpe_root``, ``serial``, ...).
        estimate: Keyword arguments of ``EstimateProfiler`` (``constants``, ...).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}", key="hardware.backend", choices=BACKENDS)
    common = {"target": TARGET, "input_size": input_size, "batch_size": batch_size, "workdir": workdir}
    calib = {"calibration_batches": calibration_batches}
    snpe_profiler = SnpeProfiler(**common, **calib, **dict(snpe or {}))
    if backend == "auto":
        backend, reason = choose_backend(snpe_profiler)
        log.info("hardware=snapdragon888 backend=auto -> %s (%s)", backend, reason)
    if backend == "qai_hub":
        return QaiHubProfiler(**common, **calib, **dict(qai_hub or {}))
    if backend == "snpe":
        return snpe_profiler
    return EstimateProfiler(**common, **dict(estimate or {}))

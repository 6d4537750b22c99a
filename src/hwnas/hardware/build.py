"""Glue between configs, datamodules and profilers, shared by every task that measures latency."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hwnas.hardware.base import Profiler
from hwnas.hardware.cache import CachedProfiler, LatencyCache
from hwnas.utils.errors import ConfigError

log = logging.getLogger(__name__)


def build_profiler(node: Any, *, cache_dir: str | Path | None = None) -> Profiler:
    """Instantiate ``cfg.hardware``; wrap it in a ``CachedProfiler`` when ``cache_dir`` is given.

    Construction touches no network and no device; call ``profiler.check()`` before a long run.
    """
    from hwnas.utils.config import build

    profiler = build(node, "hardware")
    if not isinstance(profiler, Profiler):
        raise ConfigError(
            f"_target_ built a {type(profiler).__name__}, not a hwnas.hardware.base.Profiler",
            key="hardware._target_",
        )
    if cache_dir is not None:
        attach = getattr(profiler, "attach_cache", None)  # hardware=predictor caches measurements only
        cache = LatencyCache(cache_dir)
        profiler = attach(cache) if callable(attach) else CachedProfiler(profiler, cache)
    log.info("hardware: %s", profiler.describe())
    return profiler


def input_shape_for(profiler: Profiler, datamodule: Any) -> tuple[int, ...]:
    """The full input shape to profile: the datamodule's, with the profiler's size/batch overrides."""
    return profiler.resolve_input_shape(tuple(int(d) for d in datamodule.input_shape()))


def calibration_for(profiler: Profiler, datamodule: Any) -> list[Any] | None:
    """Real calibration batches from ``datamodule.calibration_batches(n)`` if the profiler needs any."""
    n = int(getattr(profiler, "calibration_batches", 0) or 0)
    return list(datamodule.calibration_batches(n)) if n > 0 else None

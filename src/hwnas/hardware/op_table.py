"""Per-op latency tables for latency-aware differentiable NAS, measured with the project's own profilers.

A gradient strategy needs ``latency(op)`` for every candidate op at the input shape it runs at, on the
chosen ``hardware=``. Each op is profiled like any architecture (ONNX export, the target's runtime, its
precision): through the latency cache, keyed by the op's stable name, so a second search on the same
target measures nothing. The sum over a network's ops is a lookup-table model of its latency
(FBNet/ProxylessNAS); it overestimates a fused whole-network run by the per-op call overhead, so the
search's ``search.latency_unit=relative`` targets are positions on the table's own scale.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.hardware.base import Profiler
from hwnas.utils.errors import CandidateFailed, ConfigError

log = logging.getLogger("hwnas.hardware")

#: Prefix of op entries in the latency cache (op names never collide with architecture keys).
OP_KEY_PREFIX = "op-"


def _calibration(shape: tuple[int, ...], n: int) -> list[np.ndarray] | None:
    """Activation-range batches for int8 targets: an op's input is an intermediate feature map, so
    there are no images to take; unit-normal tensors stand in for post-BatchNorm activations."""
    if n <= 0:
        return None
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def op_latency_table(
    profiler: Profiler, ops: Mapping[str, tuple[nn.Module, tuple[int, ...]]]
) -> dict[str, float]:
    """``{op name: median ms}`` for every op, profiled at its own input shape on ``profiler``'s target.

    Raises:
        ConfigError: An op cannot be measured on this target (the whole latency term would be wrong).
    """
    table: dict[str, float] = {}
    t0 = time.perf_counter()
    n_calib = int(getattr(profiler, "calibration_batches", 0) or 0)
    hits0 = int(getattr(profiler, "hits", 0))
    for name, (module, shape) in sorted(ops.items()):
        shape = tuple(int(d) for d in shape)
        try:
            with torch.no_grad():
                report = profiler.profile(
                    copy.deepcopy(module).eval(),  # the op may be the supernet's own layer: leave it training
                    shape,
                    calibration=_calibration(shape, n_calib),
                    arch_key=f"{OP_KEY_PREFIX}{name}",
                )
        except CandidateFailed as exc:
            raise ConfigError(
                f"op {name!r} cannot be profiled on this target: {exc}",
                key="hardware",
                fix="use a hardware target that runs every candidate op, or search.latency_loss=none",
            ) from exc
        table[name] = float(report.median_ms)
    hits = int(getattr(profiler, "hits", 0)) - hits0
    log.info(
        "latency table: %d ops (%d from the cache) in %.1fs; sum %.3f ms",
        len(table), hits, time.perf_counter() - t0, sum(table.values()),
    )  # fmt: skip
    return table


def describe_table(table: Mapping[str, float], top: int = 5) -> dict[str, Any]:
    """A short summary for logs and run files: count, total and the costliest ops."""
    items = sorted(table.items(), key=lambda kv: -kv[1])
    return {
        "n_ops": len(table),
        "sum_ms": round(sum(table.values()), 4),
        "costliest": [{"op": k, "ms": round(v, 4)} for k, v in items[:top]],
    }

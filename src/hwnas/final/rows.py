"""One model's row of ``final.csv``: reused from its ``result.json`` when it finished before under the same
settings, else trained (or its weights reused) and evaluated. Latency is not measured here: every model of
the stage is timed in one interleaved pass afterwards (:mod:`hwnas.final.compare`).

The accuracy columns are named after the run's headline metric (:func:`hwnas.reporting.final.metric_of`):
``proxy_miou``, ``full_miou_fp32``, ``int8_miou``, ... for segmentation; ``proxy_acc``, ``full_acc_fp32``,
``int8_acc``, ... (top-1 accuracy) for classification.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.callbacks.progress import Progress
from hwnas.final.gallery import (
    MODEL_ERRORS,
    GalleryContext,
    evaluate,
    failure_reason,
    fingerprint,
    params_of,
    train_full,
)
from hwnas.reporting.final import METRICS, metric_of
from hwnas.search_space.base import ArchSpec
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.final")


def stage_metric(ctx: GalleryContext) -> str:
    """The headline metric of this stage's data: ``acc`` for classification, ``miou`` for segmentation."""
    return metric_of(getattr(ctx.datamodule, "task", ""))


def result_key(ctx: GalleryContext, spec: ArchSpec, init: str) -> str:
    """Everything that changes a model's row: its training, the target, the deployment shape, int8, device."""
    blob = {
        "train": fingerprint(ctx, spec, init),
        "hardware": ctx.profiler.cache_identity(),
        "deploy_shape": list(ctx.deploy_shape),
        "int8": [
            ctx.settings.calibration_batches,
            ctx.settings.calibration_method,
            ctx.settings.per_channel,
            ctx.settings.reduce_range,
        ],
        "device": ctx.device_name,
        "max_images": ctx.settings.max_images,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finished_row(ctx: GalleryContext, spec: ArchSpec, init: str, out_dir: Path) -> dict[str, Any] | None:
    """The row an earlier run of the stage left in ``out_dir`` under the same settings, or ``None``.

    A row without this run's metric columns (written before classification runs named theirs ``*_acc*``)
    is measured again; its trained weights are still reused.
    """
    done = read_json(out_dir / "result.json") or {}
    row = done.get("row") or {}
    if done.get("key") != result_key(ctx, spec, init) or f"full_{stage_metric(ctx)}_fp32" not in row:
        return None
    return row


def lookup(trials: pd.DataFrame, key: str, column: str) -> float:
    """``column`` of the completed trial of architecture ``key`` in trials.csv, or NaN."""
    if column not in trials.columns:
        return math.nan
    rows = trials[(trials["arch_key"] == key) & (trials["state"] == "COMPLETE")]
    vals = pd.to_numeric(rows[column], errors="coerce").dropna()
    return float(vals.iloc[0]) if len(vals) else math.nan


def _metric_columns(ev: dict[str, Any], info: dict[str, Any], metric: str) -> dict[str, Any]:
    """Test-split ``metric`` of torch fp32, ONNX fp32 and ONNX int8, the int8 drop in points, and val."""
    return {
        f"full_{metric}_fp32": ev[f"torch/{metric}"],
        f"onnx_{metric}_fp32": ev[f"onnx_fp32/{metric}"],
        f"int8_{metric}": ev[f"int8/{metric}"],
        "int8_drop": 100.0 * (ev[f"torch/{metric}"] - ev[f"int8/{metric}"]),
        f"val_{metric}": info.get(f"val_{metric}"),
    }


def model_row(
    ctx: GalleryContext,
    spec: ArchSpec,
    role: str,
    out_dir: Path,
    progress: Progress,
    *,
    init: str = "scratch",
    acc: str,
    lat: str,
    trials: pd.DataFrame,
    failed: str | None = None,
) -> dict[str, Any]:
    """One model's row: reused from ``result.json`` when finished before, else trained (or its weights
    from the parallel training reused) and evaluated on the test split; ``failed`` = the reason its training already failed.

    ``acc`` and ``lat`` name the search's objectives; the proxy column is the search's ``val/<metric>``
    (its maximised objective ``acc`` when trials.csv has no such column).
    """
    done = finished_row(ctx, spec, init, out_dir)
    if done is not None:
        return {**done, "reused": True}
    metric = stage_metric(ctx)
    proxy = f"val/{metric}" if f"val/{metric}" in trials.columns else acc
    row: dict[str, Any] = {
        "arch_key": spec.key,
        "role": role,
        "init": init,
        f"proxy_{metric}": lookup(trials, spec.key, proxy),
        "search_latency_ms": lookup(trials, spec.key, lat),
    }
    if failed:
        return {**row, "error": failed}
    try:
        spec.save(out_dir / "arch.json")
        model, info = train_full(ctx, spec, out_dir, progress, init)
        ev = evaluate(ctx, model, out_dir)
    except MODEL_ERRORS as exc:  # one model never sinks the stage
        reason = failure_reason(exc)
        log.warning("final: %s failed: %s", spec.key, reason)
        return {**row, "error": reason}
    row |= _metric_columns(ev, info, metric) | {
        "f1_fp32": ev["torch/f1"],
        "f1_int8_host": ev["int8/f1"],
        "f1": ev["f1"],
        "f1_source": ev["f1_source"],
        "latency_input": "x".join(map(str, ctx.deploy_shape)),
        "train_size": "x".join(map(str, ctx.eval_shape[-2:])),
        "params": params_of(model),
        "train_seconds": info.get("train_seconds"),
        "n_test": ev["n_test"],
        "files": {**ev["files"], "weights": str(out_dir / "weights.pt"), "arch": str(out_dir / "arch.json")},
    }
    write_json(out_dir / "result.json", {"key": result_key(ctx, spec, init), "row": row})
    return {**row, "reused": bool(info.get("reused"))}


def describe(row: dict[str, Any], metric: str) -> str:
    """A model's row in one log line: its error, or its test scores, latency and training time."""
    if row.get("error"):
        return str(row["error"])
    return (
        f"test {METRICS[metric][0]} fp32 {row[f'full_{metric}_fp32']:.3f} int8 {row[f'int8_{metric}']:.3f} "
        f"F1 {row['f1']:.3f} ({row['f1_source']}) latency {row['latency_ms']:.3g} ms ({row['latency_source']}) "
        f"{row['train_seconds']:.0f}s" + (" [reused]" if row.get("reused") else "")
    )

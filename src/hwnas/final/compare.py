"""A fair comparison with the baseline inside the final stage.

- **One interleaved latency pass.** Every trained model of the stage (baseline included) is timed in one
  pass on the target (A B C A B C …, one process, the same settings: :meth:`Profiler.profile_many`), so a
  latency ratio is never decided by the machine drifting between two measurements.
- **The baseline's training spread.** The baseline is trained with ``final.baseline_seeds`` training seeds
  (``final.seed``, +1, …; the same recipe as every model); their test scores give the mean and spread each
  margin is read against. The trainings are cached by (architecture, recipe, seed) in ``final.cache``.
- **The verdict.** A searched model *beats the baseline* when its latency is at most ``FASTER`` × the
  baseline's (same pass) with a test score no more than ``TIE`` below the baseline's mean, or when its
  test score is at least ``GAIN`` above that mean at no more than the baseline's latency.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.callbacks.progress import Progress
from hwnas.final.gallery import (
    MODEL_ERRORS,
    GalleryContext,
    build_model,
    failure_reason,
    train_full,
    with_seed,
)
from hwnas.final.predict import evaluate_torch, split_batches
from hwnas.final.selection import FASTER
from hwnas.hardware.base import latency_ratios
from hwnas.search_space.base import ArchSpec
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.final")

#: A faster model may be at most this far below the baseline's mean test score (0.005 = half a point).
TIE = 0.005
#: A model no slower than the baseline must be at least this far above its mean test score.
GAIN = 0.01
#: Roles of the baseline's rows in final.csv.
BASELINE_ROLES = ("baseline", "front+baseline")


def repeat_seeds(ctx: GalleryContext) -> list[int]:
    """The baseline's extra training seeds (its first training is the gallery's, at ``final.seed``)."""
    return [ctx.settings.seed + i for i in range(1, ctx.settings.baseline_seeds)]


def repeat_dir(final_dir: Path, spec: ArchSpec, seed: int) -> Path:
    return final_dir / "models" / f"{spec.stem}-seed{seed}"


def score_repeats(
    ctx: GalleryContext, spec: ArchSpec, final_dir: Path, progress: Progress, metric: str
) -> list[dict[str, Any]]:
    """Train (or reuse) the baseline at each extra seed and score it on the test split (torch fp32)."""
    out = []
    for seed in repeat_seeds(ctx):
        d, sctx = repeat_dir(final_dir, spec, seed), with_seed(ctx, seed)
        try:
            model, info = train_full(sctx, spec, d, progress)
            done = read_json(d / "score.json") or {}
            if done.get("fingerprint") != info.get("fingerprint"):
                cm = evaluate_torch(model, split_batches(ctx.datamodule, "test", batch_size=ctx.settings.eval_batch_size),
                                    num_classes=int(ctx.datamodule.num_classes))  # fmt: skip
                done = {"fingerprint": info.get("fingerprint"), "seed": seed, metric: cm.summary()[metric]}
                write_json(d / "score.json", done)
            out.append({"seed": seed, metric: done[metric]})
        except MODEL_ERRORS as exc:
            log.warning("final: the baseline at seed %d failed: %s", seed, failure_reason(exc))
    return out


def baseline_stats(
    rows: list[dict[str, Any]], repeats: list[dict[str, Any]], metric: str
) -> dict[str, Any] | None:
    """Mean, standard deviation and values of the baseline's test score over its training seeds."""
    base = next((r for r in rows if r.get("role") in BASELINE_ROLES and not r.get("error")), None)
    if base is None:
        return None
    col = f"full_{metric}_fp32"
    values = [float(base[col])] + [float(r[metric]) for r in repeats]
    return {
        "arch_key": base["arch_key"],
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
        "seeds": [None] + [r["seed"] for r in repeats],
    }


def interleaved_latency(ctx: GalleryContext, rows: list[dict[str, Any]]) -> None:
    """Time every finished row's deployment ONNX in one pass (:meth:`Profiler.profile_many`) and put the
    figures into the rows, with the ratio to the baseline's latency round by round."""
    ok = [r for r in rows if not r.get("error") and r.get("files")]
    if not ok or ctx.profiler is None:
        return
    items = []
    for r in ok:
        files = r["files"]
        model = build_model(ctx, ctx.space.load(files["arch"])).eval()  # for profilers that need the module
        model.load_state_dict(torch.load(files["weights"], map_location="cpu", weights_only=True))
        items.append((model, files.get("deploy_onnx_fp32") or files["onnx_fp32"], r["arch_key"]))
    reports = ctx.profiler.profile_many(items, ctx.deploy_shape, calibration=ctx.calibration)
    base = next((i for i, r in enumerate(ok) if r.get("role") in BASELINE_ROLES), None)
    ratios = latency_ratios(reports, base) if base is not None else [(math.nan,) * 3] * len(ok)
    for r, rep, (q, q25, q75) in zip(ok, reports, ratios, strict=True):
        r |= {
            "latency_ms": rep.median_ms,
            "latency_p10_ms": rep.p10_ms,
            "latency_p90_ms": rep.p90_ms,
            "latency_source": f"{rep.source} ({rep.backend}, {rep.precision})"
            + (f", interleaved x{len(ok)}" if rep.extra.get("rounds_ms") else ""),
            "latency_vs_baseline": q,
            "latency_vs_baseline_p25": q25,
            "latency_vs_baseline_p75": q75,
        }


def verdicts(rows: list[dict[str, Any]], stats: dict[str, Any] | None, metric: str) -> list[dict[str, Any]]:
    """Each searched row's margin to the baseline's mean and whether it beats the baseline (see the module
    docstring); returns the winners."""
    if stats is None:
        return []
    winners = []
    col = f"full_{metric}_fp32"
    for r in rows:
        if r.get("error") or r.get("role") != "front":
            continue
        delta, ratio = float(r[col]) - stats["mean"], float(r.get("latency_vs_baseline", math.nan))
        faster = ratio <= FASTER and delta >= -TIE
        better = delta >= GAIN and ratio <= 1.0
        r |= {f"{metric}_vs_baseline": delta, "beats_baseline": bool(faster or better)}
        if faster or better:
            winners.append(r)
    return winners

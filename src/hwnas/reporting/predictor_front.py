"""``hardware=predictor`` at the end of a search: measure the front's predicted latencies, say what was what.

A predicted latency carries an interval; this is where the interval meets the device. Every front
member whose latency was predicted is measured now (on top of ``predictor.max_measurements``, unless
``predictor.verify_front=false``), and the run dir gets:

* ``predictor_front.csv``: per front member, the prediction, its interval, the measurement, inside or not;
* ``predictor_measurements.csv``: every measurement the model was fitted on (which run made it and why).

``summary.json`` gets ``latency_predictor`` (counts, budget, agreement) and the plots' latency axis says
``predicted from N measurements``. The numbers in ``trials.csv`` and ``pareto.csv`` stay the ones the
search ranked by.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.train import TrainingEvaluator
from hwnas.hardware.predictor.profiler import PredictorProfiler
from hwnas.utils.errors import CandidateFailed

log = logging.getLogger("hwnas.search")


def predictor_of(evaluator: Evaluator) -> PredictorProfiler | None:
    """The evaluator's ``PredictorProfiler``, or ``None`` for any other ``hardware=``."""
    profiler = getattr(evaluator, "profiler", None)
    return profiler if isinstance(profiler, PredictorProfiler) else None


def _inputs(evaluator: Evaluator, spec: Any) -> tuple[Any, tuple[int, ...], Any]:
    """The model, input shape and calibration batches the evaluator profiled ``spec`` with."""
    if isinstance(evaluator, TrainingEvaluator):
        return evaluator._build(spec).eval(), tuple(evaluator.input_shape), evaluator.calibration
    return None, tuple(evaluator.input_shape), None  # evaluator=table latency_from=hardware: by key


def check_front(
    evaluator: Evaluator, *, space: Any, df: pd.DataFrame, front: pd.DataFrame, run_dir: Path
) -> dict[str, Any] | None:
    """Measure the front's predicted latencies and write the files above; ``None`` without a predictor."""
    predictor = predictor_of(evaluator)
    if predictor is None:
        return None
    rows: list[dict[str, Any]] = []
    has_source = len(front) and "hw/source" in front.columns
    predicted = front[front["hw/source"] == "predicted"] if has_source else front.iloc[0:0]
    if predictor.verify_front:
        for _, r in predicted.iterrows():
            spec = space.parse(r["arch"])
            row: dict[str, Any] = {
                "arch_key": spec.key,
                "predicted_ms": float(r["hw/latency_ms"]),
                "interval_lo_ms": float(r["hw/interval_lo_ms"]),
                "interval_hi_ms": float(r["hw/interval_hi_ms"]),
                "level": float(r["hw/interval_level"]),
            }
            try:
                model, shape, calibration = _inputs(evaluator, spec)
                report = predictor.measure_now(model, shape, arch_key=spec.key, calibration=calibration)
            except CandidateFailed as exc:
                rows.append({**row, "error": exc.reason})
                log.warning("front check: measuring %s failed: %s", spec.key, exc.reason)
                continue
            m = float(report.median_ms)
            row.update(
                measured_ms=m,
                inside=bool(row["interval_lo_ms"] <= m <= row["interval_hi_ms"]),
                rel_error=row["predicted_ms"] / m - 1.0,
            )
            rows.append(row)
    checked = pd.DataFrame(rows)
    checked.to_csv(run_dir / "predictor_front.csv", index=False)
    archs = dict(zip(df["arch_key"], df["arch"], strict=True)) if "arch" in df.columns else {}
    records = [
        {k: rec.get(k) for k in ("arch_key", "latency_ms", "input_shape", "purpose", "run")}
        | {
            "predicted_ms": (rec.get("predicted") or {}).get("predicted_ms"),
            "arch": archs.get(rec["arch_key"]),
        }
        for rec in predictor.measurements()
    ]  # arch (JSON) of this run's trials: the file feeds src/profile.py ... estimate.calibrate=<it>
    pd.DataFrame(records).to_csv(run_dir / "predictor_measurements.csv", index=False)
    real = df[~df["duplicate"].astype(bool)] if "duplicate" in df.columns else df
    sources = real["hw/source"].value_counts().to_dict() if "hw/source" in real.columns else {}
    ok = checked[checked["inside"].notna()] if "inside" in checked.columns else checked.iloc[0:0]
    summary = {
        **predictor.summary(),
        "trials_measured": int(sources.get("measured", 0)),
        "trials_predicted": int(sources.get("predicted", 0)),
        "front_size": int(len(front)),
        "front_predicted": int(len(predicted)),
        "front_checked": int(len(ok)),
        "front_inside_interval": int(ok["inside"].sum()) if len(ok) else 0,
        "front_agreement": float(ok["inside"].mean()) if len(ok) else None,
        "front_median_abs_error": float(ok["rel_error"].abs().median()) if len(ok) else None,
        "files": {
            "front_check": str(run_dir / "predictor_front.csv"),
            "measurements": str(run_dir / "predictor_measurements.csv"),
        },
    }
    fitted = real.loc[real.get("hw/source") == "predicted", "hw/predictor_measurements"] if sources else []
    n = int(max(fitted)) if len(fitted) else summary["measurements_used"]  # what the predictions used
    summary["label"] = f"predicted from {n} measurements" if len(fitted) else f"measured ({n} measurements)"
    if len(ok):
        log.info(
            "latency predictor: %d of %d predicted front latencies inside their %.0f%% intervals when measured "
            "(median error %.1f%%); %d measured this run (max %d), %d predicted",
            summary["front_inside_interval"],
            summary["front_checked"],
            100 * predictor.level,
            100 * summary["front_median_abs_error"],
            summary["measured_this_run"],
            predictor.max_measurements,
            summary["trials_predicted"],
        )
    return summary

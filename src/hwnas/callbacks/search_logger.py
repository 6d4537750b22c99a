"""Per-trial logging for a whole search: one clear line per trial, and the configured loggers.

The search reuses the Lightning loggers chosen by ``logger=`` (csv, tensorboard, wandb): one logger run
per search, one step per trial (its metrics and ``trial/feasible``); at the end of the search the trials
table and the front, after the final stage its models table and charts (``hwnas.callbacks.logger_sinks``
says what each backend gets). Inside trials Lightning's own loggers and progress bars stay off so the
log is readable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from hwnas.callbacks.logger_sinks import RunSink, sink_for
from hwnas.search.objectives import Objective
from hwnas.search.trial_attrs import trial_attrs
from hwnas.utils.io import read_json

log = logging.getLogger("hwnas.search")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        return f"{v:.4g}"
    return str(v)


class SearchLogger:
    """Writes one line per trial to the log and forwards numeric metrics to the loggers.

    Args:
        loggers: Instantiated Lightning loggers (may be empty).
        objectives: The search objectives (shown in every line).
        n_trials: The budget of unique architectures (for the ``k/N`` counter).
    """

    def __init__(self, loggers: Sequence[Any], objectives: Sequence[Objective], n_trials: int) -> None:
        self.loggers = list(loggers)
        self.objectives = list(objectives)
        self.n_trials = n_trials
        self.unique = 0
        self._sink_cache: dict[int, RunSink | None] = {}

    def set_unique(self, n: int) -> None:
        self.unique = n

    def __call__(self, trial: FrozenTrial, info: dict[str, Any]) -> None:
        ua = trial_attrs(trial)
        status = info.get("status", trial.state.name.lower())
        if status not in ("duplicate", "invalid", "prescreened"):  # these cost no budget
            self.unique += 1
        metrics = ua.get("metrics") or {}
        objs = " ".join(f"{o.name}={_fmt(metrics.get(o.name))}" for o in self.objectives)
        extra = ""
        if status == "fail":
            extra = f" reason: {ua.get('fail_reason', '')[:160]}"
        elif status == "infeasible":
            extra = " (over budget: not trained)" if not ua.get("trained") else " (violates a constraint)"
        elif status == "duplicate":
            extra = f" (same as trial {ua.get('duplicate_of')}, reused)"
        elif status == "prescreened":
            extra = f" ({ua.get('fail_reason', '')[len('prescreened: ') :][:120]}: not trained, not counted)"
        elif metrics.get("fidelity/rung"):
            extra = f" (promoted to rung {metrics['fidelity/rung']})"
        log.info(
            "trial %4d [%d/%d] %s %-9s %s %.1fs%s",
            trial.number,
            self.unique,
            self.n_trials,
            ua.get("arch_key", "-"),
            status,
            objs,
            float(ua.get("seconds") or 0.0),
            extra,
        )
        numeric = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
        }
        numeric["trial/feasible"] = float(bool(ua.get("feasible")))
        for lg in self.loggers:
            try:
                lg.log_metrics(numeric, step=trial.number)
            except Exception as exc:  # noqa: BLE001 - a logger must never kill a search
                log.warning("logger %s failed: %s", type(lg).__name__, exc)

    def log_search(
        self, trials: pd.DataFrame, front: pd.DataFrame, front_png: Path | None, summary: dict[str, Any]
    ) -> None:
        """At the end of the search: the trials table, the front (a scatter, and the PNG) and the summary.

        Each step is guarded on its own: a logger that fails (no network, a bad value) costs a warning,
        never the search's outputs. Loggers stay open for :meth:`log_final`; :meth:`close` ends them.
        """
        x, y = _axes(self.objectives)
        scalars = {
            k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)
        }
        for name, sink in self._sinks():
            _guarded(name, "log the trials table", sink.table, "trials", trials)
            _guarded(name, "log the front table", sink.table, "pareto", front)
            if x and y:
                title = f"Pareto front: {y} vs {x}"
                _guarded(name, "log the front", sink.scatter, "pareto_front", front, x=x, y=y, title=title)
            if front_png is not None and front_png.is_file():
                _guarded(name, "log the front image", sink.image, "pareto_front_image", front_png)
            _guarded(name, "update the run summary", sink.summary, scalars)

    def log_final(self, final: dict[str, Any]) -> None:
        """After the final stage: its models table (final.csv), F1 and test mIoU against the re-measured
        latency (one scatter, or TensorBoard curve, each), its two charts, and its counts in the summary."""
        outputs = final.get("outputs") or {}
        path = Path(str(outputs.get("final_csv", "")))
        models = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        for name, sink in self._sinks():
            if not models.empty:
                _guarded(name, "log the final models", sink.table, "final/models", models)
                for metric in [m for m in FINAL_CURVES if m in models.columns]:
                    _guarded(
                        name, f"log final {metric}", sink.scatter, f"final/{metric}_vs_latency", models,
                        x="latency_ms", y=metric, title=f"final stage: test {metric} vs latency_ms",
                    )  # fmt: skip
            for stem, history in _histories(models, path.parent.parent).items():
                for metric in sorted({k for h in history for k in h} - {"epoch"}):
                    points = [(int(h["epoch"]), float(h[metric])) for h in history if metric in h]
                    _guarded(
                        name, f"log {stem} {metric}", sink.curve, f"final/training/{stem}/{metric}",
                        [p[0] for p in points], [p[1] for p in points], step_name="epoch",
                    )  # fmt: skip
            for key, chart in (
                ("final/full_training", "full_training_png"),
                ("final/results", "final_results_png"),
            ):
                if chart in outputs and Path(outputs[chart]).is_file():
                    _guarded(name, f"log {chart}", sink.image, key, Path(outputs[chart]))
            counts = {f"final/{k}": final[k] for k in ("n_models", "n_failed", "front_size") if k in final}
            _guarded(name, "update the run summary", sink.summary, counts)

    def close(self, status: str = "success") -> None:
        """Finalize every logger once (W&B runs are finished, so the next search in this process, as in a
        local multirun, starts its own run instead of reusing this one). A run never started (a search
        that failed before its first trial) is not started just to be closed."""
        for lg in self.loggers:
            name = type(lg).__name__
            _guarded(name, "finalize", lg.finalize, status)
            started = id(lg) in self._sink_cache or getattr(lg, "_experiment", None) is not None
            sink = self._sink_of(lg) if started else None
            if sink is not None:
                _guarded(name, "close the run", sink.close, status)
        self.loggers = []
        self._sink_cache = {}

    def _sinks(self) -> list[tuple[str, RunSink]]:
        """``(logger name, sink)`` for each logger with end-of-run outputs."""
        out = []
        for lg in self.loggers:
            sink = self._sink_of(lg)
            if sink is not None:
                out.append((type(lg).__name__, sink))
        return out

    def _sink_of(self, lg: Any) -> RunSink | None:
        """``lg``'s sink, built once (W&B's run starts here if no trial started it)."""
        if id(lg) not in self._sink_cache:
            try:
                self._sink_cache[id(lg)] = sink_for(lg)
            except Exception as exc:  # noqa: BLE001 - a logger must never kill a search
                log.warning("logger %s could not start: %s", type(lg).__name__, exc)
                self._sink_cache[id(lg)] = None
        return self._sink_cache[id(lg)]


def _histories(models: pd.DataFrame, run_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Each final model's per-epoch curves (``train.json``'s ``history``, beside its weights)."""
    out: dict[str, list[dict[str, float]]] = {}
    if "file_weights" not in models.columns:
        return out
    for rel in models["file_weights"].dropna():
        info = read_json((run_dir / str(rel)).parent / "train.json") or {}
        if info.get("history"):
            out[(run_dir / str(rel)).parent.name] = list(info["history"])
    return out


#: final.csv columns drawn against latency (those present: *_acc* for classifiers, *_miou* for segmentation).
FINAL_CURVES = ("f1", "full_miou_fp32", "int8_miou", "full_acc_fp32", "int8_acc")


def _axes(objectives: Sequence[Objective]) -> tuple[str | None, str | None]:
    """(x, y) of the front's scatter: the first minimised objective (latency) against the first maximised
    one (accuracy); the first two objectives otherwise."""
    mins = [o.name for o in objectives if o.direction == "minimize"]
    maxs = [o.name for o in objectives if o.direction == "maximize"]
    if mins and maxs:
        return mins[0], maxs[0]
    names = [o.name for o in objectives]
    return (names[1], names[0]) if len(names) >= 2 else (None, None)


def _guarded(logger: str, what: str, step: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run one logging step; a failure is a warning (a logger must never kill a search)."""
    try:
        step(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("logger %s could not %s: %s", logger, what, exc)

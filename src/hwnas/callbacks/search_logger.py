"""Per-trial logging for a whole search: one clear line per trial, and the configured loggers.

The search reuses the Lightning loggers chosen by ``logger=`` (csv, tensorboard, wandb): one logger run
per search, one step per trial, and at the end the trials table and the front plot (W&B). Inside
trials Lightning's own loggers and progress bars stay off so the log is readable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from hwnas.search.objectives import Objective
from hwnas.search.study_view import trial_attrs

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

    def set_unique(self, n: int) -> None:
        self.unique = n

    def __call__(self, trial: FrozenTrial, info: dict[str, Any]) -> None:
        ua = trial_attrs(trial)
        status = info.get("status", trial.state.name.lower())
        if status not in ("duplicate", "invalid"):
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

    def finish(self, trials: pd.DataFrame, front_png: Path | None, summary: dict[str, Any]) -> None:
        """Log the trials table, the front image and the summary (W&B), then close every logger.

        Each step is guarded on its own: a logger that fails (no network, a bad value) costs a warning,
        never the search's outputs, and is still finalized. W&B runs are finished explicitly, so the next
        search in the same process (a local multirun) starts its own run instead of reusing this one.
        """
        table = _table(trials)
        scalars = {
            k: v for k, v in summary.items() if isinstance(v, int | float | str) and not isinstance(v, bool)
        }
        for lg in self.loggers:
            name = type(lg).__name__
            if name == "WandbLogger":
                _guarded(name, "log the trials table", lg.log_table, key="trials", dataframe=table)
                if front_png is not None and front_png.is_file():
                    _guarded(
                        name, "log the front image", lg.log_image, key="pareto_front", images=[str(front_png)]
                    )
                _guarded(name, "update the run summary", _wandb_summary, lg, scalars)
            _guarded(name, "finalize", lg.finalize, "success")
            if name == "WandbLogger":
                _guarded(name, "finish the run", _wandb_finish, lg)


def _guarded(logger: str, what: str, step: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run one logging step; a failure is a warning (a logger must never kill a search)."""
    try:
        step(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        log.warning("logger %s could not %s: %s", logger, what, exc)


def _wandb_summary(logger: Any, values: dict[str, Any]) -> None:
    logger.experiment.summary.update(values)


def _wandb_finish(logger: Any) -> None:
    logger.experiment.finish()


def _table(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials frame as W&B takes it: numbers stay numbers (plottable), everything else becomes text."""
    table = trials.drop(columns=["arch"], errors="ignore").copy()
    for col in table.columns:
        if table[col].dtype == bool or not pd.api.types.is_numeric_dtype(table[col]):
            table[col] = table[col].astype(str)
    return table

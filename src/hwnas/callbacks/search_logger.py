"""Per-trial logging for a whole search: one clear line per trial, and the configured loggers.

The search reuses the Lightning loggers chosen by ``logger=`` (csv, tensorboard, wandb): one logger run
per search, one step per trial, and at the end the trials table and the front plot (W&B). Inside
trials Lightning's own loggers and progress bars stay off so the log is readable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from optuna.trial import FrozenTrial

from hwnas.search.objectives import Objective

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
        ua = trial.user_attrs
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
        for lg in self.loggers:
            try:
                if type(lg).__name__ == "WandbLogger":
                    table = trials.drop(columns=["arch"], errors="ignore").astype(str)
                    lg.log_table(key="trials", dataframe=table)
                    if front_png is not None and front_png.is_file():
                        lg.log_image(key="pareto_front", images=[str(front_png)])
                    lg.experiment.summary.update(
                        {k: v for k, v in summary.items() if isinstance(v, int | float | str)}
                    )
                lg.finalize("success")
            except Exception as exc:  # noqa: BLE001
                log.warning("logger %s failed at the end: %s", type(lg).__name__, exc)

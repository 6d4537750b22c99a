"""The study as a table: one row per trial, objectives under their configured names, the exact front."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from hwnas.pareto import pareto_mask
from hwnas.search.objectives import Objective
from hwnas.search.trial_attrs import (
    ARCH_ATTR,
    DEVICE_ATTR,
    DUPLICATE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    KEY_ATTR,
    ORIGIN_ATTRS,
    SEEDED_ATTR,
    STRATEGY_ATTR,
    WORKER_ATTR,
    trial_attrs,
)

#: Columns every trials.csv starts with (then objectives, constraints, other metrics).
BASE_COLUMNS = [
    "number",
    "state",
    "arch_key",
    "feasible",
    "is_pareto",
    "duplicate",
    "trained",
    "fail_reason",
    "generation",
    "worker",
    "device",
    "strategy",
    "seeded",
    "seconds",
    "seconds_cheap",
    "seconds_expensive",
    "datetime_start",
]


def generation_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The GA generation a trial belongs to (Optuna keys it ``<SamplerClass>:generation``), if any."""
    for key, value in trial.system_attrs.items():
        if key.endswith(":generation"):
            return int(value)
    return None


def trials_frame(study: optuna.Study, objectives: Sequence[Objective]) -> pd.DataFrame:
    """One row per finished or running trial.

    Objective columns hold the measured metric (NaN when it was never computed, e.g. an infeasible
    candidate that was not trained), not the placeholder told to the sampler.
    """
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        ua = trial_attrs(t)
        metrics = dict(ua.get("metrics") or {})
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "arch_key": ua.get(KEY_ATTR),
            "feasible": bool(ua.get("feasible", False)) if t.state.name == "COMPLETE" else False,
            "duplicate": bool(ua.get(DUPLICATE_ATTR, False)),
            "duplicate_of": ua.get(DUPLICATE_OF_ATTR),
            "trained": bool(ua.get("trained", False)),
            "fail_reason": ua.get(FAIL_REASON_ATTR, ""),
            "generation": generation_of(t),
            "worker": ua.get(WORKER_ATTR),
            "device": ua.get(DEVICE_ATTR),
            "strategy": ua.get(STRATEGY_ATTR),
            "seeded": ua.get(SEEDED_ATTR) or "",  # baseline / arch:<file>: evaluated first, never "searched"
            "seconds": ua.get("seconds"),
            "seconds_cheap": ua.get("seconds_cheap"),
            "seconds_expensive": ua.get("seconds_expensive"),
            "datetime_start": t.datetime_start.isoformat() if t.datetime_start else None,
        }
        if row["duplicate"] and t.state.name == "COMPLETE":
            row["feasible"] = all(v <= 0 for v in t.constraints.values())
        for obj in objectives:
            v = metrics.get(obj.name)
            if v is None and row["duplicate"] and t.values is not None:
                idx = list(objectives).index(obj)
                v = t.values[idx] if np.isfinite(t.values[idx]) else None
            row[obj.name] = np.nan if v is None else float(v)
        for name in ORIGIN_ATTRS:  # a gradient search's sweep point, as columns when present
            if name in ua and name not in row:
                row[name] = ua[name]
        for name, value in t.constraints.items():
            row[f"constraint:{name}"] = value
        for k, v in metrics.items():
            row.setdefault(k, v)
        row["arch"] = ua.get(ARCH_ATTR, json.dumps({"space": None, "params": t.params}))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=BASE_COLUMNS + [o.name for o in objectives] + ["arch"])
    df["is_pareto"] = front_mask(df, objectives)
    ordered = [c for c in BASE_COLUMNS if c in df.columns]
    ordered += [o.name for o in objectives if o.name not in ordered]
    ordered += [c for c in df.columns if c not in ordered and c != "arch"] + ["arch"]
    return df[ordered]


def front_mask(df: pd.DataFrame, objectives: Sequence[Objective]) -> np.ndarray:
    """Exactly the non-dominated set of the feasible, complete, non-duplicate rows."""
    eligible = (df["state"] == "COMPLETE") & df["feasible"].astype(bool) & ~df["duplicate"].astype(bool)
    vals = df[[o.name for o in objectives]].to_numpy(dtype=float)
    eligible &= np.isfinite(vals).all(axis=1)
    mask = np.zeros(len(df), dtype=bool)
    idx = np.flatnonzero(eligible.to_numpy())
    if len(idx):
        mask[idx] = pareto_mask(vals[idx], [o.direction for o in objectives])
    return mask


def pareto_frame(df: pd.DataFrame, objectives: Sequence[Objective]) -> pd.DataFrame:
    """The front's rows, sorted by the last objective (usually latency)."""
    front = df[df["is_pareto"]].copy()
    return front.sort_values([o.name for o in objectives][::-1]).reset_index(drop=True)

"""Which models the final stage trains: a few front models spread across the latency range, and the baseline."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from hwnas.search_space.base import ArchSpec
from hwnas.utils.errors import InvalidArchError

log = logging.getLogger("hwnas.final")


def spread_across(front: pd.DataFrame, k: int, *, latency: str) -> pd.DataFrame:
    """Up to ``k`` rows of ``front`` spread evenly over ``log(latency)``, fastest and slowest included.

    A user picks a model by latency budget, so the trained gallery should cover the whole range
    rather than crowd where the front is dense. Rows come back sorted by latency.
    """
    rows = front.dropna(subset=[latency]).sort_values(latency, kind="stable").reset_index(drop=True)
    if len(rows) <= k:
        return rows
    logs = np.log(np.maximum(rows[latency].to_numpy(float), 1e-12))
    chosen: list[int] = []
    for target in np.linspace(logs[0], logs[-1], k):
        order = np.argsort(np.abs(logs - target), kind="stable")
        chosen.append(next(int(i) for i in order if int(i) not in chosen))
    return rows.iloc[sorted(chosen)].reset_index(drop=True)


def baseline_of(space: Any) -> ArchSpec | None:
    """The space's hand-designed baseline, or ``None`` (with a warning) when the ranges leave it out."""
    try:
        return space.baseline()
    except InvalidArchError as exc:
        log.warning(
            "final: the baseline is outside this search space's ranges (%s); it is not trained. Set "
            "search_space.baseline.* to an architecture of the space, or final.baseline=false",
            exc,
        )
        return None


def pick_models(
    front: pd.DataFrame, space: Any, *, top_k: int, baseline: bool, latency: str
) -> list[tuple[ArchSpec, str]]:
    """``(architecture, role)`` of every model the stage trains: up to ``top_k`` rows of the search's
    ``front`` spread across ``latency`` (role ``front``), and with ``baseline`` the space's baseline
    (``baseline``, or ``front+baseline`` when the front holds it already)."""
    picked: list[tuple[ArchSpec, str]] = []
    if not front.empty and latency in front.columns:
        picked = [(space.parse(a), "front") for a in spread_across(front, top_k, latency=latency)["arch"]]
    base = baseline_of(space) if baseline else None
    if base is not None:
        picked = [(s, "front+baseline" if s.key == base.key else r) for s, r in picked]
        if base.key not in {s.key for s, _ in picked}:
            picked.append((base, "baseline"))
    return picked

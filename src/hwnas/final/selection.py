"""Which front models the final stage trains: a few, spread across the latency range."""

from __future__ import annotations

import numpy as np
import pandas as pd


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

"""Which architectures to measure: a well-spread seed set, then draws weighted by the model's doubt.

Used where the candidates are known up front (a pool: the benchmark's table, a latency table to build);
inside a search candidates arrive one by one and ``PredictorProfiler`` measures those whose interval is
too wide instead.

Why weighted draws and not "the most uncertain first": on devices whose degenerate architectures have
erratic latencies (a runtime that sometimes removes a dead cell, sometimes not; NB201 on a Pixel 3 or a
Raspberry Pi 4) the most uncertain candidates stay uncertain however many are measured, and pure
uncertainty sampling spends the budget on them: on ``make bench-predictor`` (``--selection uncertain``)
it cut the share within ±10 % at 200 measurements from 59 % to 33 % on the Raspberry Pi 4 and from 60 %
to 38 % on the Pixel 3, for no gain elsewhere (the median over unseen devices is 97 % either way). Drawing at random
with probability proportional to the predictive spread, capped at twice its median, keeps the draws
representative of the pool and still tilts them towards what the model does not know.
"""

from __future__ import annotations

import numpy as np


def _standardise(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def spread(X: np.ndarray, k: int, *, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` rows of ``X`` spread over the feature space (greedy farthest-first).

    Starts from the row nearest the centre, so the seed set covers the middle as well as the extremes;
    duplicate feature rows are never picked twice (fewer than ``k`` come back if fewer are distinct).
    """
    Z = _standardise(X)
    order = np.random.default_rng(seed).permutation(len(Z))  # ties broken at random, reproducibly
    first = int(order[np.argmin(np.linalg.norm(Z[order], axis=1))])
    chosen = [first]
    dist = np.linalg.norm(Z - Z[first], axis=1)
    while len(chosen) < min(k, len(Z)):
        i = int(order[np.argmax(dist[order])])
        if dist[i] <= 0:
            break
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(Z - Z[i], axis=1))
    return np.array(chosen, dtype=int)


def by_uncertainty(
    log_sd: np.ndarray, k: int, *, taken: np.ndarray, seed: int = 0, cap: float = 2.0
) -> np.ndarray:
    """``k`` rows not in ``taken``, drawn without replacement with probability ∝ ``min(sd, cap·median)``."""
    free = np.setdiff1d(np.arange(len(log_sd)), np.asarray(taken, dtype=int))
    if len(free) == 0 or k < 1:
        return np.array([], dtype=int)
    sd = np.asarray(log_sd, dtype=np.float64)[free]
    w = np.minimum(sd, cap * float(np.median(sd)))
    w = np.maximum(w, 1e-12)
    rng = np.random.default_rng(seed)
    return rng.choice(free, size=min(k, len(free)), replace=False, p=w / w.sum())

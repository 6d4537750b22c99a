"""Rank statistics of bench-proxy: Kendall's tau overall and pooled within latency bins, bootstrap intervals.

Size-like scores (params, FLOPs) rank accuracy mostly because they repeat the latency axis; a search
compares candidates at similar latency, so the figure that matters is tau *within* latency bins: pairs
are counted only inside each bin (quantiles of latency) and pooled over the bins.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Stat = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def latency_bins(latency: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every architecture: ``n_bins`` latency quantiles (equal counts)."""
    ranks = np.argsort(np.argsort(latency, kind="stable"), kind="stable")
    return (ranks * n_bins // max(1, len(latency))).astype(int)


def _pair_sums(a: np.ndarray, b: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(concordant − discordant, pairs) over the pairs ``i < j`` allowed by ``same``."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    mask = np.triu(same, k=1) & (da != 0) & (db != 0)
    return float((da * db)[mask].sum()), float(mask.sum())


def tau_overall(a: np.ndarray, b: np.ndarray, bins: np.ndarray) -> float:  # noqa: ARG001 - one Stat shape
    """Kendall's tau (tau-a over untied pairs) of ``a`` against ``b``."""
    s, n = _pair_sums(a, b, np.ones((len(a), len(a)), bool))
    return s / n if n else float("nan")


def tau_within(a: np.ndarray, b: np.ndarray, bins: np.ndarray) -> float:
    """Kendall's tau over the pairs in the same latency bin only, pooled over the bins."""
    s, n = _pair_sums(a, b, bins[:, None] == bins[None, :])
    return s / n if n else float("nan")


def bootstrap_ci(
    stat: Stat, a: np.ndarray, b: np.ndarray, bins: np.ndarray, *, n: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95 % percentile interval of ``stat`` over architectures resampled with replacement."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(a), len(a))
        v = stat(a[idx], b[idx], bins[idx])
        if np.isfinite(v):
            vals.append(v)
    return (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals else (np.nan, np.nan)


def paired_diff_ci(
    stat: Stat,
    a1: np.ndarray,
    a2: np.ndarray,
    b: np.ndarray,
    bins: np.ndarray,
    *,
    n: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``stat(a1) − stat(a2)`` and its 95 % interval, both on the same resampled architectures (paired)."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        idx = rng.integers(0, len(b), len(b))
        v = stat(a1[idx], b[idx], bins[idx]) - stat(a2[idx], b[idx], bins[idx])
        if np.isfinite(v):
            vals.append(v)
    d = stat(a1, b, bins) - stat(a2, b, bins)
    if not vals:
        return float(d), float("nan"), float("nan")
    return float(d), float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))

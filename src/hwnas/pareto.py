"""Pareto fronts and the quality indicators used to compare search strategies: the ground floor (numpy and
the error types only), imported by the samplers, the strategies, the benchmark and reporting alike.

Every function takes ``directions`` (``"maximize"`` / ``"minimize"`` per objective, as Optuna spells
them) so callers never have to negate columns by hand; internally everything is turned into
minimisation once, by :func:`to_minimisation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from hwnas.utils.errors import ConfigError

_DIRECTIONS = ("maximize", "minimize")


def _signs(directions: Sequence[str], m: int) -> np.ndarray:
    dirs = [str(getattr(d, "name", d)).lower() for d in directions]  # accepts optuna StudyDirection too
    if len(dirs) != m:
        raise ConfigError(
            f"{len(dirs)} directions given for {m} objectives",
            key="directions",
            fix="give one direction per objective column",
        )
    bad = [d for d in dirs if d not in _DIRECTIONS]
    if bad:
        raise ConfigError(f"unknown direction(s) {bad}", key="directions", choices=_DIRECTIONS)
    return np.array([-1.0 if d == "maximize" else 1.0 for d in dirs])


def to_minimisation(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Return a float copy of ``values`` (n, m) in which every objective is to be minimised."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr.reshape(-1, len(directions)) if arr.size else arr.reshape(0, len(directions))
    if arr.ndim != 2:
        raise ValueError(f"values must be a 2-D array (n, m), got shape {arr.shape}")
    return arr * _signs(directions, arr.shape[1])


def _front_2d(sub: np.ndarray) -> list[int]:
    """O(n log n) front of NaN-free 2-D minimisation data (the common accuracy x latency case)."""
    order = np.lexsort((sub[:, 1], sub[:, 0]))
    front: list[int] = []
    best = np.inf
    prev: tuple[float, float] | None = None
    prev_on = False
    for i in order:
        x, y = float(sub[i, 0]), float(sub[i, 1])
        # Sorted order puts duplicates side by side; a copy shares its twin's fate.
        on = prev_on if prev == (x, y) else y < best
        if on:
            front.append(int(i))
        best = min(best, y)
        prev, prev_on = (x, y), on
    return front


def _mask_min(vals: np.ndarray) -> np.ndarray:
    """Non-dominated mask for minimisation; rows containing NaN are never on the front."""
    n = vals.shape[0]
    mask = np.zeros(n, dtype=bool)
    ok = np.flatnonzero(~np.isnan(vals).any(axis=1))
    if ok.size == 0:
        return mask
    sub = vals[ok]
    if sub.shape[1] == 2:
        mask[ok[_front_2d(sub)]] = True
        return mask
    # Lexicographic order: a point can only be dominated by points before it (or equal to it).
    order = np.lexsort(sub.T[::-1])
    front: list[int] = []  # indices into ``sub`` of the running non-dominated set
    for i in order:
        p = sub[i]
        if front:
            f = sub[front]
            dominated = np.all(f <= p, axis=1) & np.any(f < p, axis=1)
            if dominated.any():
                continue
        front.append(int(i))
    mask[ok[front]] = True
    return mask


def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Boolean mask of the exactly non-dominated rows of ``values``.

    A row is on the front when no other row is at least as good in every objective and strictly
    better in one. Duplicates of a non-dominated point are therefore all on the front (a search that
    finds two architectures with identical objectives reports both). Rows with a NaN are never on the
    front and never dominate anything.

    Args:
        values: Array of shape ``(n, m)``.
        directions: ``"maximize"`` or ``"minimize"`` for each of the ``m`` columns.

    Returns:
        Boolean array of shape ``(n,)``.
    """
    return _mask_min(to_minimisation(values, directions))


def non_dominated_ranks(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Non-dominated sorting: rank 0 is the front, rank 1 the front of the rest, and so on.

    NaN rows get the worst rank (one past the last front), so they lose every tournament.
    """
    vals = to_minimisation(values, directions)
    n = vals.shape[0]
    ranks = np.full(n, -1, dtype=int)
    nan_rows = np.isnan(vals).any(axis=1)
    remaining = np.flatnonzero(~nan_rows)
    rank = 0
    while remaining.size:
        m = _mask_min(vals[remaining])
        ranks[remaining[m]] = rank
        remaining = remaining[~m]
        rank += 1
    ranks[nan_rows] = rank
    return ranks


def hypervolume_2d(points: np.ndarray, ref: Sequence[float], directions: Sequence[str]) -> float:
    """Exact area dominated by ``points`` and bounded by the reference point ``ref``.

    Points that do not strictly improve on ``ref`` in both objectives contribute nothing (this is
    what makes a tight reference point discriminate between methods).

    Args:
        points: Array ``(n, 2)`` in the objectives' own units.
        ref: Reference point in the same units, e.g. ``(85.0, 25.943)`` for (accuracy, latency).
        directions: Direction of each of the two objectives.
    """
    pts = to_minimisation(points, directions)
    if pts.shape[1] != 2:
        raise ValueError(f"hypervolume_2d needs 2 objectives, got {pts.shape[1]}")
    r = np.asarray(ref, dtype=float) * _signs(directions, 2)
    pts = pts[~np.isnan(pts).any(axis=1)]
    pts = pts[np.all(pts < r, axis=1)]
    if pts.shape[0] == 0:
        return 0.0
    pts = pts[_mask_min(pts)]
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    xs = np.append(pts[:, 0], r[0])
    # On a sorted 2-D front the second objective decreases; each point owns a slab up to the next x.
    return float(np.sum((xs[1:] - xs[:-1]) * (r[1] - pts[:, 1])))


def igd_plus(
    found: np.ndarray,
    true_front: np.ndarray,
    directions: Sequence[str],
    *,
    normalise: bool = True,
) -> float:
    """IGD+ (Ishibuchi et al., 2015): mean distance from each true-front point to the found set.

    Only the amount by which a found point is *worse* counts, so IGD+ is Pareto-compliant. With
    ``normalise`` each objective is divided by the true front's range, so accuracy points and
    milliseconds weigh alike. Returns ``inf`` when nothing was found; 0 means the true front was found.
    """
    tf = to_minimisation(true_front, directions)
    fd = to_minimisation(found, directions)
    tf = tf[~np.isnan(tf).any(axis=1)]
    fd = fd[~np.isnan(fd).any(axis=1)]
    if tf.shape[0] == 0:
        raise ValueError("the true front is empty")
    if fd.shape[0] == 0:
        return float("inf")
    if normalise:
        span = tf.max(axis=0) - tf.min(axis=0)
        span[span <= 0] = 1.0
        tf, fd = tf / span, fd / span
    gap = np.maximum(fd[None, :, :] - tf[:, None, :], 0.0)  # (true, found, m)
    dist = np.sqrt((gap**2).sum(axis=2)).min(axis=1)
    return float(dist.mean())


def front_recall(found_keys: Iterable[str], true_front_keys: Iterable[str]) -> float:
    """Fraction of the true front's architectures (by key) that the search evaluated."""
    truth = set(true_front_keys)
    if not truth:
        raise ValueError("the true front is empty")
    return len(truth & set(found_keys)) / len(truth)

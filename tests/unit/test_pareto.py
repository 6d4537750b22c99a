"""Pareto front and indicators: exact results on hand-made cases and against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hwnas.pareto import (
    front_recall,
    hypervolume_2d,
    igd_plus,
    non_dominated_ranks,
    pareto_mask,
)
from hwnas.utils.errors import ConfigError

MAX_MIN = ("maximize", "minimize")


def brute_force_mask(values: np.ndarray, directions) -> np.ndarray:
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    v = values * sign
    n = len(v)
    out = np.zeros(n, dtype=bool)
    for i in range(n):
        if np.isnan(v[i]).any():
            continue
        out[i] = not any(
            not np.isnan(v[j]).any() and np.all(v[j] <= v[i]) and np.any(v[j] < v[i])
            for j in range(n)
            if j != i
        )
    return out


def brute_force_hv(points: np.ndarray, ref: tuple[int, int]) -> int:
    """Count the unit cells of the integer grid below ``ref`` that some point dominates (minimise both)."""
    count = 0
    for x in range(int(ref[0])):
        for y in range(int(ref[1])):
            count += any(p[0] <= x and p[1] <= y for p in points)
    return count


def test_simple_front_mixed_directions() -> None:
    vals = np.array([[90.0, 10.0], [80.0, 5.0], [85.0, 12.0], [70.0, 5.0], [95.0, 30.0]])
    assert pareto_mask(vals, MAX_MIN).tolist() == [True, True, False, False, True]


def test_duplicates_of_front_point_all_kept_and_nan_never() -> None:
    vals = np.array([[90.0, 10.0], [90.0, 10.0], [np.nan, 1.0], [80.0, 20.0], [99.0, np.nan]])
    assert pareto_mask(vals, MAX_MIN).tolist() == [True, True, False, False, False]


def test_nan_row_does_not_dominate() -> None:
    vals = np.array([[np.nan, 0.0], [50.0, 50.0]])
    assert pareto_mask(vals, MAX_MIN).tolist() == [False, True]


def test_empty_and_single() -> None:
    assert pareto_mask(np.zeros((0, 2)), MAX_MIN).shape == (0,)
    assert pareto_mask(np.array([[1.0, 2.0]]), MAX_MIN).tolist() == [True]


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(6))
def test_mask_matches_brute_force(m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Small integer grid: many ties and duplicates, the hard cases.
    vals = rng.integers(0, 6, size=(60, m)).astype(float)
    vals[rng.random(60) < 0.05, 0] = np.nan
    dirs = [("maximize", "minimize")[i % 2] for i in range(m)]
    np.testing.assert_array_equal(pareto_mask(vals, dirs), brute_force_mask(vals, dirs))


def test_ranks_peel_fronts() -> None:
    vals = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [1.0, 3.0], [np.nan, 0.0]])
    ranks = non_dominated_ranks(vals, ("minimize", "minimize"))
    assert ranks.tolist() == [0, 1, 2, 1, 3]


def test_bad_directions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="directions"):
        pareto_mask(np.ones((2, 2)), ["maximize"])
    with pytest.raises(ConfigError, match="Valid choices"):
        pareto_mask(np.ones((2, 2)), ["max", "min"])


def test_hypervolume_hand_computed() -> None:
    # Maximise accuracy, minimise latency; ref (80, 10).
    pts = np.array([[90.0, 5.0], [85.0, 2.0], [70.0, 1.0], [95.0, 11.0]])
    # (85,2): width 5 x height 8 = 40; (90,5): width 5 x height 5 = 25; others outside the box.
    assert hypervolume_2d(pts, (80.0, 10.0), MAX_MIN) == pytest.approx(65.0)
    assert hypervolume_2d(np.zeros((0, 2)), (80.0, 10.0), MAX_MIN) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_hypervolume_matches_grid_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.integers(0, 25, size=(15, 2)).astype(float)  # some fall outside the ref box
    ref = (20, 20)
    expected = brute_force_hv(pts, ref)
    assert hypervolume_2d(pts, ref, ("minimize", "minimize")) == pytest.approx(expected)
    # The same problem stated with the first objective maximised gives the same area.
    flipped = pts * np.array([-1.0, 1.0])
    assert hypervolume_2d(flipped, (-20, 20), MAX_MIN) == pytest.approx(expected)


def test_hypervolume_is_monotone_under_adding_points() -> None:
    rng = np.random.default_rng(0)
    pts = rng.random((40, 2))
    ref = (1.1, 1.1)
    hvs = [hypervolume_2d(pts[:k], ref, ("minimize", "minimize")) for k in range(1, 41)]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(hvs))


def test_igd_plus() -> None:
    truth = np.array([[90.0, 10.0], [80.0, 5.0]])
    assert igd_plus(truth, truth, MAX_MIN) == 0.0
    # A found set that dominates the truth scores 0 too (IGD+ only counts shortfalls).
    assert igd_plus(np.array([[95.0, 1.0]]), truth, MAX_MIN) == 0.0
    # One point 10 accuracy worse than the first true point, unnormalised: distances 10 and 5.
    found = np.array([[80.0, 10.0]])
    assert igd_plus(found, truth, MAX_MIN, normalise=False) == pytest.approx((10.0 + 5.0) / 2)
    # Normalised by the truth's ranges (10 and 5): distances 1 and 1.
    assert igd_plus(found, truth, MAX_MIN) == pytest.approx(1.0)
    assert igd_plus(np.zeros((0, 2)), truth, MAX_MIN) == float("inf")


def test_front_recall() -> None:
    assert front_recall(["a", "b", "x"], ["a", "b", "c", "d"]) == 0.5
    assert front_recall([], ["a"]) == 0.0
    with pytest.raises(ValueError):
        front_recall(["a"], [])

"""Building blocks of our samplers: genome operators, history, hypervolume gain and the GP."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from hwnas.pareto import hypervolume_2d
from hwnas.search.samplers import SurrogateParetoSampler
from hwnas.search.samplers.base import History
from hwnas.search.samplers.genome import crowding_distance, mutate, neighbours, uniform_crossover, unseen
from hwnas.search.samplers.surrogate import HammingGP, hamming, normal_scores
from hwnas.search.samplers.surrogate_pareto import hypervolume_improvement_2d

SIZES = [5, 5, 3, 1]
MINMIN = ("minimize", "minimize")


def test_mutate_changes_at_least_one_parameter_and_stays_in_range() -> None:
    rng = np.random.RandomState(0)
    g = (0, 4, 2, 0)
    for _ in range(200):
        child = mutate(g, SIZES, rng)
        assert sum(a != b for a, b in zip(g, child, strict=True)) == 1
        assert all(0 <= v < n for v, n in zip(child, SIZES, strict=True))
        many = mutate(g, SIZES, rng, extra_prob=1.0)
        assert sum(a != b for a, b in zip(g, many, strict=True)) == 3  # the 1-choice one cannot change


def test_crossover_takes_each_gene_from_a_parent() -> None:
    rng = np.random.RandomState(1)
    a, b = (0, 0, 0, 0), (4, 4, 2, 0)
    kids = [uniform_crossover(a, b, rng) for _ in range(100)]
    assert all(k[i] in (a[i], b[i]) for k in kids for i in range(4))
    assert len(set(kids)) > 4
    assert uniform_crossover(a, b, rng, swap_prob=0.0) == a


def test_neighbours_are_all_one_step_changes() -> None:
    g = (1, 2, 0, 0)
    nbrs = list(neighbours(g, SIZES))
    assert len(nbrs) == 4 + 4 + 2 and len(set(nbrs)) == len(nbrs)
    assert all(sum(x != y for x, y in zip(g, n, strict=True)) == 1 for n in nbrs)


def test_unseen_retries_then_gives_up() -> None:
    proposals = iter([(0,), (1,), (2,)])
    assert unseen(lambda: next(proposals), {(0,), (1,)}, tries=5) == (2,)
    assert unseen(lambda: (0,), {(0,)}, tries=3) == (0,)


def test_crowding_distance_extremes_infinite() -> None:
    d = crowding_distance(np.array([[0.0, 3.0], [1.0, 2.0], [2.5, 0.5], [3.0, 0.0]]))
    assert np.isinf(d[0]) and np.isinf(d[3]) and d[1] > d[2]


def test_history_ranks_put_infeasible_last() -> None:
    h = History(
        names=["x"],
        sizes=[4],
        genomes=np.arange(4).reshape(-1, 1),
        values=np.array([[0.0, 0.0], [1.0, 1.0], [-5.0, -5.0], [2.0, 2.0]]),
        violation=np.array([0.0, 0.0, 3.0, 1.0]),
    )
    assert h.ranks().tolist() == [0, 1, 4, 3]
    assert h.front().tolist() == [0]


@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_improvement_matches_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.random((12, 2))
    front = pts[:8]
    cands = np.vstack([pts[8:], [[1.5, 0.1]], [[-0.1, -0.1]]])
    ref = np.array([1.1, 1.1])
    gains = hypervolume_improvement_2d(cands, front, ref)
    base = hypervolume_2d(front, ref, MINMIN)
    for c, g in zip(cands, gains, strict=True):
        assert g == pytest.approx(hypervolume_2d(np.vstack([front, c]), ref, MINMIN) - base, abs=1e-12)


def test_hamming_and_normal_scores() -> None:
    a = np.array([[0, 1, 2], [2, 1, 0]])
    assert hamming(a, a).tolist() == [[0, 2], [2, 0]]
    z = normal_scores(np.array([3.0, 1.0, 2.0, 2.0, 100.0]))
    assert z[1] < z[2] == z[3] < z[0] < z[4] and abs(z.mean()) < 0.01


def test_gp_interpolates_and_is_unsure_far_away() -> None:
    rng = np.random.RandomState(0)
    x = rng.randint(0, 5, size=(60, 6))
    y = (x == 3).sum(axis=1).astype(float)  # additive: count of a "good" op
    gp = HammingGP(noise=0.01).fit(x, y)
    mean, std = gp.predict(x)
    assert np.corrcoef(mean, normal_scores(y))[0, 1] > 0.95
    test = rng.randint(0, 5, size=(40, 6))
    pred, _ = gp.predict(test)
    assert np.corrcoef(pred, (test == 3).sum(axis=1))[0, 1] > 0.6
    # unsure far away: genomes sharing no gene with any training genome (value 9 is never seen) get the
    # prior's spread, far above the spread at the training genomes themselves
    far = np.full((5, 6), 9)
    _, std_far = gp.predict(far)
    assert std_far.min() > 0.9 and std_far.min() > 5 * std.max()
    one_off = x[:10].copy()
    one_off[:, 0] = 9  # one gene away from a training genome: in between
    _, std_near = gp.predict(one_off)
    assert std.max() < std_near.mean() < std_far.min()


def test_sampler_cache_is_per_study() -> None:
    """One sampler object reused for a second study must not read the first study's cached genomes (the
    cache is keyed by trial number, which both studies share)."""
    sampler = SurrogateParetoSampler(seed=0, n_startup_trials=3)
    space = {"a": optuna.distributions.CategoricalDistribution([0, 1, 2])}
    genomes = []
    for value in (0, 2):
        study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
        for _ in range(4):
            study.enqueue_trial({"a": value})
        study.optimize(lambda t: (t.suggest_categorical("a", [0, 1, 2]), 0.0), 4)
        history = sampler.history(study, space)
        genomes.append({g for g in history.seen})
    assert genomes == [{(0,)}, {(2,)}], genomes

"""Surrogate-screened Pareto search: spend evaluations only on candidates a model expects to pay off.

Evolutionary samplers judge a child only after evaluating it. Here a cheap model (one Hamming-kernel
GP per objective, fitted on every trial so far; latency is learnable as well as accuracy) screens a
large pool of children of the current front (all unevaluated one-parameter neighbours, crossovers,
double mutations and some random cells), and the child with the largest optimistic hypervolume
improvement (mean minus ``beta`` standard deviations) is evaluated. An ``epsilon`` share of random
picks from the pool keeps the model honest.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
from optuna.study import Study

from hwnas.search.samplers.base import GenomeSampler, History, choose
from hwnas.search.samplers.genome import Genome, mutate, neighbours, random_genome, uniform_crossover
from hwnas.search.samplers.surrogate import HammingGP, hamming, normal_scores


def hypervolume_improvement_2d(cands: np.ndarray, front: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Exact hypervolume each candidate ``(M, 2)`` would add to ``front`` ``(k, 2)`` (minimisation).

    Vectorised over candidates: the region dominated by the front is a staircase, and a candidate's
    gain is the area of its box above that staircase.
    """
    f = front[np.all(front < ref, axis=1)]
    f = f[np.lexsort((f[:, 1], f[:, 0]))]
    # Staircase: between consecutive x breakpoints the front covers everything above height h.
    xs = np.concatenate([[-np.inf], f[:, 0], [ref[0]]])
    hs = np.minimum.accumulate(np.concatenate([[ref[1]], f[:, 1]]))
    lo = np.maximum(xs[None, :-1], cands[:, :1])
    width = np.clip(np.minimum(xs[None, 1:], ref[0]) - lo, 0.0, None)
    height = np.clip(hs[None, :] - cands[:, 1:2], 0.0, None)
    return (width * height).sum(axis=1)


def _distance_to_front(cands: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Additive epsilon needed for each candidate to become non-dominated (0 when it already is)."""
    gaps = (cands[:, None, :] - front[None, :, :]).min(axis=2)  # (M, k)
    return np.clip(gaps.max(axis=1), 0.0, None)


class SurrogateParetoSampler(GenomeSampler):
    """Pick the child of the front with the best predicted hypervolume gain.

    Args:
        seed: Seed of the sampler's random stream.
        n_startup_trials: Random architectures before the model is trusted.
        beta: Optimism: candidates are judged at mean - beta x std (per objective, warped scale).
        epsilon: Probability of evaluating a random candidate of the pool instead of the best one.
        n_random: Random cells added to each pool (exploration beyond the front's neighbourhood).
        n_crossover: Uniform crossovers of front members added to each pool.
        noise: GP noise variance (relative to the warped unit variance).
        seed_start: Start from the study's seeds first (see :class:`~hwnas.search.samplers.base.GenomeSampler`).
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        beta: float = 1.0,
        epsilon: float = 0.05,
        n_random: int = 100,
        n_crossover: int = 50,
        noise: float = 0.05,
        seed_start: Any = None,
    ) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials, seed_start=seed_start)
        self.beta = float(beta)
        self.epsilon = float(epsilon)
        self.n_random = int(n_random)
        self.n_crossover = int(n_crossover)
        self.noise = float(noise)
        self._lengthscales: dict[int, tuple[int, float]] = {}  # objective -> (n at selection, value)

    def candidates(self, history: History, front: np.ndarray) -> list[Genome]:
        """Unevaluated children of the front: neighbours, crossovers, double mutations, random cells."""
        rng, sizes = self._rng, history.sizes
        parents = [tuple(int(x) for x in history.genomes[i]) for i in front]
        pool: set[Genome] = set()
        for p in parents:
            pool.update(neighbours(p, sizes))
        for _ in range(self.n_crossover):
            pool.add(uniform_crossover(choose(rng, parents), choose(rng, parents), rng))
            pool.add(mutate(mutate(choose(rng, parents), sizes, rng), sizes, rng))
        for _ in range(self.n_random):
            pool.add(random_genome(sizes, rng))
        # Sorted so the pool order (and thus every tie-break) is reproducible for a fixed seed.
        return sorted(pool - history.seen)

    def _predict(
        self, history: History, j: int, x: np.ndarray, dists: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Optimistic prediction of objective ``j``; the lengthscale is re-selected as data grows 25 %."""
        n = len(history)
        last = self._lengthscales.get(j)
        reuse = last is not None and n < 1.25 * last[0]
        gp = HammingGP(noise=self.noise).fit(
            history.genomes,
            history.values[:, j],
            lengthscale=last[1] if reuse and last else None,
            dist=dists[0],
        )
        if not reuse:
            self._lengthscales[j] = (n, gp.lengthscale)
        mean, std = gp.predict(x, dist=dists[1])
        return mean - self.beta * std

    def propose(self, history: History, study: Study) -> Genome:
        front = history.front()
        pool = self.candidates(history, front)
        if not pool:
            return random_genome(history.sizes, self._rng)
        if self._rng.rand() < self.epsilon:
            return choose(self._rng, pool)
        x = np.asarray(pool)
        m = history.values.shape[1]
        z = np.column_stack([normal_scores(history.values[:, j]) for j in range(m)])
        pred = np.empty((len(pool), m))
        dists = (hamming(history.genomes, history.genomes), hamming(x, history.genomes))
        for j in range(m):
            pred[:, j] = self._predict(history, j, x, dists)
        zf = z[front]
        if m == 2:
            # Box of the feasible cells seen so far: a cell beyond every feasible one gains nothing.
            zok = z[history.feasible] if history.feasible.any() else z
            ref = zok.max(axis=0) + 0.1 * (zok.max(axis=0) - zok.min(axis=0))
            gain = hypervolume_improvement_2d(pred, zf, ref)
        else:
            # More objectives: a random Chebyshev scalarisation (ParEGO-style) of the predictions.
            w = self._rng.dirichlet(np.ones(m))
            gain = -(w * (pred - z.min(axis=0))).max(axis=1)
            gain -= gain.min()
        pf = self._feasibility(history, x, dists)
        if (gain * pf).max() > 0:
            return pool[int(np.argmax(gain * pf))]
        # Nothing predicted to improve the front: take the candidate closest to it (and likely feasible).
        return pool[int(np.argmax(-_distance_to_front(pred, zf) - (1.0 - pf)))]

    def _feasibility(
        self, history: History, x: np.ndarray, dists: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Predicted probability that each candidate satisfies the trials' constraints (1 if none)."""
        feasible = history.feasible
        if feasible.all() or not feasible.any():
            return np.ones(len(x))
        label = np.where(feasible, 1.0, -1.0)
        gp = HammingGP(noise=self.noise, warp=False).fit(
            history.genomes, label, lengthscale=1.0, dist=dists[0]
        )
        mean, std = gp.predict(x, dist=dists[1])
        # The GP standardised the +-1 labels; the class boundary is their midpoint on that scale.
        threshold = -label.mean() / label.std()
        return np.array([NormalDist().cdf(v) for v in (mean - threshold) / std])

"""The base of our own Optuna samplers: a fixed categorical space seen as genomes of choice indices.

Subclasses implement :meth:`GenomeSampler.propose` from a :class:`History` of evaluated genomes; this
base turns Optuna trials into that history (objectives in minimisation form, duplicates merged,
feasibility from trial constraints) and the proposal back into parameter values. Anything outside the
fixed categorical space is sampled at random, as Optuna's own relative samplers do.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hwnas.pareto import non_dominated_ranks, pareto_mask
from hwnas.search.samplers.genome import Genome, random_genome, unseen
from hwnas.search.samplers.seed_start import SeedStart, as_seed_start


@dataclass
class History:
    """Completed, unique architectures as arrays, oldest first.

    Attributes:
        names: Parameter names, in genome order.
        sizes: Number of choices of each parameter.
        genomes: ``(n, d)`` choice indices.
        values: ``(n, m)`` objectives, every one to be minimised (maximised ones negated).
        violation: ``(n,)`` total constraint violation (0 when feasible or unconstrained).
        seen: Every genome already proposed, including running and failed trials.
    """

    names: list[str]
    sizes: list[int]
    genomes: np.ndarray
    values: np.ndarray
    violation: np.ndarray
    seen: set[Genome] = field(default_factory=set)

    def __len__(self) -> int:
        return int(self.genomes.shape[0])

    @property
    def feasible(self) -> np.ndarray:
        return self.violation <= 0

    def ranks(self, idx: np.ndarray | None = None) -> np.ndarray:
        """Constrained non-dominated ranks: feasible rows by Pareto rank, then infeasible by violation."""
        idx = np.arange(len(self)) if idx is None else np.asarray(idx)
        vals, viol = self.values[idx], self.violation[idx]
        out = np.empty(len(idx), dtype=float)
        ok = viol <= 0
        ranks = non_dominated_ranks(vals[ok], ["minimize"] * vals.shape[1]) if ok.any() else np.zeros(0)
        out[ok] = ranks
        base = (ranks.max() + 1) if ranks.size else 0
        # Infeasible rows after every feasible one, ordered by how badly they violate.
        order = np.argsort(np.argsort(viol[~ok], kind="stable"), kind="stable")
        out[~ok] = base + 1 + order
        return out

    def front(self) -> np.ndarray:
        """Row indices of the feasible non-dominated set (the least-violating rows if none is feasible)."""
        if len(self) == 0:
            return np.zeros(0, dtype=int)
        ok = np.flatnonzero(self.feasible)
        if ok.size == 0:
            return np.flatnonzero(self.violation == self.violation.min())
        return ok[pareto_mask(self.values[ok], ["minimize"] * self.values.shape[1])]


def _trial_violation(trial: FrozenTrial) -> float:
    cons = trial.constraints.values() if hasattr(trial, "constraints") else ()
    legacy = trial.system_attrs.get("constraints") if not cons else None
    vals = list(cons) if cons else list(legacy or ())
    return float(sum(max(0.0, float(c)) for c in vals))


class GenomeSampler(optuna.samplers.BaseSampler):
    """Optuna sampler over a fixed, flat set of categorical parameters.

    Args:
        seed: Seed of the sampler's random stream; a fixed seed gives the same proposals for the
            same history.
        n_startup_trials: Unique completed architectures sampled at random before the algorithm runs.
        resample_tries: How many times a proposal is redrawn to avoid an architecture already seen.
        seed_start: Start from the study's seeds (:class:`~hwnas.search.samplers.seed_start.SeedStart`
            or its settings) before the random start-up; None = no seed start.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        resample_tries: int = 20,
        seed_start: Any = None,
    ) -> None:
        self.seed_start: SeedStart | None = as_seed_start(seed_start)
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self.n_startup_trials = int(n_startup_trials)
        self.resample_tries = int(resample_tries)
        self._search_space = optuna.search_space.IntersectionSearchSpace()  # incremental, O(new trials)
        # Finished trials never change: cache their genomes so each step costs O(new trials).
        self._genome_cache: dict[tuple[int, tuple[str, ...]], Genome | None] = {}
        self._cache_study = ""

    # ----- Optuna's sampler interface ------------------------------------------------------------
    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        space = self._search_space.calculate(study)
        return {n: d for n, d in sorted(space.items()) if isinstance(d, CategoricalDistribution)}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        planned = self.seed_start.propose(study, trial, search_space) if self.seed_start else None
        if planned is not None:
            return planned
        history = self.history(study, search_space, exclude=trial.number)
        if len(history) < self.n_startup_trials:
            genome = unseen(
                lambda: random_genome(history.sizes, self._rng), history.seen, tries=self.resample_tries
            )
        else:
            genome = self.propose(history, study)
        return {
            n: search_space[n].choices[g]  # type: ignore[attr-defined]
            for n, g in zip(history.names, genome, strict=True)
        }

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # ----- what subclasses implement -------------------------------------------------------------
    @abstractmethod
    def propose(self, history: History, study: Study) -> Genome:
        """The next genome to evaluate, given at least ``n_startup_trials`` unique completed ones."""

    # ----- helpers -------------------------------------------------------------------------------
    def _genome(
        self, trial: FrozenTrial, names: list[str], dists: list[CategoricalDistribution]
    ) -> Genome | None:
        if not trial.state.is_finished():
            return _to_genome(trial, names, dists)
        key = (trial.number, tuple(names))
        if key not in self._genome_cache:
            self._genome_cache[key] = _to_genome(trial, names, dists)
        return self._genome_cache[key]

    def history(
        self, study: Study, search_space: dict[str, BaseDistribution], *, exclude: int = -1
    ) -> History:
        """Unique completed genomes of ``study`` (first completion kept) and every genome seen."""
        if study.study_name != self._cache_study:
            self._genome_cache.clear()
            self._cache_study = study.study_name
        names = list(search_space)
        dists: list[CategoricalDistribution] = [search_space[n] for n in names]  # type: ignore[misc]
        sizes = [len(d.choices) for d in dists]
        signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        seen: set[Genome] = set()
        done: set[Genome] = set()
        rows: list[Genome] = []
        vals: list[np.ndarray] = []
        viol: list[float] = []
        for t in study.get_trials(deepcopy=False):
            if t.number == exclude:
                continue
            g = self._genome(t, names, dists)
            if g is None:
                continue
            seen.add(g)
            if g not in done and t.state == TrialState.COMPLETE and t.values is not None:
                done.add(g)
                rows.append(g)
                vals.append(np.asarray(t.values, dtype=float) * signs)
                viol.append(_trial_violation(t))
        m = len(study.directions)
        return History(
            names=names,
            sizes=sizes,
            genomes=np.asarray(rows, dtype=int).reshape(-1, len(names)),
            values=np.asarray(vals, dtype=float).reshape(-1, m),
            violation=np.asarray(viol, dtype=float),
            seen=seen,
        )


def _to_genome(trial: FrozenTrial, names: list[str], dists: list[CategoricalDistribution]) -> Genome | None:
    if any(n not in trial.params for n in names):
        return None
    try:
        return tuple(int(d.to_internal_repr(trial.params[n])) for n, d in zip(names, dists, strict=True))
    except ValueError:
        return None  # a value outside the current choices (e.g. the config changed)


def choose(rng: np.random.RandomState, items: Sequence[Any]) -> Any:
    """One item drawn uniformly (``rng.choice`` would turn tuples into arrays)."""
    return items[int(rng.randint(len(items)))]

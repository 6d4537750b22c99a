"""``search=evolution_pareto``: Optuna's NSGA-II, with children that are new architectures.

On a small categorical genome NSGA-II's crossover + mutation often re-creates an architecture that was
already evaluated (about a third of its suggestions on NAS-Bench-201). Each repeat costs nothing to
evaluate (the search reuses the stored result) but takes a slot of the generation, so the population
learns less per unique evaluation. This subclass keeps Optuna's selection, crossover and mutation and
only redraws a child (up to ``max_redraws`` times) while it equals an architecture already in the study,
finished or being evaluated by another worker (with ``search.n_workers`` > 1 a child equal to a running
trial would only wait for that trial's result).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.trial import FrozenTrial, TrialState

from hwnas.search.samplers.seed_start import SeedStart, as_seed_start
from hwnas.search.storage.view import read_from


class UniqueChildNSGAIISampler(NSGAIISampler):
    """NSGA-II whose children avoid architectures already in the study.

    Args:
        max_redraws: How many times a repeated child is redrawn before it is accepted anyway.
        seed_start: Start from the study's seeds (:class:`~hwnas.search.samplers.seed_start.SeedStart`
            or its settings; None = a random first generation, as Optuna's).
        **kwargs: Passed to ``optuna.samplers.NSGAIISampler`` (population_size, mutation_prob,
            crossover_prob, swapping_prob, seed, ...).
    """

    def __init__(self, *, max_redraws: int = 20, seed_start: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_redraws = int(max_redraws)
        self.seed_start: SeedStart | None = as_seed_start(seed_start)
        self._fill_rng = np.random.default_rng(kwargs.get("seed"))
        self._indexes: dict[int, _CompleteIndex] = {}
        # Redraws call Optuna's sample_relative again with the same trial snapshot: without these, each
        # would store the trial's generation again (a storage write) and look its parents up again.
        self._generation_of: dict[int, int] = {}
        self._parents_of: tuple[tuple[int, int] | None, list[FrozenTrial]] = (None, [])

    # -- Optuna's generation bookkeeping, from an incremental index instead of a walk over the study ------

    def _index(self, study: optuna.Study) -> _CompleteIndex:
        index = self._indexes.setdefault(id(study), _CompleteIndex(self._get_generation_key()))
        return index.refresh(study)

    def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
        """Optuna's rule (the newest generation while it has fewer than ``population_size`` complete
        trials, else the next one), counted from the index."""
        generation = trial.system_attrs.get(self._get_generation_key(), None)
        if generation is not None:
            return generation
        if trial._trial_id in self._generation_of:  # a redraw: ``trial`` is the same stale snapshot
            return self._generation_of[trial._trial_id]
        newest, count = self._index(study).newest_generation()
        assert self._population_size is not None, "Population size must be set."
        generation = newest if count < self._population_size else newest + 1
        study._storage.set_trial_system_attr(trial._trial_id, self._get_generation_key(), generation)
        self._generation_of = {trial._trial_id: generation}  # only the trial being sampled
        return generation

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """An enqueued trial (a seeded baseline, a re-queued one) suggests only fixed values, so Optuna never
        calls ``sample_relative`` and never gives it a generation: it would sit outside every population
        and never be a parent. It gets its generation here, by the same rule."""
        super().before_trial(study, trial)
        if trial.system_attrs.get("fixed_params"):
            self.get_trial_generation(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """Optuna's (the intersection of the complete trials' distributions, single-valued ones left to
        ``sample_independent``), kept up to date from the index."""
        return {n: d for n, d in self._index(study).search_space().items() if not d.single()}

    def get_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        return self._index(study).of_generation(generation)

    def get_parent_population(self, study: optuna.Study, generation: int) -> list[FrozenTrial]:
        """As Optuna's (the parents are chosen once per generation and kept in the study's system
        attributes), with the cached parents looked up by id in the index."""
        if generation == 0:
            return []
        if self._parents_of[0] == (id(study), generation):  # a redraw, or another trial of the generation
            return self._parents_of[1]
        key = self._get_parent_cache_key_prefix() + str(generation)
        cached = study._storage.get_study_system_attrs(study._study_id).get(key, None)
        if cached is not None:
            parents = self._index(study).by_ids(cached)
            self._parents_of = ((id(study), generation), parents)  # chosen once per generation, then fixed
            return parents
        parents = self.select_parent(study, generation)
        ids = [t._trial_id for t in parents]
        study._storage.set_study_system_attr(study._study_id, key, ids)
        # Later calls get them as Optuna's would: read back from the cache, in study order.
        self._parents_of = ((id(study), generation), self._index(study).by_ids(ids))
        return parents

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        planned = self.seed_start.propose(study, trial, search_space) if self.seed_start else None
        if planned is not None:  # a seed's move or trade; it joins the generations as any child does
            self.get_trial_generation(study, trial)
            return planned
        child = super().sample_relative(study, trial, search_space)
        if not child:  # first generation: random, left to sample_independent
            return child
        index = self._index(study)
        seen = index.seen | index.in_flight
        for _ in range(self.max_redraws):
            full = self._complete(child, search_space)
            if tuple(sorted(full.items())) not in seen:
                return full
            child = super().sample_relative(study, trial, search_space)
        return self._complete(child, search_space)

    def _complete(self, child: dict[str, Any], search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """Fill the parameters NSGA-II left to mutation, as its random sampler would (uniformly)."""
        full = dict(child)
        for name, dist in search_space.items():
            if name not in full:
                choices = dist.choices  # type: ignore[attr-defined]
                full[name] = choices[int(self._fill_rng.integers(len(choices)))]
        return full


class _CompleteIndex:
    """COMPLETE trials by generation and by id, and the parameters of every finished trial (``seen``): the
    finished prefix of the study is absorbed once, only the trials from the oldest unfinished one on are
    re-read (O(new trials) on journal and in-memory storages)."""

    def __init__(self, generation_key: str) -> None:
        self.key = generation_key
        self.low = 0
        self.by_generation: dict[int, list[FrozenTrial]] = {}
        self.by_id: dict[int, FrozenTrial] = {}
        self.tail: list[FrozenTrial] = []
        self.space: dict[str, BaseDistribution] | None = None  # intersection over the absorbed trials
        self.newest = 0  # the highest generation absorbed (Optuna's walk starts from 0)
        self.seen: set[tuple] = set()  # params of finished trials (an unfinished one's may not be set yet)
        self.in_flight: set[tuple] = (
            set()
        )  # params of running trials (other workers'), as of the last refresh

    def refresh(self, study: optuna.Study) -> _CompleteIndex:
        tail = read_from(study, self.low)
        i = 0
        while i < len(tail) and tail[i].state.is_finished():
            self._add(tail[i])
            i += 1
        self.low += i
        self.tail = [t for t in tail[i:] if t.state == TrialState.COMPLETE]
        # Another worker's trial being evaluated: proposing it again would only wait for its result.
        self.in_flight = {
            tuple(sorted(t.params.items())) for t in tail[i:] if t.state == TrialState.RUNNING and t.params
        }
        return self

    def _add(self, t: FrozenTrial) -> None:
        if t.params:
            self.seen.add(tuple(sorted(t.params.items())))
        if t.state == TrialState.COMPLETE:
            generation = t.system_attrs.get(self.key, -1)
            self.by_generation.setdefault(generation, []).append(t)
            self.newest = max(self.newest, generation)
            self.by_id[t._trial_id] = t
            self.space = _intersect(self.space, t)

    def search_space(self) -> dict[str, BaseDistribution]:
        """The distributions every complete trial shares, sorted by name (as Optuna's intersection)."""
        space = self.space
        for t in self.tail:
            space = _intersect(space, t)
        return dict(sorted((space or {}).items()))

    def newest_generation(self) -> tuple[int, int]:
        """``(the highest generation among complete trials, at least 0; its complete trials)``."""
        tail = [t.system_attrs.get(self.key, -1) for t in self.tail]
        newest = max([self.newest, *tail])
        return newest, len(self.by_generation.get(newest, [])) + tail.count(newest)

    def of_generation(self, generation: int) -> list[FrozenTrial]:
        return [
            *self.by_generation.get(generation, []),
            *(t for t in self.tail if t.system_attrs.get(self.key) == generation),
        ]

    def by_ids(self, ids: list[int]) -> list[FrozenTrial]:
        """The trials of ``ids`` in study order (as Optuna's filter over all trials returns them)."""
        tail = {t._trial_id: t for t in self.tail}
        found = [self.by_id.get(i) or tail.get(i) for i in ids]
        return sorted((t for t in found if t is not None), key=lambda t: t.number)


def _intersect(space: dict[str, BaseDistribution] | None, t: FrozenTrial) -> dict[str, BaseDistribution]:
    if space is None:
        return dict(t.distributions)
    return {n: d for n, d in space.items() if t.distributions.get(n) == d}

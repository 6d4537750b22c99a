"""``search=evolution_pareto``: Optuna's NSGA-II, with children that are new architectures.

On a small categorical genome NSGA-II's crossover + mutation often re-creates an architecture that was
already evaluated (about a third of its suggestions on NAS-Bench-201). Each repeat costs nothing to
evaluate (the search reuses the stored result) but takes a slot of the generation, so the population
learns less per unique evaluation. This subclass keeps Optuna's selection, crossover and mutation and
only redraws a child (up to ``max_redraws`` times) while it equals an architecture already in the study.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import NSGAIISampler
from optuna.trial import FrozenTrial


class UniqueChildNSGAIISampler(NSGAIISampler):
    """NSGA-II whose children avoid architectures already in the study.

    Args:
        max_redraws: How many times a repeated child is redrawn before it is accepted anyway.
        **kwargs: Passed to ``optuna.samplers.NSGAIISampler`` (population_size, mutation_prob,
            crossover_prob, swapping_prob, seed, ...).
    """

    def __init__(self, *, max_redraws: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_redraws = int(max_redraws)
        self._fill_rng = np.random.default_rng(kwargs.get("seed"))
        self._seen: set[tuple] = set()
        self._seen_upto: dict[int, int] = {}

    def _refresh_seen(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        done = start = self._seen_upto.get(id(study), 0)
        for t in trials[start:]:
            if not t.state.is_finished():
                break  # its parameters may not be set yet; look again next time
            if t.params:
                self._seen.add(tuple(sorted(t.params.items())))
            done += 1
        self._seen_upto[id(study)] = done

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        child = super().sample_relative(study, trial, search_space)
        if not child:  # first generation: random, left to sample_independent
            return child
        self._refresh_seen(study)
        for _ in range(self.max_redraws):
            full = self._complete(child, search_space)
            if tuple(sorted(full.items())) not in self._seen:
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

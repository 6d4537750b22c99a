"""Regularized (aging) evolution (Real et al., AAAI 2019) adapted to several objectives.

The population is the last ``population_size`` unique completed architectures, so old ones age out
whatever their fitness; a parent is the winner of a tournament among ``sample_size`` random members,
judged by constrained non-dominated rank, then crowding distance, then at random.
"""

from __future__ import annotations

import numpy as np
from optuna.study import Study

from hwnas.search.samplers.base import GenomeSampler, History
from hwnas.search.samplers.genome import Genome, crowding_distance, mutate, unseen


class RegularizedEvolutionSampler(GenomeSampler):
    """Aging evolution with Pareto-rank tournaments and one-parameter mutations.

    Args:
        population_size: P, the number of most recent unique architectures that form the population.
        sample_size: S, tournament size (S = P is pure elitism, S = 2 is weak selection).
        mutation_prob: Probability that each parameter other than the one always mutated changes too.
        seed: Seed of the sampler's random stream.
        n_startup_trials: Random architectures before evolution starts (default: ``population_size``).
    """

    def __init__(
        self,
        *,
        population_size: int = 20,
        sample_size: int = 5,
        mutation_prob: float = 0.0,
        seed: int | None = None,
        n_startup_trials: int | None = None,
    ) -> None:
        if population_size < 2 or not 1 <= sample_size <= population_size:
            raise ValueError("need population_size >= 2 and 1 <= sample_size <= population_size")
        super().__init__(
            seed=seed, n_startup_trials=population_size if n_startup_trials is None else n_startup_trials
        )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation_prob = float(mutation_prob)

    def propose(self, history: History, study: Study) -> Genome:
        pop = np.arange(max(0, len(history) - self.population_size), len(history))
        ranks = history.ranks(pop)
        crowd = np.zeros(len(pop))
        for r in np.unique(ranks):
            members = np.flatnonzero(ranks == r)
            crowd[members] = crowding_distance(history.values[pop[members]])

        def child() -> Genome:
            picks = self._rng.choice(len(pop), size=min(self.sample_size, len(pop)), replace=False)
            noise = self._rng.rand(len(picks))
            best = picks[np.lexsort((noise, -crowd[picks], ranks[picks]))[0]]
            parent = tuple(int(x) for x in history.genomes[pop[best]])
            return mutate(parent, history.sizes, self._rng, extra_prob=self.mutation_prob)

        return unseen(child, history.seen, tries=self.resample_tries)

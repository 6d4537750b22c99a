"""Pareto local search (Paquete et al., 2004) over one-parameter neighbourhoods.

Each step takes a member of the current front whose neighbourhood is not yet fully evaluated and
proposes one of its unevaluated neighbours; improvements join the front and are explored in turn.
When every front member is exhausted, a random restart follows. The state is read from the study,
so a resumed search continues where it stopped.
"""

from __future__ import annotations

from typing import Any

from optuna.study import Study

from hwnas.search.samplers.base import GenomeSampler, History, choose
from hwnas.search.samplers.genome import Genome, neighbours, random_genome, unseen


class ParetoLocalSearchSampler(GenomeSampler):
    """Explore the unevaluated one-parameter neighbours of the current Pareto front.

    Args:
        seed: Seed of the sampler's random stream.
        n_startup_trials: Random architectures before the local search starts.
        newest_first: Explore the most recently found front member first (follows improvements
            greedily) instead of a random member.
        seed_start: Start from the study's seeds first (see :class:`~hwnas.search.samplers.base.GenomeSampler`).
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        newest_first: bool = False,
        seed_start: Any = None,
    ) -> None:
        super().__init__(seed=seed, n_startup_trials=n_startup_trials, seed_start=seed_start)
        self.newest_first = bool(newest_first)

    def propose(self, history: History, study: Study) -> Genome:
        front = [int(i) for i in history.front()]
        while front:
            i = front[-1] if self.newest_first else choose(self._rng, front)
            base = tuple(int(x) for x in history.genomes[i])
            fresh = [g for g in neighbours(base, history.sizes) if g not in history.seen]
            if fresh:
                return choose(self._rng, fresh)
            front.remove(i)  # exhausted: every neighbour has been evaluated
        return unseen(
            lambda: random_genome(history.sizes, self._rng), history.seen, tries=self.resample_tries
        )

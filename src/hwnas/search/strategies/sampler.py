"""Sampler-driven search: the study's Optuna sampler proposes, the loop evaluates, the sampler learns.

Every evolutionary, Bayesian or random ``conf/search`` option is this strategy with another ``sampler:``
(NSGA-II, NSGA-III, MOTPE, GP, regularized evolution, local search, a surrogate). Several processes may
share its study (``search.n_workers``, or launches on a cluster with a shared ``search.storage``).
"""

from __future__ import annotations

from typing import Any

import optuna

from hwnas.search.loop import run_loop
from hwnas.search.samplers.seed_start import Probe, SeedStart
from hwnas.search.strategies.base import SearchContext, Strategy
from hwnas.utils.errors import ConfigError


class SamplerStrategy(Strategy):
    """Asks the study's sampler until the study holds ``n_trials`` unique architectures.

    Args:
        sampler: The Optuna sampler (``search.sampler``).
        n_trials: Unique architectures to evaluate (repeats are reused, not counted).
        max_attempts_factor: Stop after ``n_trials`` × this many suggestions (a converged sampler repeats).
        name: The ``strategy`` column (``search.name``); the sampler's class name when unset.
    """

    def __init__(
        self,
        *,
        sampler: optuna.samplers.BaseSampler,
        n_trials: Any = 16,
        max_attempts_factor: Any = 20,
        name: str | None = None,
    ) -> None:
        if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
            raise ConfigError(
                f"must be a positive integer, got {n_trials!r}",
                key="search.n_trials",
                fix="e.g. search.n_trials=16",
            )
        if not isinstance(max_attempts_factor, int | float) or max_attempts_factor < 1:
            raise ConfigError(f"must be >= 1, got {max_attempts_factor!r}", key="search.max_attempts_factor")
        self._sampler = sampler
        self._n_trials = n_trials
        self.max_attempts = int(n_trials * max_attempts_factor)
        self.name = str(name) if name else type(sampler).__name__

    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._sampler

    @property
    def n_trials(self) -> int:
        return self._n_trials

    def budget(self, done: int) -> int:
        return max(self._n_trials, done)  # a resumed study may already hold more

    def describe(self) -> str:
        return f"{type(self._sampler).__name__}, {self._n_trials} unique architectures"

    def run(self, ctx: SearchContext) -> None:
        start = getattr(self._sampler, "seed_start", None)
        if isinstance(start, SeedStart):
            start.bind_probe(*cost_probe(ctx))
        run_loop(ctx.study, n_trials=self._n_trials, max_attempts=self.max_attempts, strategy=self.name,
                 **ctx.loop_kwargs())  # fmt: skip


def cost_probe(ctx: SearchContext) -> tuple[Probe | None, int | None]:
    """``(probe, objective index)``: the evaluator's cheap stage (no training) measuring the one minimised
    objective it produces (e.g. latency), for a seed start's trades; ``(None, None)`` if there is none."""
    cheap = set(getattr(ctx.evaluator, "cheap_metrics", ()))
    found = [i for i, o in enumerate(ctx.objectives) if o.name in cheap and o.direction == "minimize"]
    if len(found) != 1:
        return None, None
    index = found[0]
    name = ctx.objectives[index].name

    def probe(params: dict[str, Any]) -> float | None:
        try:
            value = ctx.evaluator.cheap(ctx.space.make(params)).get(name)
        except Exception:  # noqa: BLE001 - an architecture the evaluator refuses is simply not a trade
            return None
        return None if value is None else float(value)

    return probe, index

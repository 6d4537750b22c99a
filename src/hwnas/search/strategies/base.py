"""The strategy contract: what every ``conf/search`` option instantiates (its ``strategy:`` node).

A strategy proposes architectures and learns from their results through the one Optuna study: a
sampler-driven search asks the study's sampler (:class:`~hwnas.search.strategies.sampler.SamplerStrategy`);
a gradient or growth strategy searches on its own and hands its architectures to the study round by round
(:class:`ProposingStrategy`). Either way every architecture goes through the same loop (deduplication,
cheap before expensive, fault isolation) and is stored as a trial, so reporting and the final stage read
one results format. Adding a strategy means one class here and one YAML under ``conf/search/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig

from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.train import TrainingEvaluator
from hwnas.search.fidelity import Fidelity
from hwnas.search.loop import OnTrial, evaluate_proposals
from hwnas.search.objectives import Constraint, Objective
from hwnas.search.prescreen import Prescreen
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import build
from hwnas.utils.errors import ConfigError


@dataclass(frozen=True)
class Proposal:
    """One architecture a strategy proposes and the trial attributes that say how it was found."""

    spec: ArchSpec
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchContext:
    """What a strategy runs with: the one study and the pieces the config composed."""

    cfg: DictConfig
    study: optuna.Study
    space: SearchSpace
    evaluator: Evaluator
    objectives: Sequence[Objective]
    constraints: Sequence[Constraint]
    run_dir: Path
    on_trial: OnTrial | None = None
    worker: str = "0"
    fidelity: Fidelity | None = None  # search.fidelity: promotions up the rungs
    prescreen: Prescreen | None = None  # search.prescreen: zero-cost drop before training

    def loop_kwargs(self) -> dict[str, Any]:
        """The arguments every evaluation in the loop takes."""
        return {"space": self.space, "evaluator": self.evaluator, "objectives": self.objectives,
                "constraints": self.constraints, "on_trial": self.on_trial, "worker": self.worker,
                "fidelity": self.fidelity, "prescreen": self.prescreen}  # fmt: skip


class Strategy(ABC):
    """Proposes architectures and learns from their results through the study (see the module docstring)."""

    #: The ``strategy`` column of every trial it proposes (``search.name``).
    name: str

    def check(self, *, space: SearchSpace, evaluator: Evaluator, cfg: DictConfig) -> None:  # noqa: B027
        """Refuse, before any data, training or storage, a combination this strategy cannot run (cheap)."""

    @abstractmethod
    def sampler(self) -> optuna.samplers.BaseSampler:
        """The study's sampler (a proposing strategy's trials are all enqueued: it only seeds the study)."""

    @abstractmethod
    def budget(self, done: int) -> int:
        """Unique architectures the study will hold when this run ends, given ``done`` already there."""

    @property
    def n_trials(self) -> int | None:
        """The user's budget of unique architectures, or ``None`` when the strategy decides how many."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """One line for the start-up log: the strategy and its main settings."""

    @abstractmethod
    def run(self, ctx: SearchContext) -> None:
        """Propose architectures and have the loop evaluate them as trials of ``ctx.study`` until done."""


class ProposingStrategy(Strategy):
    """A strategy that searches on its own (a supernet, a growth step) and hands architectures to the study
    round by round: a round is evaluated before the next is proposed, so it can learn from the study."""

    seed: int = 0
    #: The strategy trains on images in this process, so it needs a training evaluator and one worker.
    trains: bool = True

    def sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=self.seed)

    def budget(self, done: int) -> int:
        return done + self.planned()

    @abstractmethod
    def planned(self) -> int:
        """Architectures this strategy proposes at most."""

    @abstractmethod
    def proposal_rounds(self, ctx: SearchContext) -> Iterator[list[Proposal]]:
        """Proposals round by round; each round is evaluated before the next is asked for."""

    def check(self, *, space: SearchSpace, evaluator: Evaluator, cfg: DictConfig) -> None:
        if int(cfg.search.get("n_workers", 1) or 1) != 1:
            raise ConfigError(
                f"{self.name} trains in this process, one step after another",
                key="search.n_workers",
                fix="search.n_workers=1 (sweep settings with -m on a launcher instead)",
            )
        if self.trains and not isinstance(evaluator, TrainingEvaluator):
            raise ConfigError(
                f"a {self.name} search trains on images; evaluator {type(evaluator).__name__} has none",
                key="evaluator",
                fix=f"use evaluator=train or evaluator=supernet with search={self.name}",
            )

    def run(self, ctx: SearchContext) -> None:
        for proposals in self.proposal_rounds(ctx):
            evaluate_proposals(ctx.study, proposals, **ctx.loop_kwargs())


def build_strategy(cfg: DictConfig) -> Strategy:
    """The ``search.strategy`` node of the chosen ``conf/search`` option, built and type-checked."""
    node = cfg.search.get("strategy")
    if node is None:
        raise ConfigError(
            f"the search option {cfg.search.get('name')!r} has no strategy: node",
            key="search.strategy",
            fix="add one as conf/search/random.yaml does (SamplerStrategy over its sampler:); a gradient or "
            "growth option's former gradient: node is now strategy:",
        )
    strategy = build(node, "search.strategy")
    if not isinstance(strategy, Strategy):
        raise ConfigError(
            f"_target_ built a {type(strategy).__name__}, not a hwnas.search.strategies.base.Strategy",
            key="search.strategy._target_",
            choices=[
                "hwnas.search.strategies.sampler.SamplerStrategy",
                "hwnas.search.strategies.dnas.GradientSearch",
                "hwnas.search.strategies.petridish.PetridishSearch",
            ],  # fmt: skip
        )
    return strategy

"""Known architectures evaluated first: the space's hand-designed baseline and the user's own designs.

A training search starts from what the user already has (``search.seed_baseline``,
``search.seed_architectures``): each is an enqueued trial of the study, evaluated by the same evaluator
before anything the strategy proposes, counted in the budget and marked ``seeded`` (its trials.csv
column), so the front is never worse than the baseline, evolution can mutate from it, and the final
stage knows where the baseline stands on the search's own proxy. A seeded model never counts as a
searched one. Table benchmarks (``evaluator=table``) are not seeded: they look results up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.train import TrainingEvaluator
from hwnas.search.trial_attrs import SEEDED_ATTR, STRATEGY_ATTR, is_evaluated
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import ConfigError, InvalidArchError

log = logging.getLogger("hwnas.search")

#: The ``seeded`` value of the space's hand-designed baseline (a user's design: ``arch:<file name>``).
BASELINE = "baseline"


def seeds_of(cfg: DictConfig, space: SearchSpace, evaluator: Evaluator) -> list[tuple[ArchSpec, str]]:
    """``(architecture, seeded label)`` of every seed the config asks for, checked (cheap; at start-up).

    Returns ``[]`` for an evaluator that trains nothing. A user's arch file that is missing, corrupt or
    outside the space is a :class:`ConfigError` naming ``search.seed_architectures``; a baseline outside
    narrowed ranges is skipped with a warning (the final stage says the same)."""
    if not isinstance(evaluator, TrainingEvaluator):
        return []
    seeds: list[tuple[ArchSpec, str]] = []
    if bool(cfg.search.get("seed_baseline", True)):
        try:
            seeds.append((space.baseline(), BASELINE))
        except InvalidArchError as exc:
            log.warning(
                "search: the baseline is outside this search space's ranges (%s); it is not evaluated. Set "
                "search_space.baseline.* to an architecture of the space, or search.seed_baseline=false",
                exc,
            )
    for path in _paths(cfg.search.get("seed_architectures")):
        try:
            spec = space.load(path)
        except InvalidArchError as exc:
            raise ConfigError(
                f"{path}: {exc}",
                key="search.seed_architectures",
                fix="list JSON files written by hwnas (e.g. <run dir>/pareto/*.json) of this search space",
            ) from exc
        seeds.append((spec, f"arch:{Path(path).name}"))
    unique: dict[str, tuple[ArchSpec, str]] = {}
    for spec, label in seeds:
        unique.setdefault(spec.key, (spec, label))  # the baseline listed again by file is one seed
    return list(unique.values())


def _paths(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return [str(v) for v in value]
    except TypeError:
        raise ConfigError(
            f"must be a list of architecture files, got {value!r}",
            key="search.seed_architectures",
            fix="search.seed_architectures=[path/a.json,path/b.json]",
        ) from None


def enqueue_seeds(study: optuna.Study, seeds: list[tuple[ArchSpec, str]], *, strategy: str) -> int:
    """Enqueue the seeds the study does not hold yet (evaluated, waiting or running: a resumed run adds
    none twice); the next asks pop them before the strategy proposes. Returns how many were enqueued."""
    held = set()
    for t in study.get_trials(deepcopy=False):
        label = t.user_attrs.get(SEEDED_ATTR)
        if label and (is_evaluated(t) or t.state in (TrialState.WAITING, TrialState.RUNNING)):
            held.add(label)
    new = [(spec, label) for spec, label in seeds if label not in held]
    for spec, label in new:
        study.enqueue_trial(dict(spec.values), user_attrs={SEEDED_ATTR: label, STRATEGY_ATTR: strategy})
    if new:
        log.info(
            "search: %d seeded architecture(s) first: %s",
            len(new),
            ", ".join(f"{s.key} ({lbl})" for s, lbl in new),
        )
    return len(new)

"""Zero-cost pre-screen (``search.prescreen``): drop a candidate before training when its zero-cost score is
low among the candidates of similar latency.

After the cheap stage (latency known), the score (:mod:`hwnas.evaluators.zero_cost`, e.g. ``naswot``) is
computed on the untrained model and compared with the scores of the ``neighbours`` candidates scored so far
whose latency is closest. Below their ``drop`` quantile the candidate is not trained: its trial fails with
reason ``prescreened: …`` and does not count against ``search.n_trials`` (it cost a fraction of a second),
so the budget's trainings go to the others. Scores are compared within latency, never globally: a size
score (params, FLOPs) mostly repeats the latency axis. A pre-screen only drops; it never ranks the front,
which is made of trained accuracies. Every scored trial records ``prescreen/<score>`` and
``seconds_prescreen``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from hwnas.evaluators.zero_cost import check_name
from hwnas.search.trial_attrs import trial_attrs
from hwnas.utils.errors import ConfigError


@dataclass(frozen=True)
class Prescreen:
    """``search.prescreen``: ``score``, ``drop`` quantile, ``neighbours``, ``latency`` metric."""

    score: str
    drop: float
    neighbours: int
    latency: str
    _dropped: list[tuple[float, float]] = field(default_factory=list, compare=False, repr=False)

    @property
    def metric(self) -> str:
        return f"prescreen/{self.score}"

    @classmethod
    def from_cfg(
        cls, node: Mapping[str, Any] | None, *, evaluator: Any, latency: str | None
    ) -> Prescreen | None:
        if not node:
            return None
        allowed = ("score", "drop", "neighbours")
        if set(node) - set(allowed):
            raise ConfigError(
                f"unknown key(s) {sorted(set(node) - set(allowed))}", key="search.prescreen", choices=allowed
            )
        if not hasattr(evaluator, "zero_cost"):
            raise ConfigError(
                f"evaluator {type(evaluator).__name__} has no untrained model to score",
                key="search.prescreen", fix="use evaluator=train, or search.prescreen=null",
            )  # fmt: skip
        if latency is None:
            raise ConfigError("needs a latency objective the cheap stage measures", key="search.prescreen",
                              fix="e.g. objective hw/latency_ms (minimize), or search.prescreen=null")  # fmt: skip
        drop, k = node.get("drop", 0.5), node.get("neighbours", 8)
        if not isinstance(drop, int | float) or not 0 < float(drop) < 1:
            raise ConfigError(f"must be a quantile in (0, 1), got {drop!r}", key="search.prescreen.drop")
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise ConfigError(f"must be an integer >= 2, got {k!r}", key="search.prescreen.neighbours")
        score = check_name(str(node.get("score", "naswot")), key="search.prescreen.score")
        return cls(score, float(drop), k, latency)

    def describe(self) -> str:
        return f"pre-screen: {self.score} below the {self.drop:g} quantile of its {self.neighbours} latency neighbours is not trained"

    def check(
        self, evaluator: Any, spec: Any, metrics: dict[str, Any], peers: Sequence[FrozenTrial]
    ) -> str | None:
        """Score ``spec`` into ``metrics``; the reason it is dropped, or ``None`` to train it."""
        if self.score in metrics:  # a size score the cheap stage already counted
            value = float(metrics[self.score])
        else:
            value = float(evaluator.zero_cost(spec, self.score))
        metrics[self.metric] = value
        lat = float(metrics[self.latency])
        scored = [(float(x), float(v)) for x, v in self._dropped]
        for t in peers:
            m = trial_attrs(t).get("metrics") or {}
            if m.get(self.metric) is not None and m.get(self.latency) is not None:
                scored.append((float(m[self.latency]), float(m[self.metric])))
        near = [(abs(math.log(max(x, 1e-12) / max(lat, 1e-12))), v) for x, v in scored]
        if len(near) < self.neighbours:
            return None  # too few scored neighbours to judge yet
        near.sort()
        bar = float(np.quantile([s for _, s in near[: self.neighbours]], self.drop))
        if value < bar:
            self._dropped.append((lat, value))
            return f"prescreened: {self.score} {value:.4g} < {bar:.4g}, the {self.drop:g} quantile of its {self.neighbours} latency neighbours"
        return None

"""Multi-fidelity promotion (``search.fidelity``): longer training for the candidates that look promising.

Every feasible candidate trains at rung 0 (the evaluator's own partial training). A candidate is then
promoted to rung 1, which trains it on from rung 0's weights (:meth:`TrainingEvaluator.promote`), if

* it is **non-dominated** among every candidate scored at rung 0 so far, on (rung-0 accuracy, the
  objectives known before training, e.g. latency), and
* promotions from rung 0 stay within ``ceil(n / eta)`` of the ``n`` candidates scored there (asynchronous
  successive halving's rule: decided on arrival, no waiting for a full rung);

and so on up the rungs. How it is recorded, as Optuna cannot change a trial's values after ``tell``: the
promotions happen *before* the trial is told, inside its evaluation, so the trial's accuracy is that of its
highest rung; its metrics keep every rung's score (``fidelity/r0``, ``fidelity/r1``, ... columns of
trials.csv), ``fidelity/rung`` (the highest) and ``fidelity/epochs`` (candidate-epochs spent). Its values
at rung 0 are kept in the ``rung0_values`` attribute, for the seed start's comparisons of one-parameter
moves, which must compare equally trained models.

The budget stays ``search.n_trials`` architectures; promotions are bounded by ``eta``, so a run spends at
most ``n × (e0 + e1 / eta + e2 / eta² …)`` candidate-epochs, counted (not timed), so a run and its resume
are reproducible. A trial killed mid-rung is re-run: rung 0 again (deterministic, the cheap one), then the
promotions it had finished are reused from disk and the interrupted one restarts from its rung's start.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial

from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.rungs import Rung, parse_rungs
from hwnas.evaluators.train import check_size
from hwnas.search.objectives import Objective
from hwnas.search.prescreen import Prescreen
from hwnas.search.trial_attrs import trial_attrs
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import ConfigError

log = logging.getLogger("hwnas.search")

RUNG_METRIC = "fidelity/rung"
EPOCHS_METRIC = "fidelity/epochs"


def rung_metric(index: int) -> str:
    """The metric holding a candidate's accuracy at rung ``index``."""
    return f"fidelity/r{index}"


@dataclass(frozen=True)
class Fidelity:
    """The promotion schedule of a search (see the module docstring)."""

    rungs: tuple[Rung, ...]
    eta: int
    accuracy: Objective
    known: tuple[Objective, ...]  # objectives the evaluator knows before training (latency)

    @classmethod
    def from_cfg(
        cls, node: Mapping[str, Any] | None, *, objectives: Sequence[Objective], evaluator: Evaluator
    ) -> Fidelity | None:
        """``search.fidelity`` checked against the evaluator and objectives (``None`` when off)."""
        if not node:
            return None
        if not evaluator.promotable:  # a table's or supernet's accuracy has no rungs to climb
            log.info("search.fidelity: off, evaluator %s trains no candidate on", type(evaluator).__name__)
            return None
        unknown = set(node) - {"rungs", "eta"}
        if unknown:
            raise ConfigError(
                f"unknown key(s) {sorted(unknown)}", key="search.fidelity", choices=("rungs", "eta")
            )
        cheap = set(getattr(evaluator, "cheap_metrics", ()))
        trained = [o for o in objectives if o.name not in cheap]
        if len(trained) != 1 or trained[0].direction != "maximize":
            raise ConfigError(
                f"needs exactly one maximised objective that training produces, got {[o.name for o in trained]}",
                key="search.fidelity", fix="e.g. objectives val/miou (maximize) and hw/latency_ms, or search.fidelity=null",
            )  # fmt: skip
        eta = node.get("eta", 3)
        if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
            raise ConfigError(f"must be an integer >= 2, got {eta!r}", key="search.fidelity.eta")
        rungs = parse_rungs(node.get("rungs"))
        if not rungs:
            raise ConfigError("needs at least one rung", key="search.fidelity.rungs",
                              fix="e.g. search.fidelity.rungs=[{max_epochs: 3, limit_train_batches: 32}]")  # fmt: skip
        return cls(tuple(rungs), eta, trained[0], tuple(o for o in objectives if o.name in cheap))

    def describe(self) -> str:
        steps = "; ".join(r.describe() for r in self.rungs)
        return f"multi-fidelity: non-dominated 1/{self.eta} promoted per rung ({steps})"

    def evaluate(
        self, evaluator: Any, spec: ArchSpec, metrics: dict[str, Any], peers: Sequence[FrozenTrial]
    ) -> dict[str, Any] | None:
        """Promote ``spec`` (trained at rung 0, ``metrics``) up the rungs while it qualifies against
        ``peers`` (finished trials); updates ``metrics`` in place. Returns its rung-0 metrics when it was
        promoted (the trial's ``rung0_values`` come from them), else ``None``."""
        name = self.accuracy.name
        metrics[rung_metric(0)] = metrics.get(name)
        metrics[RUNG_METRIC], metrics[EPOCHS_METRIC] = 0, int(getattr(evaluator, "max_epochs", 0))
        rung0 = dict(metrics)
        scored = [_metrics(t) for t in peers]
        for rung in self.rungs:
            if not self._promotes(metrics, scored, rung.index - 1):
                break
            trained = evaluator.promote(spec, rung)
            metrics.update(trained)
            metrics[rung_metric(rung.index)] = trained.get(name)
            metrics[RUNG_METRIC] = rung.index
            metrics[EPOCHS_METRIC] += rung.max_epochs
        return None if metrics[RUNG_METRIC] == 0 else rung0

    def _promotes(self, me: Mapping[str, Any], scored: Sequence[Mapping[str, Any]], r: int) -> bool:
        key = rung_metric(r)
        peers = [m for m in scored if m.get(key) is not None]
        promoted = sum(1 for m in peers if int(m.get(RUNG_METRIC) or 0) > r)
        if promoted + 1 > math.ceil((len(peers) + 1) / self.eta):
            return False
        mine = self._point(me, key)
        points = [p for p in (self._point(m, key) for m in peers) if p is not None]
        return mine is not None and not any(_dominates(p, mine) for p in points)

    def _point(self, m: Mapping[str, Any], key: str) -> tuple[float, ...] | None:
        """Minimised (−accuracy at the rung, known objectives)."""
        try:
            vals = [-float(m[key])]
            vals += [float(m[o.name]) if o.direction == "minimize" else -float(m[o.name]) for o in self.known]
        except (KeyError, TypeError, ValueError):
            return None
        return tuple(vals) if all(math.isfinite(v) for v in vals) else None


def _metrics(t: FrozenTrial) -> Mapping[str, Any]:
    return trial_attrs(t).get("metrics") or {}


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def build_schedules(
    node: Mapping[str, Any], *, objectives: Sequence[Objective], evaluator: Evaluator, space: SearchSpace
) -> tuple[Fidelity | None, Prescreen | None]:
    """``search.fidelity`` and ``search.prescreen``, checked before anything runs: a rung resolution the
    space cannot train at would fail every promotion, so it is refused now."""
    fidelity = Fidelity.from_cfg(node.get("fidelity"), objectives=objectives, evaluator=evaluator)
    for rung in fidelity.rungs if fidelity else ():
        # the evaluator's own size (the default rung copies it) is refused at its set-up under its own key
        if rung.image_size is not None and rung.image_size != getattr(evaluator, "image_size", None):
            check_size(space, rung.image_size, key=f"search.fidelity.rungs[{rung.index - 1}].image_size",
                       fix="use a size the search space accepts, or null for the dataset's")  # fmt: skip
    latency = latency_objective(objectives, evaluator)
    return fidelity, Prescreen.from_cfg(node.get("prescreen"), evaluator=evaluator, latency=latency)


def latency_objective(objectives: Sequence[Objective], evaluator: Evaluator) -> str | None:
    """The one minimised objective the evaluator's cheap stage measures (latency), if there is one."""
    cheap = set(getattr(evaluator, "cheap_metrics", ()))
    found = [o.name for o in objectives if o.name in cheap and o.direction == "minimize"]
    return found[0] if len(found) == 1 else None


def schedule_summary(ctx: Any) -> dict[str, Any]:
    """``summary.json``'s ``fidelity`` and ``prescreen`` facts of a search's context: the schedule,
    promotions per rung, candidate-epochs spent; candidates pre-screened out, the score's seconds each."""
    out: dict[str, Any] = {}
    study, fidelity, prescreen = ctx.study, ctx.fidelity, ctx.prescreen
    trials = study.get_trials(deepcopy=False)
    attrs = [trial_attrs(t) for t in trials]
    metrics = [a.get("metrics") or {} for a in attrs]
    if fidelity is not None:
        rungs = [int(m[RUNG_METRIC]) for m in metrics if m.get(RUNG_METRIC) is not None]
        out["fidelity"] = {
            "schedule": fidelity.describe(),
            "eta": fidelity.eta,
            "trained_per_rung": [sum(1 for r in rungs if r >= i) for i in range(len(fidelity.rungs) + 1)],
            "candidate_epochs": int(sum(float(m.get(EPOCHS_METRIC) or 0) for m in metrics)),
        }
    if prescreen is not None:
        secs = [float(a["seconds_prescreen"]) for a in attrs if "seconds_prescreen" in a]
        dropped = sum(1 for a in attrs if str(a.get("fail_reason") or "").startswith("prescreened"))
        out["prescreen"] = {"rule": prescreen.describe(), "scored": len(secs), "dropped": dropped,
                            "seconds_per_candidate": round(sum(secs) / len(secs), 4) if secs else None}  # fmt: skip
    return out

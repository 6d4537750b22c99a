"""``hardware=predictor``: measure a trained candidate whose predicted latency may put it on the front.

A predicted latency is good enough to rank a candidate that is clearly dominated, but not one that
may join the front: that is where a wrong prediction changes the result. So once a candidate with a
*predicted* latency is trained (its accuracy known), and before it is stored, the loop asks: with its
latency at the optimistic end of its interval (``hw/interval_lo_ms`` for a latency to minimise), does any
completed feasible trial of the study dominate it? If none does, the candidate lands on or near the front
and is measured now (``Evaluator.confirm``: ``purpose: near_front``, counted against
``predictor.max_measurements``); the trial is stored with the measured latency, and the predictor's next
prediction refits on the larger measured set.

Nothing here runs for other ``hardware=`` options: the loop calls :func:`confirm_near_front` for every
trained candidate, and it returns at the first check (the latency's source) unless that was predicted.
The front comes from the loop's :class:`~hwnas.search.storage.view.StudyView` (in memory; one tail read).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import TrialState

from hwnas.evaluators.base import Evaluator
from hwnas.pareto import pareto_mask
from hwnas.search.objectives import Objective
from hwnas.search.storage.view import StudyView
from hwnas.search.trial_attrs import trial_attrs
from hwnas.search_space.base import ArchSpec

log = logging.getLogger("hwnas.search")

#: Metrics only a predicted latency has: dropped when a measurement replaces it (as for ``uncertain``).
PREDICTED_ONLY = ("hw/interval_lo_ms", "hw/interval_hi_ms", "hw/interval_level")


def optimistic_values(
    metrics: Mapping[str, Any], objectives: Sequence[Objective], latency_metrics: Sequence[str]
) -> list[float] | None:
    """The candidate's objective vector with each latency objective at its interval's favourable end.

    Returns ``None`` when there is nothing to decide: no interval, no latency objective (a measurement
    could not move the candidate on the front), or an objective missing or NaN (the loop fails it).
    """
    lo, hi = metrics.get("hw/interval_lo_ms"), metrics.get("hw/interval_hi_ms")
    if lo is None or hi is None:
        return None
    out: list[float] = []
    for obj in objectives:
        if obj.name in latency_metrics:
            out.append(float(lo if obj.direction == "minimize" else hi))
        elif metrics.get(obj.name) is None:
            return None
        else:
            out.append(float(metrics[obj.name]))
    has_latency = any(o.name in latency_metrics for o in objectives)
    return out if has_latency and not any(math.isnan(v) for v in out) else None


def feasible_values(view: StudyView, n_objectives: int) -> np.ndarray:
    """``(n, m)`` objective values of the study's evaluated, completed, feasible trials (one per
    architecture), from the view's memory after one tail read (other workers' latest trials included)."""
    rows = [
        t.values
        for t in view.refresh().state().done.values()
        if t.state == TrialState.COMPLETE and t.values is not None and trial_attrs(t).get("feasible")
    ]
    return np.asarray(rows, dtype=float).reshape(len(rows), n_objectives)


def is_near_front(values: Sequence[float], others: np.ndarray, directions: Sequence[str]) -> bool:
    """Whether no row of ``others`` dominates ``values`` (a tie with a front member is on the front)."""
    if len(others) == 0:
        return True
    return bool(pareto_mask(np.vstack([others, np.asarray(values, dtype=float)]), directions)[-1])


def confirm_near_front(
    evaluator: Evaluator,
    spec: ArchSpec,
    metrics: dict[str, Any],
    *,
    view: StudyView,
    objectives: Sequence[Objective],
) -> bool:
    """Measure ``spec``'s predicted latency if it may land on the front; update ``metrics`` in place.

    Call it for a trained candidate, before the trial is stored. Returns ``True`` when ``metrics`` now
    hold a measured latency (the caller recomputes the constraints), ``False`` when nothing changed: the
    latency was not predicted, the rule is off, the candidate is dominated even at its optimistic
    latency, or the measuring budget is spent.
    """
    if metrics.get("hw/source") != "predicted" or not evaluator.confirms_near_front:
        return False
    best = optimistic_values(metrics, objectives, evaluator.latency_metrics)
    if best is None:
        return False
    others = feasible_values(view, len(objectives))
    if not is_near_front(best, others, [o.direction for o in objectives]):
        return False
    measured = evaluator.confirm(spec)
    if measured is None:
        return False
    predicted = (metrics.get("hw/latency_ms"), metrics["hw/interval_lo_ms"], metrics["hw/interval_hi_ms"])
    for key in PREDICTED_ONLY:
        metrics.pop(key, None)
    metrics.update(measured)
    log.info(
        "%s may land on the front (latency predicted %.4g ms in [%.4g, %.4g]): measured %.4g ms",
        spec.key,
        *(math.nan if v is None else float(v) for v in predicted),
        float(measured.get("hw/latency_ms", math.nan)),
    )
    return True

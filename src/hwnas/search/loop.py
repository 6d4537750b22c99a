"""The ask/tell loop shared by every strategy: dedup, cheap-before-expensive, fault isolation.

Every architecture is paid for once: a repeated suggestion is told the stored result (so the sampler
still learns from it), marked ``duplicate`` and does not count against the budget, which is the number
of unique architectures evaluated (successes and failures alike) across all workers of the study.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hwnas.evaluators.base import Evaluator
from hwnas.search.fidelity import Fidelity
from hwnas.search.near_front import confirm_near_front
from hwnas.search.objectives import Constraint, Objective
from hwnas.search.prescreen import Prescreen
from hwnas.search.storage.heartbeats import fail_stale, heartbeat, is_heartbeat_enabled
from hwnas.search.storage.view import LoopState, StudyView
from hwnas.search.trial_attrs import (
    ARCH_ATTR,
    DEVICE_ATTR,
    DUPLICATE_ATTR,
    DUPLICATE_OF_ATTR,
    FAIL_REASON_ATTR,
    KEY_ATTR,
    PROPOSAL_ID_ATTRS,
    RESULT_ATTR,
    RUNG0_VALUES_ATTR,
    SEED_MOVE_ATTR,
    SEEDED_ATTR,
    STRATEGY_ATTR,
    WORKER_ATTR,
    is_evaluated,
)
from hwnas.search_space.base import SearchSpace
from hwnas.utils.devices import PeakMemory, current_label, free_memory, is_oom
from hwnas.utils.errors import CandidateFailed, HwnasError

log = logging.getLogger("hwnas.search")

#: Seconds between checks for trials of dead workers (their grace period is a minute: no need per trial).
STALE_CHECK_S = 1.0
#: Longest wait for a trial asked earlier to write its architecture's key (milliseconds, unless it died).
KEY_WAIT_S = 10.0
__all__ = ["LoopState", "committed", "evaluate_proposals", "read_state", "run_loop"]


def read_state(study: optuna.Study, *, exclude: int | None = None) -> LoopState:
    """Unique evaluated architectures and in-flight keys, from one full read (outside the loop)."""
    return StudyView(study).refresh().state(exclude=exclude)


def committed(study: optuna.Study, *, before: int | None = None) -> tuple[int, int]:
    """``(unique evaluated, in flight)`` from one full read (see :meth:`StudyView.committed`)."""
    return StudyView(study).refresh().committed(before=before)


OnTrial = Callable[[FrozenTrial, dict[str, Any]], None]


def run_loop(
    study: optuna.Study,
    *,
    space: SearchSpace,
    evaluator: Evaluator,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    n_trials: int,
    max_attempts: int,
    on_trial: OnTrial | None = None,
    worker: str = "0",
    strategy: str | None = None,
    fidelity: Fidelity | None = None,
    prescreen: Prescreen | None = None,
) -> int:
    """Evaluate architectures until the study holds ``n_trials`` unique ones; return trials asked here.

    ``strategy`` is recorded with every trial (the ``strategy`` column), so one study can hold the
    architectures of several strategies side by side."""
    asked = 0
    view = StudyView(study)
    last_stale_check = -math.inf
    while asked < max_attempts:
        if time.monotonic() - last_stale_check >= STALE_CHECK_S:
            fail_stale(study)  # trials of dead workers: FAIL + re-queue (needs storage heartbeats)
            last_stale_check = time.monotonic()
        unique, in_flight = view.refresh().committed()
        if unique >= n_trials:
            break
        if unique + in_flight >= n_trials:
            if not is_heartbeat_enabled(study._storage):
                break
            time.sleep(0.5)  # others hold the rest of the budget: wait, in case one of them dies
            continue
        trial = study.ask()
        asked += 1
        if sum(view.refresh().committed(before=trial.number)) >= n_trials:  # another worker asked first
            trial.set_user_attr(WORKER_ATTR, worker)
            trial.set_user_attr(FAIL_REASON_ATTR, "surplus: the budget was filled by other workers meanwhile")
            study.tell(trial, state=TrialState.FAIL)
            continue
        if strategy:
            trial.set_user_attr(STRATEGY_ATTR, strategy)
        _evaluate(study, trial, on_trial, view=view, space=space, evaluator=evaluator, objectives=objectives,
                  constraints=constraints, worker=worker, fidelity=fidelity, prescreen=prescreen)  # fmt: skip
    else:
        log.warning(
            "stopped after %d suggestions: the sampler keeps proposing architectures already evaluated "
            "(raise search.max_attempts_factor, or use a strategy with more exploration)",
            asked,
        )
    return asked


def evaluate_proposals(
    study: optuna.Study,
    proposals: Sequence[Any],
    *,
    space: SearchSpace,
    evaluator: Evaluator,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    on_trial: OnTrial | None = None,
    worker: str = "0",
    fidelity: Fidelity | None = None,
    prescreen: Prescreen | None = None,
) -> int:
    """Evaluate architectures a strategy proposed (``.spec``, ``.attrs``) as trials of ``study``.

    Each becomes an enqueued trial carrying its attributes (``strategy``, the latency target, ...), then
    goes through the same evaluation as a sampled one: deduplication (an architecture another strategy
    already evaluated is a ``duplicate`` row that reuses the result), cheap before expensive, fault
    isolation. A proposal already stored with the same attributes (a resumed run) is not added again.
    Returns the number of trials evaluated here.
    """
    stored = set()  # evaluated, reused as a duplicate, or waiting in the queue (a re-queued twin)
    for t in study.get_trials(deepcopy=False):
        if not t.user_attrs.get(STRATEGY_ATTR):
            continue
        if t.state == TrialState.WAITING:
            fixed = t.system_attrs.get("fixed_params") or {}
            stored.add((space.make(fixed).key if fixed else None, _attrs_id(t.user_attrs)))
        elif is_evaluated(t) or (t.state == TrialState.COMPLETE and t.user_attrs.get(DUPLICATE_ATTR)):
            stored.add((t.user_attrs.get(KEY_ATTR), _attrs_id(t.user_attrs)))
    for p in proposals:
        if (p.spec.key, _attrs_id(p.attrs)) not in stored:
            study.enqueue_trial(dict(p.spec.values), user_attrs=dict(p.attrs))
    n = 0
    view = StudyView(study)
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        n += 1
        _evaluate(study, study.ask(), on_trial, view=view, space=space, evaluator=evaluator,
                  objectives=objectives, constraints=constraints, worker=worker, fidelity=fidelity, prescreen=None)  # fmt: skip
    return n


def _evaluate(study: optuna.Study, trial: optuna.Trial, on_trial: OnTrial | None, **kwargs: Any) -> None:
    """One asked trial through ``_run_one`` under a heartbeat, then the ``on_trial`` callback."""
    with heartbeat(study, trial):
        info = _run_one(study, trial, **kwargs)
    if on_trial is not None:
        # The study's unique count (all workers) for live views: as of the last refresh, plus this trial
        # when it is a new evaluation. In memory (the view's tail), no storage read.
        new = info.get("status") in ("ok", "infeasible", "fail")
        info["unique"] = kwargs["view"].committed()[0] + int(new)
        on_trial(study._storage.get_trial(trial._trial_id), info)  # O(1), not a read of the whole study


def _attrs_id(attrs: dict[str, Any]) -> str:
    """The identity of a proposal: its strategy, sweep point or growth step (not timings)."""
    return repr(tuple(attrs.get(k) for k in PROPOSAL_ID_ATTRS))


def _run_one(
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    view: StudyView,
    space: SearchSpace,
    evaluator: Evaluator,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    worker: str,
    fidelity: Fidelity | None = None,
    prescreen: Prescreen | None = None,
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    trial.set_user_attr(WORKER_ATTR, worker)
    try:
        spec = space.suggest(trial)
    except HwnasError as exc:
        trial.set_user_attr(FAIL_REASON_ATTR, f"invalid: {exc}")
        trial.set_user_attr(RESULT_ATTR, {"evaluated": False})
        study.tell(trial, state=TrialState.FAIL)
        return {**info, "status": "invalid"}
    trial.set_user_attr(KEY_ATTR, spec.key)
    trial.set_user_attr(ARCH_ATTR, space.describe(spec))
    info["key"] = spec.key

    # Someone (this or another worker) already has it: reuse, don't pay twice.
    _await_earlier_keys(view, trial.number)
    prior, running = view.lookup(spec.key, exclude=trial.number)
    if prior is None and running is not None and running < trial.number:
        prior = _wait_for(study, running)
    if prior is not None:
        _tell_duplicate(study, trial, prior)
        return {**info, "status": "duplicate"}

    metrics: dict[str, Any] = {}
    timing: dict[str, float] = {}  # stored with the result, in one write
    try:
        tc = time.perf_counter()
        metrics.update(evaluator.cheap(spec))
        timing["seconds_cheap"] = round(time.perf_counter() - tc, 4)
        cons = {c.name: c.value(metrics) for c in constraints if c.metric in metrics}
        feasible_so_far = all(v <= 0 for v in cons.values())
        dropped = feasible_so_far and _prescreened(trial, prescreen, evaluator, spec, metrics, view, timing)
        if dropped:
            _fail(study, trial, dropped, metrics, t0, timing, evaluated=False)  # not counted: not trained
            return {**info, "status": "prescreened"}
        if feasible_so_far:
            te = time.perf_counter()
            with PeakMemory(metrics):  # this trial's peak GPU memory (peak_mem_mb), also when it fails
                metrics.update(evaluator.expensive(spec))
                _promote(trial, fidelity, evaluator, spec, metrics, view, objectives)
            timing["seconds_expensive"] = round(time.perf_counter() - te, 4)
            confirm_near_front(evaluator, spec, metrics, view=view, objectives=objectives)  # hw=predictor
            cons = {c.name: c.value(metrics) for c in constraints}
        values = _objective_values(metrics, objectives, trained=feasible_so_far)
        feasible = all(v <= 0 for v in cons.values())
        for name, value in cons.items():
            trial.set_constraint(name, float(value))
        result = {"metrics": _jsonable(metrics), "feasible": feasible, "trained": feasible_so_far,
                  "evaluated": True, **timing, "seconds": round(time.perf_counter() - t0, 4),
                  DEVICE_ATTR: current_label()}  # fmt: skip
        trial.set_user_attr(RESULT_ATTR, result)
        study.tell(trial, values)
        info["status"] = "ok" if feasible else "infeasible"
    except (CandidateFailed, HwnasError) as exc:
        _fail(study, trial, str(getattr(exc, "reason", exc)), metrics, t0, timing)
        info["status"] = "fail"
    except MemoryError:
        free_memory()  # what the failed training held, before the next candidate needs it
        _fail(study, trial, "out of memory", metrics, t0, timing)
        info["status"] = "fail"
    except Exception as exc:  # noqa: BLE001 - a failing candidate is a failed trial, never a crashed search
        if is_oom(exc):
            free_memory()
        _fail(study, trial, _crash_reason(exc), metrics, t0, timing)
        info["status"] = "fail"
    return info


def _prescreened(
    trial: optuna.Trial,
    prescreen: Prescreen | None,
    evaluator: Evaluator,
    spec: Any,
    metrics: dict[str, Any],
    view: StudyView,
    timing: dict[str, float],
) -> str | None:
    """``search.prescreen``: why ``spec`` is dropped before training, or ``None`` to train it. Seeds and a
    seed start's moves are never dropped."""
    if prescreen is None or _planned(trial):
        return None
    tp = time.perf_counter()
    dropped = prescreen.check(evaluator, spec, metrics, view.refresh().evaluated())
    timing["seconds_prescreen"] = round(time.perf_counter() - tp, 4)
    return dropped


def _planned(trial: optuna.Trial) -> bool:
    """A seed or a seed start's move (planned, never pre-screened: the plan needs every one of them). Read
    from the storage: the sampler writes ``seed_move`` there, which the live trial's cached copy misses."""
    attrs = trial.study._storage.get_trial_user_attrs(trial._trial_id)
    return bool(attrs.get(SEEDED_ATTR) or attrs.get(SEED_MOVE_ATTR))


def _promote(
    trial: optuna.Trial,
    fidelity: Fidelity | None,
    evaluator: Evaluator,
    spec: Any,
    metrics: dict[str, Any],
    view: StudyView,
    objectives: Sequence[Objective],
) -> None:
    """``search.fidelity``'s promotions up the rungs, before the trial is told; a promoted trial keeps its
    rung-0 values in ``rung0_values``."""
    if fidelity is None:
        return
    rung0 = fidelity.evaluate(evaluator, spec, metrics, view.refresh().evaluated())
    if rung0 is not None:
        trial.set_user_attr(RUNG0_VALUES_ATTR, _objective_values(rung0, objectives, trained=True))


def _await_earlier_keys(view: StudyView, number: int) -> None:
    """Refresh ``view`` once every trial asked before ``number`` has written its architecture's key (or ended):
    otherwise two workers could each miss the other's twin and both pay for it. Gives up after
    ``KEY_WAIT_S`` (a worker that died between its ask and its key is recovered as stale anyway)."""
    deadline = time.monotonic() + KEY_WAIT_S
    while view.refresh().keyless_before(number) and time.monotonic() < deadline:
        time.sleep(0.05)


def _tell_duplicate(study: optuna.Study, trial: optuna.Trial, prior: FrozenTrial) -> None:
    """``trial`` repeats ``prior``'s architecture: told its result (the sampler still learns), not paid again."""
    trial.set_user_attr(DUPLICATE_ATTR, True)
    trial.set_user_attr(DUPLICATE_OF_ATTR, prior.number)
    if prior.state == TrialState.COMPLETE:
        for name, value in prior.constraints.items():
            trial.set_constraint(name, value)
        study.tell(trial, prior.values)
    else:
        trial.set_user_attr(FAIL_REASON_ATTR, f"duplicate of failed trial {prior.number}")
        study.tell(trial, state=TrialState.FAIL)


def _objective_values(
    metrics: dict[str, Any], objectives: Sequence[Objective], *, trained: bool
) -> list[float]:
    """The values told to the study; a candidate infeasible before training gets each objective's worst."""
    values = []
    for obj in objectives:
        v = metrics.get(obj.name)
        if v is None:
            if trained:
                raise CandidateFailed(f"evaluator produced no {obj.name!r}")
            v = obj.worst  # infeasible before training: never trained
        v = float(v)
        if math.isnan(v):
            raise CandidateFailed(f"objective {obj.name!r} is NaN")
        values.append(v)
    return values


def _crash_reason(exc: Exception) -> str:
    """An unexpected exception as a one-line ``fail_reason`` naming where it was raised."""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    reason = f"{type(exc).__name__}: {str(exc)[:300]} (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
    return f"out of memory: {reason}" if "out of memory" in str(exc).lower() else reason


def _fail(
    study: optuna.Study,
    trial: optuna.Trial,
    reason: str,
    metrics: dict[str, Any],
    t0: float,
    timing: dict[str, float] | None = None,
    *,
    evaluated: bool = True,
) -> None:
    log.debug("trial %d failed: %s", trial.number, reason)
    trial.set_user_attr(FAIL_REASON_ATTR, reason[:1000])
    result = {"metrics": _jsonable(metrics), "evaluated": evaluated, **(timing or {}),
              "seconds": round(time.perf_counter() - t0, 4), DEVICE_ATTR: current_label()}  # fmt: skip
    trial.set_user_attr(RESULT_ATTR, result)
    study.tell(trial, state=TrialState.FAIL)


def _wait_for(study: optuna.Study, number: int, timeout_s: float = 3600.0) -> FrozenTrial | None:
    """Another worker is evaluating this architecture: wait for its result instead of paying twice."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fail_stale(study)  # its worker may have died
        t = study.get_trials(deepcopy=False)[number]
        if t.state.is_finished():
            return t if is_evaluated(t) else None
        time.sleep(1.0)
    return None


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, bool | int | str) or v is None:
            out[k] = v
        elif isinstance(v, float):
            out[k] = v if math.isfinite(v) else None
        else:
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                out[k] = str(v)
    return out

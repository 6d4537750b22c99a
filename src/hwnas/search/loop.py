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
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from hwnas.search.evaluator import Evaluator
from hwnas.search.objectives import Constraint, Objective
from hwnas.search.workers import fail_stale, heartbeat, is_heartbeat_enabled
from hwnas.search_space.base import SearchSpace
from hwnas.utils.errors import CandidateFailed, HwnasError

log = logging.getLogger("hwnas.search")

KEY_ATTR = "arch_key"


@dataclass
class LoopState:
    """What the study holds so far, read from storage (so several workers agree)."""

    done: dict[str, FrozenTrial] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)

    @property
    def unique(self) -> int:
        return len(self.done)


#: ``fail_reason`` prefix of trials failed because their process died mid-evaluation (re-queued).
STALE_PREFIX = "stale:"


def is_evaluated(t: FrozenTrial) -> bool:
    """Whether ``t`` holds a finished evaluation that counts against the budget: told COMPLETE, or failed
    by its own evaluation, with ``evaluated`` set. A trial failed as *stale* never counts, even if it had
    stored its result attributes before its process was killed: its re-queued twin is the evaluation (so
    no kill point can lose an architecture, or count one twice)."""
    return (
        t.state in (TrialState.COMPLETE, TrialState.FAIL)
        and bool(t.user_attrs.get("evaluated"))
        and not str(t.user_attrs.get("fail_reason") or "").startswith(STALE_PREFIX)
    )


def read_state(study: optuna.Study, *, exclude: int | None = None) -> LoopState:
    """Unique evaluated architectures (first non-duplicate finished trial per key) and in-flight keys."""
    state = LoopState()
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get(KEY_ATTR)
        if key is None or t.user_attrs.get("duplicate") or t.number == exclude:
            continue
        if is_evaluated(t):
            state.done.setdefault(key, t)
        elif t.state == TrialState.RUNNING:
            state.running.setdefault(key, t.number)
    return state


def committed(study: optuna.Study, *, before: int | None = None) -> tuple[int, int]:
    """``(unique evaluated, in flight)``: in flight counts RUNNING trials (numbered below ``before``) that
    may still add a new architecture, so several workers never together exceed the budget."""
    done: set[str] = set()
    running: set[str] = set()
    keyless = 0
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get(KEY_ATTR)
        if t.user_attrs.get("duplicate"):
            continue
        if t.state.is_finished():
            if key is not None and is_evaluated(t):
                done.add(key)
        elif t.state == TrialState.RUNNING and (before is None or t.number < before):
            if key is None:
                keyless += 1
            else:
                running.add(key)
    return len(done), len(running - done) + keyless


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
) -> int:
    """Evaluate architectures until the study holds ``n_trials`` unique ones; return trials asked here.

    ``strategy`` is recorded with every trial (the ``strategy`` column), so one study can hold the
    architectures of several strategies side by side."""
    asked = 0
    while asked < max_attempts:
        fail_stale(study)  # trials of dead workers: FAIL + re-queue (needs storage heartbeats)
        unique, in_flight = committed(study)
        if unique >= n_trials:
            break
        if unique + in_flight >= n_trials:
            if not is_heartbeat_enabled(study._storage):
                break
            time.sleep(0.5)  # others hold the rest of the budget: wait, in case one of them dies
            continue
        trial = study.ask()
        asked += 1
        if sum(committed(study, before=trial.number)) >= n_trials:  # another worker asked first
            trial.set_user_attr("worker", worker)
            trial.set_user_attr("fail_reason", "surplus: the budget was filled by other workers meanwhile")
            study.tell(trial, state=TrialState.FAIL)
            continue
        if strategy:
            trial.set_user_attr("strategy", strategy)
        _evaluate(study, trial, on_trial, space=space, evaluator=evaluator, objectives=objectives,
                  constraints=constraints, worker=worker)  # fmt: skip
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
        if not t.user_attrs.get("strategy"):
            continue
        if t.state == TrialState.WAITING:
            fixed = t.system_attrs.get("fixed_params") or {}
            stored.add((space.make(fixed).key if fixed else None, _attrs_id(t.user_attrs)))
        elif is_evaluated(t) or (t.state == TrialState.COMPLETE and t.user_attrs.get("duplicate")):
            stored.add((t.user_attrs.get(KEY_ATTR), _attrs_id(t.user_attrs)))
    for p in proposals:
        if (p.spec.key, _attrs_id(p.attrs)) not in stored:
            study.enqueue_trial(dict(p.spec.values), user_attrs=dict(p.attrs))
    n = 0
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        n += 1
        _evaluate(study, study.ask(), on_trial, space=space, evaluator=evaluator, objectives=objectives,
                  constraints=constraints, worker=worker)  # fmt: skip
    return n


def _evaluate(study: optuna.Study, trial: optuna.Trial, on_trial: OnTrial | None, **kwargs: Any) -> None:
    """One asked trial through ``_run_one`` under a heartbeat, then the ``on_trial`` callback."""
    with heartbeat(study, trial):
        info = _run_one(study, trial, **kwargs)
    if on_trial is not None:
        on_trial(study.get_trials(deepcopy=False)[trial.number], info)


def _attrs_id(attrs: dict[str, Any]) -> str:
    """The identity of a proposal: its strategy, sweep point or growth step (not timings)."""
    keys = ("strategy", "latency_target", "latency_lambda", "petridish_parent", "petridish_moves")
    return repr(tuple(attrs.get(k) for k in keys))


def _run_one(
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    space: SearchSpace,
    evaluator: Evaluator,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    worker: str,
) -> dict[str, Any]:
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    trial.set_user_attr("worker", worker)
    try:
        spec = space.suggest(trial)
    except HwnasError as exc:
        trial.set_user_attr("fail_reason", f"invalid: {exc}")
        trial.set_user_attr("evaluated", False)
        study.tell(trial, state=TrialState.FAIL)
        info["status"] = "invalid"
        return info
    trial.set_user_attr(KEY_ATTR, spec.key)
    trial.set_user_attr("arch", space.describe(spec))
    info["key"] = spec.key

    # Someone (this or another worker) already has it: reuse, don't pay twice.
    state = read_state(study, exclude=trial.number)
    prior = state.done.get(spec.key)
    if prior is None and spec.key in state.running and state.running[spec.key] < trial.number:
        prior = _wait_for(study, state.running[spec.key])
    if prior is not None:
        trial.set_user_attr("duplicate", True)
        trial.set_user_attr("duplicate_of", prior.number)
        info["status"] = "duplicate"
        if prior.state == TrialState.COMPLETE:
            for name, value in prior.constraints.items():
                trial.set_constraint(name, value)
            study.tell(trial, prior.values)
        else:
            trial.set_user_attr("fail_reason", f"duplicate of failed trial {prior.number}")
            study.tell(trial, state=TrialState.FAIL)
        return info

    metrics: dict[str, Any] = {}
    try:
        tc = time.perf_counter()
        metrics.update(evaluator.cheap(spec))
        trial.set_user_attr("seconds_cheap", round(time.perf_counter() - tc, 4))
        cons = {c.name: c.value(metrics) for c in constraints if c.metric in metrics}
        feasible_so_far = all(v <= 0 for v in cons.values())
        if feasible_so_far:
            te = time.perf_counter()
            metrics.update(evaluator.expensive(spec))
            trial.set_user_attr("seconds_expensive", round(time.perf_counter() - te, 4))
            cons = {c.name: c.value(metrics) for c in constraints}
        values = []
        for obj in objectives:
            v = metrics.get(obj.name)
            if v is None:
                if feasible_so_far:
                    raise CandidateFailed(f"evaluator produced no {obj.name!r}")
                v = obj.worst  # infeasible before training: never trained
            v = float(v)
            if math.isnan(v):
                raise CandidateFailed(f"objective {obj.name!r} is NaN")
            values.append(v)
        feasible = all(v <= 0 for v in cons.values())
        for name, value in cons.items():
            trial.set_constraint(name, float(value))
        trial.set_user_attr("metrics", _jsonable(metrics))
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("trained", feasible_so_far)
        trial.set_user_attr("evaluated", True)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 4))
        study.tell(trial, values)
        info["status"] = "ok" if feasible else "infeasible"
    except (CandidateFailed, HwnasError) as exc:
        _fail(study, trial, str(getattr(exc, "reason", exc)), metrics, t0)
        info["status"] = "fail"
    except MemoryError:
        _fail(study, trial, "out of memory", metrics, t0)
        info["status"] = "fail"
    except Exception as exc:  # noqa: BLE001 - a failing candidate is a failed trial, never a crashed search
        last = traceback.extract_tb(exc.__traceback__)[-1]
        reason = (
            f"{type(exc).__name__}: {str(exc)[:300]} (at {last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        )
        if "out of memory" in str(exc).lower():
            reason = f"out of memory: {reason}"
        _fail(study, trial, reason, metrics, t0)
        info["status"] = "fail"
    return info


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str, metrics: dict[str, Any], t0: float) -> None:
    log.debug("trial %d failed: %s", trial.number, reason)
    trial.set_user_attr("fail_reason", reason[:1000])
    trial.set_user_attr("metrics", _jsonable(metrics))
    trial.set_user_attr("evaluated", True)
    trial.set_user_attr("seconds", round(time.perf_counter() - t0, 4))
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

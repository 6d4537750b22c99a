"""Every trial attribute name the search writes and reads, in one place.

A trial's user attributes are the study's only results format: the loop writes them, storage queries
them (deduplication, the budget, stale trials), strategies read them (Petridish's parents) and
``reporting`` turns them into trials.csv. A name defined here is the same column everywhere.
"""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial, TrialState

#: The architecture's stable key (``ArchSpec.key``): deduplication, file names, the ``arch_key`` column.
KEY_ATTR = "arch_key"
#: The architecture in the space's own words (``space.describe``), parsed back by ``space.parse``.
ARCH_ATTR = "arch"
#: One user attribute holding a trial's result (metrics, feasible, trained, evaluated, timings): written in
#: one storage write with the outcome instead of six (the per-trial cost of a table search is its writes).
RESULT_ATTR = "result"
#: Why a trial failed (``invalid: …``, ``duplicate of failed trial …``, ``surplus: …``, ``stale: …``).
FAIL_REASON_ATTR = "fail_reason"
#: ``fail_reason`` prefix of trials failed because their process died mid-evaluation (re-queued).
STALE_PREFIX = "stale:"
#: Set on a trial that repeats an evaluated architecture (it reuses that trial's result) ...
DUPLICATE_ATTR = "duplicate"
#: ... and the number of the trial it repeats.
DUPLICATE_OF_ATTR = "duplicate_of"
#: The worker that evaluated the trial (``search.worker_id``).
WORKER_ATTR = "worker"
#: The device the trial's process was assigned (``cuda:1``, ``cpu``; :mod:`hwnas.utils.devices`): a field of
#: the result attribute, the ``device`` column.
DEVICE_ATTR = "device"
#: The strategy that proposed the architecture (``search.name``): the ``strategy`` column.
STRATEGY_ATTR = "strategy"
#: A known architecture evaluated first (``baseline``, or ``arch:<file>`` from ``search.seed_architectures``):
#: never counted as a searched model (see :mod:`hwnas.search.seeding`).
SEEDED_ATTR = "seeded"
#: How a seed start made the architecture (``move: k=v``, ``trade: k=v + …``; :mod:`hwnas.search.samplers.seed_start`).
SEED_MOVE_ATTR = "seed_move"
#: A promoted trial's objective values at rung 0 (``search.fidelity``): its told values are its highest rung's.
RUNG0_VALUES_ATTR = "rung0_values"
#: A re-queued trial's predecessor (failed as stale).
REQUEUED_FROM_ATTR = "requeued_from"

#: Attributes that say where an architecture came from (the strategy and a gradient search's sweep point,
#: a growth step: columns of trials.csv). A re-queued trial keeps them, so the retry is still that
#: strategy's row.
ORIGIN_ATTRS = ("strategy", "seeded", "seed_move", "latency_target", "latency_target_ms", "latency_lambda", "expected_latency_ms",
                "table_latency_ms",
                "dnas_epochs", "dnas_seconds", "dnas_stopped_early",
                "petridish_round", "petridish_parent", "petridish_moves")  # fmt: skip
#: The origin attributes that identify a proposal (its strategy, sweep point or growth step; not timings):
#: a resumed strategy's proposal already stored with these is not evaluated again.
PROPOSAL_ID_ATTRS = ("strategy", "latency_target", "latency_lambda", "petridish_parent", "petridish_moves")


def trial_attrs(t: FrozenTrial) -> dict[str, Any]:
    """``t``'s user attributes with its result's fields flattened in (``metrics``, ``feasible``, ``trained``,
    ``evaluated``, ``seconds*``); studies written before the result attribute existed read the same."""
    result = t.user_attrs.get(RESULT_ATTR)
    return {**t.user_attrs, **result} if isinstance(result, dict) else dict(t.user_attrs)


def is_evaluated(t: FrozenTrial) -> bool:
    """Whether ``t`` holds a finished evaluation that counts against the budget: told COMPLETE, or failed
    by its own evaluation, with ``evaluated`` set. A trial failed as *stale* never counts, even if it had
    stored its result attributes before its process was killed: its re-queued twin is the evaluation (so
    no kill point can lose an architecture, or count one twice)."""
    if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
        return False
    result = t.user_attrs.get(RESULT_ATTR)
    evaluated = result.get("evaluated") if isinstance(result, dict) else t.user_attrs.get("evaluated")
    return bool(evaluated) and not str(t.user_attrs.get(FAIL_REASON_ATTR) or "").startswith(STALE_PREFIX)

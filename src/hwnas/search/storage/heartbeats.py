"""Trial heartbeats and the recovery of dead workers' trials, for every storage that supports them.

A worker that dies (``kill -9``, a lost node) leaves its trial RUNNING forever. Every trial therefore
carries a heartbeat (Optuna's RDB heartbeat, which Optuna itself only drives inside ``study.optimize``,
or :mod:`hwnas.search.storage.journal_heartbeat`'s on a journal), driven here by one beating thread per
process and storage (:class:`Beater`); any worker that sees a heartbeat older than the grace period marks
that trial FAIL (reason ``stale``) and re-queues its architecture.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled
from optuna.trial import TrialState

from hwnas.search.trial_attrs import DUPLICATE_ATTR, ORIGIN_ATTRS, STALE_PREFIX

log = logging.getLogger("hwnas.search")

__all__ = ["GRACE_S", "HEARTBEAT_S", "STALE_REASON", "Beater", "fail_stale", "heartbeat", "heartbeat_settings",
           "is_heartbeat_enabled", "requeue"]  # fmt: skip

#: Defaults for ``search.heartbeat_s`` / ``search.grace_s`` when the config does not set them.
HEARTBEAT_S = 10
GRACE_S = 60
STALE_REASON = (
    f"{STALE_PREFIX} its worker stopped sending heartbeats (killed or lost); architecture re-queued"
)


def heartbeat_settings(cfg: DictConfig) -> tuple[int, int]:
    """``(interval, grace)`` in whole seconds; a trial silent for longer than ``grace`` is stale."""
    interval = int(cfg.search.get("heartbeat_s", HEARTBEAT_S) or HEARTBEAT_S)
    grace = int(cfg.search.get("grace_s", GRACE_S) or GRACE_S)
    return max(1, interval), max(grace, 2 * max(1, interval))


class Beater:
    """One daemon thread per process and storage that beats for every trial this process is evaluating.

    Optuna's ``HeartbeatThread`` starts and joins a thread per trial: ~0.5 ms, a seventh of a table
    trial's whole cost on the journal. Here a trial's first beat is written by the caller (as Optuna's
    thread does at once; a journal's start counts as that beat and writes nothing) and the thread beats
    every registered trial once per interval. It ends after an interval with no trial (a search that
    finished), and holds its storage weakly, so neither outlives the search. A beat that lands after its
    trial ended is harmless: the stale query only looks at RUNNING trials, and the journal ignores it.
    """

    def __init__(self, storage: BaseHeartbeat, interval: float) -> None:
        self._storage = weakref.ref(storage)
        self.interval = float(interval)
        self.trials: set[int] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self._added = False  # a trial registered since the thread last woke

    def add(self, storage: BaseHeartbeat, trial_id: int) -> None:
        storage.record_heartbeat(trial_id)
        with self.lock:
            self.trials.add(trial_id)
            self._added = True
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="hwnas-heartbeat", daemon=True)
                self.thread.start()

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.trials.discard(trial_id)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            storage = self._storage()
            with self.lock:
                beating, added, self._added = list(self.trials), self._added, False
                if storage is None or not (beating or added):
                    self.thread = None  # idle for an interval, or the storage is gone: done
                    return
            for trial_id in beating:
                try:
                    storage.record_heartbeat(trial_id)
                except Exception as exc:  # noqa: BLE001 - a lost beat must not kill the thread
                    log.warning("heartbeat of trial id %d not recorded: %s", trial_id, exc)
            del storage


_BEATERS: weakref.WeakKeyDictionary[Any, Beater] = weakref.WeakKeyDictionary()
_BEATERS_LOCK = threading.Lock()


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Keep ``trial`` alive in storage while it is evaluated (no-op for storages without heartbeats)."""
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        yield
        return
    with _BEATERS_LOCK:
        beater = _BEATERS.get(storage)
        if beater is None:
            beater = _BEATERS[storage] = Beater(storage, storage.get_heartbeat_interval() or HEARTBEAT_S)
    beater.add(storage, trial._trial_id)
    try:
        yield
    finally:
        beater.discard(trial._trial_id)


def requeue(study: optuna.Study, trial: Any) -> None:
    """Queue a dead trial's architecture again (duplicates are never re-queued: they paid nothing)."""
    if trial.params and not trial.user_attrs.get(DUPLICATE_ATTR):
        origin = {k: v for k, v in trial.user_attrs.items() if k in ORIGIN_ATTRS}
        study.enqueue_trial(
            dict(trial.params), user_attrs={"requeued_from": trial.number, **origin}, skip_if_exists=False
        )


def fail_stale(study: optuna.Study) -> int:
    """Mark trials with a lapsed heartbeat FAIL (reason ``stale``) and re-queue them; return how many.

    Safe to call from every worker at once: only the worker whose state change wins re-queues.
    """
    storage = study._storage
    if not isinstance(storage, BaseHeartbeat) or not is_heartbeat_enabled(storage):
        return 0
    n = 0
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", STALE_REASON)
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another worker got there first
        frozen = storage.get_trial(trial_id)
        requeue(study, frozen)
        log.warning("trial %d: %s", frozen.number, STALE_REASON)
        n += 1
    return n

"""Trial heartbeats on the journal storage: a dead worker's trial is found stale, as on SQLite or PostgreSQL.

Optuna implements its heartbeat (:class:`optuna.storages._heartbeat.BaseHeartbeat`) for its RDB storage
only, and the search loop's recovery of dead workers' trials (``hwnas.search.storage.heartbeats.fail_stale``) needs
it. Here a beat is the trial's system attribute ``hwnas:heartbeat`` (seconds since the epoch on the
writer's clock), never fsynced (``hwnas.search.storage.journal``). The trial's start counts as its
first beat, so the beat at the start of an evaluation writes nothing: a table trial (milliseconds)
writes no beat at all, and a trial evaluated for minutes one record per ``heartbeat_s``. A RUNNING
trial whose last beat (or start) is older than the grace period is stale; unlike Optuna's RDB storage,
also a trial whose worker died before its first beat. Machines sharing one journal file need clocks that
agree to well within the grace period (NTP does).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from hwnas.search.storage.tail import TailJournalStorage

HEARTBEAT_ATTR = "hwnas:heartbeat"


class HeartbeatJournalStorage(TailJournalStorage, BaseHeartbeat):
    """:class:`~hwnas.search.storage.tail.TailJournalStorage` with trial heartbeats (module docstring).

    Args:
        backend: The journal backend (``FlockJournalFileBackend``).
        heartbeat_interval: Seconds between beats; ``None`` turns heartbeats off.
        grace_period: Seconds of silence after which a running trial is stale (default: 2 intervals).
    """

    def __init__(
        self, backend: Any, *, heartbeat_interval: int | None = None, grace_period: int | None = None
    ):
        super().__init__(backend)
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        if grace_period is not None and grace_period <= 0:
            raise ValueError(f"grace_period must be > 0, got {grace_period}")
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period or (2 * heartbeat_interval if heartbeat_interval else None)
        self._started: set[int] = set()  # trials whose first beat (their start) was skipped here

    def record_heartbeat(self, trial_id: int) -> None:
        """A beat; the first call for a trial writes nothing (its start is its first beat)."""
        if trial_id not in self._started:
            self._started.add(trial_id)
            return
        # It may have ended meanwhile (told, or failed as stale by another worker): nothing to keep alive.
        with contextlib.suppress(UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if self.grace_period is None:
            return []
        limit = time.time() - self.grace_period
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [t._trial_id for t in running if _last_beat(t) < limit]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[..., None] | None:
        return None  # hwnas.search.storage.heartbeats.fail_stale re-queues the architecture itself


def _last_beat(trial: FrozenTrial) -> float:
    """Seconds since the epoch of the trial's last beat, or of its start (its first beat)."""
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    start = trial.datetime_start.timestamp() if trial.datetime_start is not None else time.time()
    return max(float(beat), start) if beat is not None else start

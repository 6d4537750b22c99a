"""The journal file backend of ``search.storage=journal:<path>``: a kernel lock, and fsync when a trial ends.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` takes a lock by creating and removing a
symlink (built for NFS without lock support) and fsyncs the file after *every* record. A table search
writes about a dozen records per trial (creation, each parameter, worker, key, result, the outcome), so
on this machine's disk the fsyncs alone cost ~0.6-0.8 ms each, ~10 ms per trial: most of the loop's cost.

This backend keeps Optuna's file format and reader and changes two things:

* **Lock**: ``fcntl.flock`` on ``<journal>.flock``, held only while appending. The kernel releases it when
  its process dies (a ``kill -9`` never leaves a stale lock behind for a grace period). Linux NFS clients
  map it onto POSIX locks; for many machines, PostgreSQL is still the storage to use.
* **Durability where it counts**: a record that ends a trial (COMPLETE, FAIL, PRUNED) or changes the
  study is fsynced, and with it everything written before it; the records of a trial still running
  (its parameters and attributes) reach the OS at once, so every process reads them, and reach the disk
  with the trial's end. A killed process loses nothing (the OS holds its writes); after a power loss
  or OS crash a trial that had not ended is at worst unknown or RUNNING, which ``search.resume``
  already treats as unfinished (failed as stale and re-queued, or never counted). A record cut short
  by such a crash is removed before the next append (:func:`cut_torn_tail`), so the file stays readable.

Every process of one study must open the journal through this backend (``hwnas.search.storage.study.make_storage``
does): a plain Optuna process writing with its symlink lock would not exclude ours.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

#: Optuna's journal operation codes (``optuna.storages.journal._storage.JournalOperation``) whose records
#: only describe a trial that has not ended: written without fsync.
_CREATE_TRIAL, _SET_TRIAL_PARAM, _SET_TRIAL_STATE_VALUES = 4, 5, 6
_SET_TRIAL_INTERMEDIATE_VALUE, _SET_TRIAL_USER_ATTR, _SET_TRIAL_SYSTEM_ATTR = 7, 8, 9
_UNFINISHED_TRIAL_OPS = {_CREATE_TRIAL, _SET_TRIAL_PARAM, _SET_TRIAL_INTERMEDIATE_VALUE,
                         _SET_TRIAL_USER_ATTR, _SET_TRIAL_SYSTEM_ATTR}  # fmt: skip
_FINISHED = {int(s) for s in TrialState if s.is_finished()}

log = logging.getLogger("hwnas.search")


def needs_fsync(logs: Sequence[dict[str, Any]]) -> bool:
    """Whether ``logs`` end a trial or change the study (then the journal is forced to disk)."""
    for record in logs:
        op = int(record.get("op_code", -1))
        if op == _SET_TRIAL_STATE_VALUES:
            if int(record.get("state", -1)) in _FINISHED:
                return True
        elif op not in _UNFINISHED_TRIAL_OPS:
            return True
    return False


class FlockJournalFileBackend(JournalFileBackend):
    """Optuna's journal file with an ``flock`` lock and fsync at trial ends (see the module docstring)."""

    def __init__(self, file_path: str) -> None:
        super().__init__(file_path, lock_obj=None)
        self._lock_path = f"{file_path}.flock"

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        """Optuna's reader, except when the file ends where the last read ended: then nothing is opened.

        Optuna's journal storage re-reads the file before *every* query (each trial looked up, each
        study attribute), so most reads find nothing new; a ``stat`` answers those (~40x cheaper than
        opening and scanning the file, measured: a third of an NSGA-II table search's time at 10,000
        trials went to empty reads)."""
        end = self._log_number_offset.get(log_number_from)
        if end is not None and os.stat(self._file_path).st_size == end:
            return iter(())
        return super().read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = os.open(self._file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                cut_torn_tail(fd, self._file_path)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if needs_fsync(logs):
                    os.fsync(fd)
            finally:
                os.close(fd)
        finally:
            os.close(lock)  # closing the descriptor releases the lock


def cut_torn_tail(fd: int, path: str) -> int:
    """Cut off a record cut short at the end of the journal; return the bytes removed.

    A journal that does not end in a newline lost the end of its last record: the OS crashed before that
    write reached the disk (records of a running trial are not fsynced), or the write was killed half-way.
    Appending after it would glue the next record onto the fragment, and Optuna's reader refuses every
    record after a line it cannot decode: the study could no longer be opened. The fragment's writer is
    gone (every writer appends under the lock, which the caller holds), and no reader ever took it (the
    reader stops at a line without its newline), so it is removed. What it described was a running trial's
    detail, which resume already treats as unfinished.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - 65536)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            end = start + newline + 1
            break
        end = start
    os.ftruncate(fd, end)
    os.fsync(fd)
    log.warning("%s: removed a torn last record (%d bytes, a write cut short by a crash)", path, size - end)
    return size - end

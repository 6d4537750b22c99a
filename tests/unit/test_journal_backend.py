"""The journal backend of ``search.storage=journal:``: fsync only when a trial ends or the study changes,
appends of many processes stay whole, and the lock dies with a killed process."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwnas.search.storage import journal as journal_backend
from hwnas.search.storage.journal import FlockJournalFileBackend, needs_fsync
from hwnas.search.storage.study import make_storage


def test_only_trial_ends_and_study_changes_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(journal_backend.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    storage = make_storage(f"journal:{tmp_path / 'study.journal'}")
    assert isinstance(storage._backend, FlockJournalFileBackend)
    study = optuna.create_study(storage=storage, directions=["minimize", "minimize"])
    after_create = len(synced)
    assert after_create >= 1  # the study's creation is durable
    for i in range(6):
        trial = study.ask()
        trial.set_user_attr("worker", "0")
        x = trial.suggest_categorical("x", [0, 1, 2, 3])
        y = trial.suggest_categorical("y", [0, 1, 2, 3])
        if i == 2:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, [x, y])
    # 6 trials x 5 records each, but one fsync per trial: at its end
    assert len(synced) - after_create == 6
    reopened = optuna.load_study(
        study_name=study.study_name, storage=make_storage(f"journal:{tmp_path / 'study.journal'}")
    )
    states = [t.state for t in reopened.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) == 5 and states.count(TrialState.FAIL) == 1


def test_needs_fsync_rule() -> None:
    assert needs_fsync([{"op_code": 6, "state": int(TrialState.COMPLETE)}])
    assert needs_fsync([{"op_code": 6, "state": int(TrialState.FAIL)}])
    assert needs_fsync([{"op_code": 0, "study_name": "s"}])  # create study
    assert needs_fsync([{"op_code": 3}])  # a study system attribute (e.g. NSGA-II's parents)
    assert not needs_fsync([{"op_code": 6, "state": int(TrialState.RUNNING)}])
    assert not needs_fsync([{"op_code": 4}, {"op_code": 5}, {"op_code": 8}, {"op_code": 9}])
    assert needs_fsync([{"op_code": 8}, {"op_code": 6, "state": int(TrialState.COMPLETE)}])


def _append_many(path: str, worker: int, n: int) -> None:
    backend = FlockJournalFileBackend(path)
    pad = "x" * 3000
    for i in range(n):
        backend.append_logs([{"op_code": 8, "worker": worker, "i": i, "pad": pad}])


def test_concurrent_appends_of_four_processes_stay_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "j.log")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    logs = list(FlockJournalFileBackend(path).read_logs(0))
    assert len(logs) == 600
    for w in range(4):
        assert [log["i"] for log in logs if log["worker"] == w] == list(range(150))


def _hold_lock_forever(path: str, ready: mp.synchronize.Event) -> None:
    import fcntl

    fd = os.open(f"{path}.flock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    ready.set()
    time.sleep(600)


def test_the_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    path = str(tmp_path / "j.log")
    backend = FlockJournalFileBackend(path)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock_forever, args=(path, ready))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    t0 = time.monotonic()
    backend.append_logs([{"op_code": 8, "after": "kill"}])
    assert time.monotonic() - t0 < 2.0  # Optuna's symlink lock would wait out a grace period here
    assert list(backend.read_logs(0)) == [{"op_code": 8, "after": "kill"}]


def test_a_record_torn_by_a_crash_is_cut_off_and_the_study_stays_readable(tmp_path: Path) -> None:
    """An OS crash between fsyncs can leave the last record cut short; the next append must not glue a
    record onto it (Optuna's reader would then refuse the whole study)."""
    path = tmp_path / "study.journal"
    study = optuna.create_study(storage=make_storage(f"journal:{path}"), study_name="s")
    study.tell(study.ask(), 1.0)
    whole = path.read_bytes()
    with open(path, "ab") as f:
        f.write(
            b'{"op_code":4,"worker_id":"torn-fragment","study_id":0,"datetime_st'
        )  # the crash cut it here
    again = optuna.load_study(storage=make_storage(f"journal:{path}"), study_name="s")
    assert len(again.trials) == 1  # the fragment is never read as a record
    again.tell(again.ask(), 2.0)  # the next append removes it first
    text = path.read_bytes()
    assert text.startswith(whole) and b"torn-fragment" not in text and text.endswith(b"\n")
    fresh = optuna.load_study(storage=make_storage(f"journal:{path}"), study_name="s")
    assert [t.value for t in fresh.trials] == [1.0, 2.0]
    fd = os.open(path, os.O_RDWR)
    try:
        assert journal_backend.cut_torn_tail(fd, str(path)) == 0  # a whole file is left alone
    finally:
        os.close(fd)

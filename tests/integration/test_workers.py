"""Several workers on one study: the budget is exact, nothing is paid twice, dead workers are recovered.

Each test runs twice (``shared_db``): on the run dir's journal file (the default storage) and on a real PostgreSQL server
(the storage for launches on several machines; skipped where there is none, failed in CI).
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwnas.search.storage.study import make_storage, storage_url
from hwnas.search.trial_attrs import is_evaluated
from tests.conftest import PgDatabase
from tests.integration.test_resume import (
    ROOT,
    STUDY,
    assert_budget_exact,
    env,
    evaluated,
    search_cmd,
    wait_for,
)


@pytest.mark.integration
def test_three_local_workers_share_the_budget_exactly(
    tmp_path: Path, nb201_table: Path, shared_db: PgDatabase | None
) -> None:
    run_dir, budget = tmp_path / "run", 15
    # The run dir's journal file, the default. PostgreSQL: search.storage, the password from the env.
    storage = [f"search.storage={shared_db.url}"] if shared_db else []
    # Slow enough trials that the spawned workers (a few seconds to start, more on a loaded machine) join in.
    out = subprocess.run(
        search_cmd(run_dir, "search.n_workers=3", f"benchmark.path={nb201_table}", *storage, n_trials=budget),
        cwd=ROOT,
        env={**env(delay_s=1.5), **(shared_db.env if shared_db else {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "locked" not in out.stderr.lower() and "Traceback" not in out.stderr
    read = shared_db.full_url if shared_db else make_storage(storage_url(None, run_dir))
    trials = optuna.load_study(study_name=STUDY, storage=read).get_trials()
    assert_budget_exact(trials, budget)
    assert {t.user_attrs.get("worker") for t in evaluated(trials)} == {"0", "1", "2"}
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Duplicates were told the stored result, never evaluated again.
    assert all(not is_evaluated(t) for t in trials if t.user_attrs.get("duplicate"))
    # Only the main process wrote the outputs; they describe the whole study.
    summary = (run_dir / "summary.json").read_text()
    assert f'"unique_evaluated": {budget}' in summary
    assert (run_dir / "worker_1.log").is_file() and (run_dir / "worker_2.log").is_file()
    if shared_db and shared_db.password:  # it came from the environment: nothing the run wrote holds it
        written = [
            p for p in run_dir.rglob("*") if p.is_file() and p.suffix in {".yaml", ".json", ".csv", ".log"}
        ]
        assert written and not [p for p in written if shared_db.password in p.read_text(errors="replace")]


@pytest.mark.integration
def test_a_killed_worker_is_detected_by_heartbeat_and_its_trial_requeued(
    tmp_path: Path, nb201_table: Path, shared_db: PgDatabase | None
) -> None:
    # A journal file two launches share (its heartbeats are hwnas.search.storage.journal_heartbeat's), or PostgreSQL.
    storage, budget = (shared_db.url if shared_db else f"journal:{tmp_path / 'shared.journal'}"), 6
    read = shared_db.full_url if shared_db else make_storage(storage)
    run_env = shared_db.env if shared_db else {}
    shared = [
        f"search.storage={storage}",
        f"benchmark.path={nb201_table}",
        "++search.heartbeat_s=1",
        "++search.grace_s=3",
    ]
    proc = subprocess.Popen(
        search_cmd(tmp_path / "a", *shared, n_trials=budget),
        cwd=ROOT,
        env={**env(delay_s=3.0), **run_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def in_flight() -> bool:
            try:
                trials = optuna.load_study(study_name=STUDY, storage=read).get_trials(deepcopy=False)
            except Exception:  # noqa: BLE001 - not created yet
                return False
            return any(t.state == TrialState.RUNNING and "arch_key" in t.user_attrs for t in trials)

        wait_for(in_flight, 120, proc)
        time.sleep(1.5)  # at least one heartbeat recorded
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    dead = [
        t
        for t in optuna.load_study(study_name=STUDY, storage=read).get_trials()
        if t.state == TrialState.RUNNING
    ]
    assert len(dead) == 1
    # A second launch on the same shared storage (as on another machine) finishes the study.
    out = subprocess.run(
        search_cmd(tmp_path / "b", *shared, n_trials=budget),
        cwd=ROOT,
        env={**env(delay_s=0.0), **run_env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    trials = optuna.load_study(study_name=STUDY, storage=read).get_trials()
    lost = trials[dead[0].number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["fail_reason"].startswith("stale")
    assert [t.params for t in trials if t.user_attrs.get("requeued_from") == lost.number] == [lost.params]
    assert_budget_exact(trials, budget)

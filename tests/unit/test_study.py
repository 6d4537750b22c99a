"""Study storage: URLs, redaction, heartbeats and stale-trial recovery."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwnas.search.loop import committed
from hwnas.search.resume import recover_stale_trials
from hwnas.search.storage import heartbeats
from hwnas.search.storage.heartbeats import fail_stale, heartbeat
from hwnas.search.storage.journal import FlockJournalFileBackend
from hwnas.search.storage.journal_heartbeat import HEARTBEAT_ATTR, HeartbeatJournalStorage
from hwnas.search.storage.study import make_storage, open_study, redact, run_has_study, storage_url
from hwnas.utils.errors import ConfigError


def _study(tmp_path: Path, **kw) -> optuna.Study:
    return open_study(
        url=storage_url(None, tmp_path),
        study_name="s",
        directions=["maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        **kw,
    )


def test_default_storage_is_a_journal_in_the_run_dir_and_reopens(tmp_path: Path) -> None:
    assert storage_url(None, tmp_path) == f"journal:{(tmp_path / 'study.journal').resolve()}"
    assert not run_has_study(tmp_path)
    s = _study(tmp_path)
    s.tell(s.ask(), 1.0)
    assert run_has_study(tmp_path) and (tmp_path / "study.journal").is_file()
    assert len(_study(tmp_path).trials) == 1  # same run dir: same study


def test_a_run_made_with_sqlite_keeps_its_study_db(tmp_path: Path) -> None:
    """Runs from before the journal was the default resume on their own study.db."""
    old = open_study(url=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", directions=["maximize"],
                     sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip
    old.tell(old.ask(), 1.0)
    assert storage_url(None, tmp_path) == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    assert run_has_study(tmp_path) and len(_study(tmp_path).trials) == 1


def test_mismatched_directions_are_a_config_error(tmp_path: Path) -> None:
    _study(tmp_path)
    with pytest.raises(ConfigError, match="directions"):
        open_study(
            url=storage_url(None, tmp_path),
            study_name="s",
            directions=["minimize"],
            sampler=optuna.samplers.RandomSampler(),
        )


def test_a_run_dir_holds_one_study(tmp_path: Path) -> None:
    """Re-running in the same run dir under another study name (nb201 with another latency column) is
    refused, naming the study already there; a shared storage (search.storage=...) may hold many."""
    url = storage_url(None, tmp_path)
    rs = optuna.samplers.RandomSampler
    first = open_study(
        url=url, study_name="nb201-acc-pixel3", directions=["maximize"], sampler=rs(), only_study=True
    )
    first.tell(first.ask(), 1.0)
    again = open_study(
        url=url, study_name="nb201-acc-pixel3", directions=["maximize"], sampler=rs(), only_study=True
    )
    assert len(again.trials) == 1
    with pytest.raises(ConfigError, match="nb201-acc-pixel3") as err:
        open_study(
            url=url, study_name="nb201-acc-edgegpu", directions=["maximize"], sampler=rs(), only_study=True
        )
    assert err.value.key == "search.study_name" and "hydra.run.dir" in str(err.value)
    assert optuna.get_all_study_names(make_storage(url)) == ["nb201-acc-pixel3"]  # nothing was created
    shared = open_study(url=url, study_name="another", directions=["maximize"], sampler=rs())
    assert shared.study_name == "another"


def test_unreachable_storage_message_has_no_password() -> None:
    with pytest.raises(ConfigError) as err:
        make_storage("postgresql://u:secret@127.0.0.1:1/db")
    assert "secret" not in str(err.value) and "u:***@127.0.0.1" in str(err.value)
    assert redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"


def test_private_storage_recovery_fails_and_requeues_running_trials(tmp_path: Path) -> None:
    s = _study(tmp_path)
    t = s.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    t.set_user_attr("arch_key", "k")
    t.set_user_attr("strategy", "gdas")  # where the architecture came from survives the retry...
    t.set_user_attr("latency_target", 0.5)
    t.set_user_attr("metrics", {"hw/latency_ms": 1.0})  # ...what the dead evaluation measured does not
    assert recover_stale_trials(_study(tmp_path), single_worker=True) == 1
    trials = _study(tmp_path).trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["fail_reason"].startswith("stale")
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["requeued_from"] == 0
    assert trials[1].user_attrs["strategy"] == "gdas" and trials[1].user_attrs["latency_target"] == 0.5
    assert "metrics" not in trials[1].user_attrs and "arch_key" not in trials[1].user_attrs
    assert trials[1].system_attrs["fixed_params"] == trials[0].params  # asked next, with these params


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_heartbeat_keeps_a_trial_alive_and_a_lapsed_one_is_recovered(tmp_path: Path, kind: str) -> None:
    url = storage_url(None, tmp_path) if kind == "journal" else f"sqlite:///{tmp_path / 'h.db'}"
    s = open_study(url=url, study_name="s", directions=["maximize"], sampler=optuna.samplers.RandomSampler(seed=0),
                   heartbeat_s=1, grace_s=2)  # fmt: skip
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    alive = s.ask(dist)
    with heartbeat(s, alive):
        time.sleep(2.5)
        assert fail_stale(s) == 0
    s.tell(alive, 1.0)
    beater = heartbeats._BEATERS[s._storage]
    threads = set()
    for _ in range(3):  # one beating thread per process and storage, not one per trial
        t = s.ask(dist)
        with heartbeat(s, t):
            threads.add(beater.thread)
        s.tell(t, 0.0)
    assert len(threads) == 1 and None not in threads
    time.sleep(2.5)  # a search that ended: the thread stops after an idle interval
    assert beater.thread is None and not next(iter(threads)).is_alive()
    dead = s.ask(dist)
    dead.set_user_attr("arch_key", "k")
    s._storage.record_heartbeat(dead._trial_id)  # one beat, then silence (a killed worker)
    assert committed(s) == (0, 1)
    time.sleep(3.2)
    assert fail_stale(s) >= 1
    frozen = s.trials[dead.number]
    assert frozen.state == TrialState.FAIL and "stale" in frozen.user_attrs["fail_reason"]
    assert [t.user_attrs.get("requeued_from") for t in s.trials if t.state == TrialState.WAITING] == [
        dead.number
    ]


def test_journal_heartbeat_of_an_ended_trial_is_ignored_and_off_without_an_interval(tmp_path: Path) -> None:
    s = _study(tmp_path, heartbeat_s=1, grace_s=2)
    t = s.ask()
    s.tell(t, 1.0)
    s._storage.record_heartbeat(t._trial_id)  # its start was its first beat: nothing written
    s._storage.record_heartbeat(t._trial_id)  # the beat thread may outlive tell(): no error, no record
    assert HEARTBEAT_ATTR not in s.trials[0].system_attrs
    quiet = _study(tmp_path)  # no heartbeat_s: heartbeats off, nothing is ever stale
    assert quiet._storage.get_heartbeat_interval() is None and fail_stale(quiet) == 0
    with pytest.raises(ValueError, match="heartbeat_interval"):
        HeartbeatJournalStorage(FlockJournalFileBackend(str(tmp_path / "x.journal")), heartbeat_interval=0)


def test_a_journal_trial_that_died_before_its_first_beat_is_stale_after_the_grace(tmp_path: Path) -> None:
    """The start is the first beat: a worker killed right after ask() does not block the budget forever,
    and a trial that beats stays alive past the grace."""
    s = _study(tmp_path, heartbeat_s=1, grace_s=2)
    dead, alive = s.ask(), s.ask()
    s._storage.record_heartbeat(alive._trial_id)  # the thread's first call: the start, nothing written
    assert fail_stale(s) == 0
    time.sleep(1.5)
    s._storage.record_heartbeat(alive._trial_id)  # a real beat
    assert HEARTBEAT_ATTR in s.trials[alive.number].system_attrs
    time.sleep(1.0)
    assert s._storage._get_stale_trial_ids(s._study_id) == [dead._trial_id]

"""Study storage: URLs, redaction, heartbeats and stale-trial recovery."""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hwnas.search.loop import committed
from hwnas.search.resume import recover_stale_trials
from hwnas.search.study import make_storage, open_study, redact, storage_url
from hwnas.search.workers import fail_stale, heartbeat
from hwnas.utils.errors import ConfigError


def _study(tmp_path: Path, **kw) -> optuna.Study:
    return open_study(
        url=storage_url(None, tmp_path),
        study_name="s",
        directions=["maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
        **kw,
    )


def test_default_storage_is_sqlite_in_the_run_dir_and_reopens(tmp_path: Path) -> None:
    assert storage_url(None, tmp_path) == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    s = _study(tmp_path)
    s.tell(s.ask(), 1.0)
    assert len(_study(tmp_path).trials) == 1  # same run dir: same study


def test_mismatched_directions_are_a_config_error(tmp_path: Path) -> None:
    _study(tmp_path)
    with pytest.raises(ConfigError, match="directions"):
        open_study(
            url=storage_url(None, tmp_path),
            study_name="s",
            directions=["minimize"],
            sampler=optuna.samplers.RandomSampler(),
        )


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


def test_heartbeat_keeps_a_trial_alive_and_a_lapsed_one_is_recovered(tmp_path: Path) -> None:
    s = _study(tmp_path, heartbeat_s=1, grace_s=2)
    dist = {"x": optuna.distributions.IntDistribution(0, 9)}
    alive = s.ask(dist)
    with heartbeat(s, alive):
        time.sleep(2.5)
        assert fail_stale(s) == 0
    s.tell(alive, 1.0)
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

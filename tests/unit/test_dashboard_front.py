"""``make dashboard``'s front is the search's front: constraints respected, duplicates left out."""

from __future__ import annotations

import optuna
import pytest

from hwnas.reporting.dashboard import feasible_front


def _study() -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    rows = [  # (accuracy, latency, constraint value: <= 0 feasible, duplicate)
        (0.90, 1.0, 0.0, False),  # feasible front member
        (0.95, 0.5, 2.0, False),  # would dominate everything, but violates the latency budget
        (0.80, 0.4, -1.0, False),  # feasible front member
        (0.70, 2.0, -1.0, False),  # dominated
        (0.90, 1.0, 0.0, True),  # a duplicate of the first: same values, not a second member
    ]
    for acc, lat, cons, dup in rows:
        trial = study.ask()
        trial.set_constraint("hw/latency_ms<=max", cons)
        if dup:
            trial.set_user_attr("duplicate", True)
        study.tell(trial, [acc, lat])
    return study


def test_the_dashboard_front_respects_constraints_and_skips_duplicates() -> None:
    study = _study()
    front = feasible_front(study.get_trials(deepcopy=False), study.directions)
    assert [t.number for t in front] == [0, 2]
    from optuna_dashboard._pareto_front import get_pareto_front_trials  # what the dashboard would show

    theirs = {t.number for t in get_pareto_front_trials(study.get_trials(deepcopy=False), study.directions)}
    assert 1 in theirs  # the infeasible trial: the reason for feasible_front


def test_serve_installs_the_feasible_front(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    _app = pytest.importorskip("optuna_dashboard._app", reason="pip install -e '.[dashboard]'")
    import optuna_dashboard

    from hwnas.reporting import dashboard

    monkeypatch.setattr(_app, "get_pareto_front_trials", _app.get_pareto_front_trials)  # restored afterwards
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, host, port: None)
    monkeypatch.setattr(dashboard, "storage_of_run", lambda run_dir: f"sqlite:///{tmp_path / 'study.db'}")
    dashboard.serve(tmp_path)
    assert _app.get_pareto_front_trials is feasible_front

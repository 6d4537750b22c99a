"""The search's live view: plain lines off a terminal, a bar on one, and the front it tracks."""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from hwnas.callbacks.search_progress import SearchProgress, duration
from hwnas.pareto import hypervolume_2d, pareto_mask
from hwnas.reporting.front_tracker import FrontTracker
from hwnas.search.objectives import Objective

OBJECTIVES = [Objective("val/miou", "maximize"), Objective("hw/latency_ms", "minimize")]
DIRECTIONS = [o.direction for o in OBJECTIVES]
# (status, values): 3 feasible (2 on the front), 1 infeasible, 1 failed, 1 repeat -> 5 unique
TRIALS = [
    ("ok", [0.50, 2.0]),
    ("ok", [0.40, 1.0]),
    ("infeasible", [float("-inf"), 9.0]),
    ("ok", [0.30, 3.0]),  # dominated by the first
    ("fail", None),
    ("duplicate", [0.40, 1.0]),
]


def _trial(values: list[float] | None) -> FrozenTrial:
    state = TrialState.COMPLETE if values is not None else TrialState.FAIL
    return create_trial(state=state, values=values, params={"x": 0},
                        distributions={"x": CategoricalDistribution([0, 1])})  # fmt: skip


def _feed(view: SearchProgress, trials: list[tuple[str, list[float] | None]] = TRIALS) -> None:
    for status, values in trials:
        view(_trial(values), {"status": status})


def test_off_a_terminal_the_view_writes_plain_lines_with_the_counts(caplog, monkeypatch) -> None:
    monkeypatch.delenv("HWNAS_PROGRESS", raising=False)  # pytest's stderr is not a terminal: lines
    caplog.set_level(logging.INFO, logger="hwnas.search")
    view = SearchProgress(OBJECTIVES, total=8, done=1, log_every_s=0.0)
    assert view.mode == "lines" and view.bar is None
    _feed(view)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert len(lines) == len(TRIALS)  # log_every_s=0: one per trial
    hv = hypervolume_2d(np.array([[0.5, 2.0], [0.4, 1.0]]), view.front.reference(), DIRECTIONS)
    assert re.fullmatch(
        rf"progress: 6/8 unique \(75%\), 1 failed, 1 infeasible, front 2, HV {hv:.4g}; \d+s elapsed, ~\d+s left",
        lines[-1],
    ), lines[-1]
    assert lines[0].startswith("progress: 2/8 unique (25%), 0 failed, 0 infeasible, front 1, HV 0;")
    view.close()  # nothing new since the last line: no repeat
    assert sum(r.getMessage().startswith("progress:") for r in caplog.records) == len(TRIALS)


def test_lines_are_throttled_and_the_last_figures_come_at_close(caplog) -> None:
    caplog.set_level(logging.INFO, logger="hwnas.search")
    view = SearchProgress(OBJECTIVES, total=5, mode="lines", log_every_s=3600.0)
    _feed(view)
    assert not [r for r in caplog.records if r.getMessage().startswith("progress:")]
    view.close()
    view.close()  # twice is harmless (the search closes it again on its way out)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
    assert len(lines) == 1 and lines[0].startswith(
        "progress: 5/5 unique (100%), 1 failed, 1 infeasible, front 2"
    )
    assert lines[0].endswith("elapsed, done")


def test_on_a_terminal_forced_by_the_env_var_the_bar_shows_every_field(monkeypatch) -> None:
    monkeypatch.setenv("HWNAS_PROGRESS", "1")
    out = io.StringIO()
    view = SearchProgress(OBJECTIVES, total=8, done=1, refresh_s=0.0, stream=out)
    assert view.mode == "bar"
    _feed(view)
    view.close()
    last = out.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "search" in last and "6/8" in last and "75%" in last
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", last), last  # elapsed < estimated remaining
    assert re.search(r"failed 1 · infeasible 1 · front 2 · HV 0\.\d+", last), last
    monkeypatch.setenv("HWNAS_PROGRESS", "0")
    assert SearchProgress(OBJECTIVES, total=8).mode == "lines"


def test_the_bar_keeps_log_lines_off_itself_and_gives_the_console_back(monkeypatch) -> None:
    monkeypatch.setenv("HWNAS_PROGRESS", "1")
    console = logging.StreamHandler(__import__("sys").stderr)
    root = logging.getLogger()
    root.addHandler(console)
    try:
        view = SearchProgress(OBJECTIVES, total=2, stream=io.StringIO())
        assert console not in root.handlers  # routed through tqdm.write while the bar shows
        view.close()
        assert console in root.handlers
    finally:
        root.removeHandler(console)


def test_the_loop_count_of_all_workers_wins_and_the_tee_logs_first() -> None:
    calls: list[str] = []
    view = SearchProgress(OBJECTIVES, total=10, mode="lines", log_every_s=3600.0)
    on_trial = view.tee(lambda t, info: calls.append(f"logger saw {view.unique}"))
    on_trial(_trial([0.5, 1.0]), {"status": "ok", "unique": 7})  # 6 by other workers meanwhile
    assert calls == ["logger saw 0"] and view.unique == 7 and view.front.size == 1
    assert "7/10 unique (70%)" in view.line()


def test_the_front_tracker_agrees_with_pareto_and_its_hypervolume_never_falls() -> None:
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.random(200), rng.random(200) * 5])
    tracker = FrontTracker(DIRECTIONS)
    hvs = []
    for i, p in enumerate(pts):
        tracker.add(p)
        hvs.append(tracker.hypervolume())
        if i in (0, 50, 199):
            expected = pts[: i + 1][pareto_mask(pts[: i + 1], DIRECTIONS)]
            assert sorted(map(tuple, tracker.front)) == sorted(map(tuple, expected))
    assert all(b >= a - 1e-12 for a, b in zip(hvs, hvs[1:], strict=False)) and hvs[-1] > 0
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    assert tracker.reference() == pytest.approx(
        [lo[0] - 0.1 * (hi[0] - lo[0]), hi[1] + 0.1 * (hi[1] - lo[1])]
    )
    assert not tracker.add([float("nan"), 1.0]) and tracker.points == 200  # never on the front
    assert FrontTracker(["maximize", "minimize", "minimize"]).hypervolume() is None


@pytest.mark.parametrize(("s", "text"), [(0.4, "0s"), (59, "59s"), (62, "1m02s"), (3720, "1h02m")])
def test_durations_are_short(s: float, text: str) -> None:
    assert duration(s) == text

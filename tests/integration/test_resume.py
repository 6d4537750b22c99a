"""A search killed with SIGKILL continues where it stopped: nothing paid twice, the budget exact.

The search runs as a real CLI subprocess over the NAS-Bench-201 table (no training); a slowed-down
table evaluator keeps each trial in flight for a moment so the kill lands inside one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from hwnas.evaluators.table import TableEvaluator
from hwnas.reporting.trials import generation_of
from hwnas.search.storage.study import make_storage, run_has_study, storage_url
from hwnas.search.trial_attrs import is_evaluated
from hwnas.search_space.base import ArchSpec
from tests.conftest import PgDatabase

ROOT = Path(__file__).resolve().parents[2]
SLOW = "tests.integration.test_resume.SlowTable"


class SlowTable(TableEvaluator):
    """The NB201 table look-up, but each expensive step takes ``$HWNAS_TEST_DELAY_S`` seconds (stands in
    for training). From the environment, not the config: a test's pace is not part of the experiment, so
    a resume at another pace is the same search."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay_s = float(os.environ.get("HWNAS_TEST_DELAY_S", "0") or 0)

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        time.sleep(self.delay_s)
        return super().expensive(spec)


def search_cmd(run_dir: Path, *extra: str, n_trials: int = 10) -> list[str]:
    """The real CLI on the NB201 table (slowed by ``env(delay_s=...)``), writing into ``run_dir``."""
    return [
        sys.executable,
        "src/search.py",
        "experiment=nb201",
        f"search.n_trials={n_trials}",
        "search.sampler.population_size=4",
        f"evaluator._target_={SLOW}",
        f"paths.root_dir={ROOT}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def env(delay_s: float = 0.0) -> dict[str, str]:
    return {
        **os.environ,
        "HWNAS_TEST_DELAY_S": str(delay_s),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "WANDB_MODE": "disabled",
    }


STUDY = "nb201-cifar10_test_acc-pixel3_latency_ms"


def load(run_dir: Path, name: str = STUDY) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=make_storage(storage_url(None, run_dir)))


def evaluated(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials that paid for an architecture (not duplicates, not stale/surplus/invalid)."""
    return [t for t in trials if is_evaluated(t) and not t.user_attrs.get("duplicate")]


def assert_budget_exact(trials: list[optuna.trial.FrozenTrial], budget: int) -> None:
    keys = [t.user_attrs["arch_key"] for t in evaluated(trials)]
    assert len(keys) == len(set(keys)), "an architecture was evaluated twice"
    assert len(set(keys)) == budget


def wait_for(predicate, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"search exited early with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.integration
def test_sigkilled_search_resumes_in_the_same_run_dir(tmp_path: Path, nb201_path: Path) -> None:
    run_dir, budget = tmp_path / "run", 10
    proc = subprocess.Popen(
        search_cmd(run_dir, n_trials=budget),
        cwd=ROOT,
        env=env(delay_s=1.0),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def first_generation_done_one_in_flight() -> bool:
            if not run_has_study(run_dir):
                return False
            try:
                trials = load(run_dir).get_trials(deepcopy=False)
            except Exception:  # noqa: BLE001 - the study is still being created
                return False
            done = [t for t in trials if t.state == TrialState.COMPLETE]
            return len(done) >= 5 and any(
                t.state == TrialState.RUNNING and "arch_key" in t.user_attrs for t in trials
            )

        wait_for(first_generation_done_one_in_flight, 120, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = load(run_dir).get_trials(deepcopy=False)
    stale = [t for t in before if t.state == TrialState.RUNNING]
    kept = {t.number: t.user_attrs["arch_key"] for t in evaluated(before)}
    gen_before = max(generation_of(t) or 0 for t in before)
    assert stale and len(kept) >= 5 and gen_before >= 1 and not (run_dir / "trials.csv").exists()

    # Same hydra.run.dir: finds study.journal and continues.
    out = subprocess.run(
        search_cmd(run_dir, n_trials=budget),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    after = load(run_dir).get_trials(deepcopy=False)
    by_number = {t.number: t for t in after}
    # Completed trials kept as they were; the stale trial FAIL with a reason, its architecture re-queued.
    for number, key in kept.items():
        assert by_number[number].user_attrs["arch_key"] == key and by_number[number].state.is_finished()
    for t in stale:
        again = by_number[t.number]
        assert again.state == TrialState.FAIL and again.user_attrs["fail_reason"].startswith("stale")
        requeued = [u for u in after if u.user_attrs.get("requeued_from") == t.number]
        assert len(requeued) == 1 and requeued[0].params == t.params
    assert_budget_exact(after, budget)
    # NSGA-II read its generations from storage: numbering continues, it does not restart at 0.
    new = [
        t for t in after if t.number > max(u.number for u in before) and "requeued_from" not in t.user_attrs
    ]
    gens = [generation_of(t) for t in new]
    assert gens and all(g is not None and g >= gen_before for g in gens)
    df = pd.read_csv(run_dir / "trials.csv")
    assert df.loc[df["state"] == "FAIL", "fail_reason"].str.startswith("stale").any()
    summary = (run_dir / "summary.json").read_text()
    assert f'"unique_evaluated": {budget}' in summary and '"recovered_stale_trials": 1' in summary


@pytest.mark.integration
def test_resume_flag_continues_a_finished_search_without_paying_again(
    tmp_path: Path, nb201_table: Path, shared_db: PgDatabase | None
) -> None:
    first = tmp_path / "first"
    # The study is the run dir's journal file (the default). PostgreSQL: search.storage, the password from the env.
    extra = [f"benchmark.path={nb201_table}", *([f"search.storage={shared_db.url}"] if shared_db else [])]
    run_env = {**env(), **(shared_db.env if shared_db else {})}
    out = subprocess.run(
        search_cmd(first, *extra, n_trials=6),
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    def study() -> optuna.Study:
        return optuna.load_study(study_name=STUDY, storage=shared_db.full_url) if shared_db else load(first)

    keys = {t.user_attrs["arch_key"] for t in evaluated(study().get_trials())}
    # A bigger budget on the same run dir: only the difference is evaluated.
    out = subprocess.run(
        search_cmd(tmp_path / "second", *extra, f"search.resume={first}", n_trials=9),
        cwd=ROOT,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert '"unique_evaluated": 9' in (first / "summary.json").read_text()  # written in place
    trials = study().get_trials()
    assert_budget_exact(trials, 9)
    assert keys <= {t.user_attrs["arch_key"] for t in evaluated(trials)}


COMPARED = ["number", "state", "arch_key", "duplicate", "feasible", "is_pareto", "generation"]


def _same_trials(a: Path, b: Path, objectives: list[str]) -> None:
    x, y = pd.read_csv(a / "trials.csv"), pd.read_csv(b / "trials.csv")
    pd.testing.assert_frame_equal(x[COMPARED + objectives], y[COMPARED + objectives])


@pytest.mark.integration
def test_same_config_and_seed_give_the_same_trials(make_cfg, nb201_path: Path, tmp_path: Path) -> None:
    from hwnas.tasks import search

    runs = []
    for name in ("a", "b"):
        cfg = make_cfg(
            "search", ["experiment=nb201", "search.n_trials=12", "search.sampler.population_size=4"]
        )
        cfg.run_dir = str(tmp_path / name)
        search.run(cfg)
        runs.append(tmp_path / name)
    _same_trials(*runs, ["accuracy", "latency_ms"])


@pytest.mark.slow
@pytest.mark.integration
def test_tiny_training_search_is_reproducible(make_cfg, tmp_path: Path) -> None:
    from hwnas.tasks import search
    from tests.conftest import TINY_SEARCH

    runs = []
    for name in ("a", "b"):
        cfg = make_cfg("search", [*TINY_SEARCH, "search.n_trials=3", "search.sampler.population_size=2"])
        cfg.run_dir = str(tmp_path / name)
        cfg.paths.cache_dir = str(tmp_path / "cache")  # shared latency cache: the second run reuses latencies
        search.run(cfg)
        runs.append(tmp_path / name)
    _same_trials(*runs, ["val/miou", "hw/latency_ms"])


@pytest.mark.integration
def test_resume_with_other_settings_is_refused_or_forced_and_recorded(
    make_cfg, nb201_path: Path, tmp_path: Path
) -> None:
    from hwnas.tasks import search
    from hwnas.utils.errors import ConfigError

    base = ["experiment=nb201", "search.n_trials=4", "search.sampler.population_size=2"]
    cfg = make_cfg("search", base)
    cfg.run_dir = str(tmp_path / "run")
    search.run(cfg)
    before = pd.read_csv(tmp_path / "run" / "trials.csv")
    # Same settings, bigger budget: fine. Other hardware column and another seed: refused, every key named.
    same = make_cfg("search", [*base, "search.n_trials=5", f"search.resume={tmp_path / 'run'}"])
    search.run(same)
    changed = [*base, f"search.resume={tmp_path / 'run'}", "seed=3", "hardware.precision=int8"]
    with pytest.raises(ConfigError) as err:
        search.run(make_cfg("search", changed))
    msg = str(err.value)
    assert "hardware.precision" in msg and "seed" in msg and "resume_force" in msg
    assert '"fp32" -> "int8"' in msg
    after = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(after) >= len(before)  # refused before any trial: nothing lost, nothing added
    assert len(load(tmp_path / "run").get_trials()) == len(after)
    # The CLI: exit 2 and one clear line.
    out = subprocess.run(
        search_cmd(tmp_path / "cli", f"search.resume={tmp_path / 'run'}", "seed=3", n_trials=5),
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (
        out.returncode == 2 and "[" in out.stderr and "seed" in out.stderr and "Traceback" not in out.stderr
    )
    # Forced: continues, and summary.json says what was overridden.
    summary = search.run(make_cfg("search", [*changed, "search.n_trials=6", "search.resume_force=true"]))
    forced = summary["resume_forced"]
    assert forced[-1]["keys"] == ["hardware.precision", "seed"]
    assert forced[-1]["old"]["seed"] == 0 and forced[-1]["new"]["seed"] == 3
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["resume_forced"] == forced

"""Bad input gives one clear line (key + fix), a non-zero exit, no traceback, and touches no old outputs.

Each row of the table in docs/bad_inputs.md is one case here; most fail at start-up, in seconds.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hwnas.tasks import search
from hwnas.utils.cli import guarded
from tests.conftest import compose_cfg

ROOT = Path(__file__).resolve().parents[2]
SENTINEL = "number,state\n0,COMPLETE\n"

# (entry, overrides, text stderr must contain); {tmp} is the test's tmp dir.
CASES = {
    "unknown group option": ("search", ["search=foo"], ["Could not find 'search/foo'", "evolution_pareto"]),
    "mistyped key": ("search", ["search.n_trail=3"], ["search.n_trail"]),
    "zero budget": ("search", ["search.n_trials=0"], ["[search.n_trials]", "Fix:"]),
    "final stage: zero models": ("search", ["final.top_k=0"], ["[final.top_k]", "Fix:"]),
    "final stage: no test split": (
        "search",
        ["dataset.dataset.num_test=0"],
        ["[dataset.dataset.num_test]", "held-out test split", "Fix:"],
    ),
    "final stage: not a run dir": (
        "final",
        ["run={tmp}/empty"],
        ["[run]", "not a finished search run", "Fix:"],
    ),
    "image size the space cannot take": (
        "search",
        ["dataset.image_size=50"],
        ["[dataset.image_size]", "not divisible by 32", "Fix:"],
    ),
    "unknown memory format": (
        "search",
        ["tricks.memory_format=nhwc"],
        ["[tricks.memory_format]", "channels_last", "Fix:"],
    ),
    "negative budget": ("search", ["search.n_trials=-5"], ["[search.n_trials]", "Fix:"]),
    "no workers": ("search", ["search.n_workers=0"], ["[search.n_workers]", "must be >= 1", "Fix:"]),
    "negative learning rate": ("search", ["optim.lr=-1"], ["[optim.lr]", "must be > 0", "Fix:"]),
    "a seed that is not a number": ("search", ["seed=abc"], ["[seed]", "must be an integer", "Fix:"]),
    "training with a negative weight decay": (
        "train",
        ["optim.weight_decay=-0.1"],
        ["[optim.weight_decay]", "must be >= 0", "Fix:"],
    ),
    "supernet on a space without one": (
        "search",
        ["evaluator=supernet", "search_space=nb201"],
        ["[evaluator]", "no weight-sharing supernet", "evaluator=train", "Fix:"],
    ),
    "unknown supernet kernel mode": (
        "search",
        ["evaluator=supernet", "evaluator.kernel_mode=big"],
        ["[evaluator.kernel_mode]", "separate", "Fix:"],
    ),
    "inherited weights without a supernet": (
        "search",
        ["final.init=inherit"],
        ["[final.init]", "evaluator=supernet", "Fix:"],
    ),
    "unknown final init": ("search", ["final.init=warm"], ["[final.init]", "inherit", "Fix:"]),
    "corrupt arch JSON": ("train", ["arch={tmp}/bad.json"], ["[arch]", "corrupt", "Fix:"]),
    "missing arch JSON": ("train", ["arch={tmp}/none.json"], ["[arch]", "not found", "Fix:"]),
    "missing dataset root": (
        "search",
        ["dataset=face_synthetics", "dataset.root=/nope"],
        ["[dataset.root]", "/nope", "Fix:"],
    ),
    "CIFAR-10 without a root": (
        "search",
        ["dataset=cifar10"],
        ["[dataset.root]", "not set", "cifar-10-python.tar.gz", "download=True", "Fix:"],
    ),
    "CIFAR-10 root without its batches": (
        "search",
        ["dataset=cifar10", "dataset.root={tmp}/empty"],
        ["[dataset.root]", "no cifar-10-batches-py/ folder", "Fix:"],
    ),
    "digits: more images than there are": (
        "search",
        ["dataset=digits", "dataset.dataset.num_train=5000"],
        ["[dataset.dataset.num_train]", "1797", "Fix:"],
    ),
    "unreachable storage": (
        "search",
        ["debug=fast", "search.storage=postgresql://u:secret@127.0.0.1:1/db"],
        ["[search.storage]", "u:***@127.0.0.1", "Fix:"],
    ),
    "remote profiler without token": (
        "search",
        ["hardware=snapdragon888", "hardware.backend=qai_hub"],
        ["[hardware.backend]", "QAI_HUB_API_TOKEN", "Fix:"],
    ),
    "xnas with gumbel mixing": (
        "search",
        ["search=xnas", "search.strategy.mixing=gumbel"],
        ["[search.strategy.update]", "softmax", "Fix:"],
    ),
    "petridish on a space without growth": (
        "search",
        ["search=petridish", "experiment=nb201", "evaluator=train"],
        ["[search]", "no growth moves", "Fix:"],
    ),
    "a search option without a strategy": (
        "search",
        ["~search.strategy"],
        ["[search.strategy]", "has no strategy: node", "Fix:"],
    ),
    "a strategy that is not one": (
        "search",
        [
            "search.strategy._target_=optuna.samplers.RandomSampler",
            "~search.strategy.name",
            "~search.strategy.sampler",
            "~search.strategy.n_trials",
            "~search.strategy.max_attempts_factor",
        ],
        ["[search.strategy._target_]", "not a hwnas.search.strategies.base.Strategy", "SamplerStrategy"],
    ),
    "a setting the class does not take": (
        "search",
        ["experiment=nb201", "debug=fast"],
        ["[evaluator.max_epochs]", "TableEvaluator has no setting 'max_epochs'", "latency_from", "Fix:"],
    ),
    "resume from a non-search dir": (
        "search",
        ["search.resume={tmp}/empty"],
        ["[search.resume]", "study.journal", "Fix:"],
    ),
    "predictor measuring with an unknown target": (
        "search",
        ["hardware=predictor", "predictor.measure=phone"],
        ["[predictor.measure]", "unknown hardware option 'phone'", "cpu_int8", "snapdragon888", "Fix:"],
    ),
    "calibration without its measurements": (
        "profile",
        ["hardware=snapdragon888", "estimate.calibrate={tmp}/none.csv"],
        ["[estimate.calibrate]", "measurements file not found", "Fix:"],
    ),
}


# Rows that need the real command line: Hydra's own errors (before our code runs), the secret kept out of
# the .hydra/ files Hydra saves, and one row per other entry point. The rest run the same task and the same
# error handling (``guarded``) in process: seconds saved per row, the same message checked.
CLI = (
    "unknown group option",
    "mistyped key",
    "unreachable storage",
    "final stage: not a run dir",
    "corrupt arch JSON",
    "calibration without its measurements",
)


def _prepare(tmp_path: Path) -> Path:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "empty").mkdir()
    (tmp_path / "home").mkdir()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "trials.csv").write_text(SENTINEL)
    return run_dir


def _check(stderr: str, expected: list[str], run_dir: Path) -> None:
    for text in expected:
        assert text in stderr, stderr[-2000:]
    assert "Traceback" not in stderr and "secret" not in stderr
    ours = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(ours) <= 1  # ours: exactly one line; Hydra's own (first two rows) have their own format
    assert (run_dir / "trials.csv").read_text() == SENTINEL


@pytest.mark.integration
@pytest.mark.parametrize("case", CLI)
def test_bad_input_on_the_command_line_fails_clearly_and_touches_nothing(case: str, tmp_path: Path) -> None:
    entry, overrides, expected = CASES[case]
    run_dir = _prepare(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "QAI_HUB_API_TOKEN"}
    env.update(HOME=str(tmp_path / "home"), WANDB_MODE="disabled")
    args = [o.format(tmp=tmp_path) for o in overrides]
    out = subprocess.run(
        [sys.executable, f"src/{entry}.py", *args, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode != 0
    _check(out.stderr, expected, run_dir)
    assert (out.stdout + out.stderr).count(
        "error: ["
    ) <= 1  # once on the terminal (the log file keeps a copy)
    assert "secret" not in out.stdout
    for saved in (run_dir / ".hydra").glob("*.yaml"):
        assert "secret" not in saved.read_text()


@pytest.mark.integration
@pytest.mark.parametrize("case", [c for c in CASES if c not in CLI])
def test_bad_input_fails_clearly_and_touches_nothing(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entry, overrides, expected = CASES[case]
    run_dir = _prepare(tmp_path)
    monkeypatch.delenv("QAI_HUB_API_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_cfg(entry, [o.format(tmp=tmp_path) for o in overrides], run_dir)
    task = importlib.import_module(f"hwnas.tasks.{entry}")
    with pytest.raises(SystemExit) as exited:
        guarded(task.run, cfg)
    assert exited.value.code == 2
    out = capsys.readouterr()
    _check(out.err, expected, run_dir)
    assert "secret" not in out.out


@pytest.mark.integration
def test_latency_budget_nobody_meets_finishes_with_an_empty_front_and_a_warning(
    tmp_path: Path, nb201_path: Path
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "src/search.py",
            "experiment=nb201",
            "search.n_trials=4",
            "search.sampler.population_size=2",
            "++search.constraints={latency_ms:{max:0.0001}}",
            f"hydra.run.dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no feasible candidate" in out.stderr + out.stdout
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert len(trials) >= 4 and not trials["feasible"].any() and not trials["trained"].any()
    assert pd.read_csv(tmp_path / "pareto.csv").empty
    assert json.loads((tmp_path / "summary.json").read_text())["front_size"] == 0


@pytest.mark.integration
def test_every_trial_failing_still_writes_every_output(make_cfg, nb201_path: Path, monkeypatch) -> None:
    from hwnas.evaluators.table import TableEvaluator

    def broken(self, spec):
        raise RuntimeError("simulated: no candidate can be evaluated")

    monkeypatch.setattr(TableEvaluator, "expensive", broken)
    cfg = make_cfg("search", ["experiment=nb201", "search.n_trials=3", "search.sampler.population_size=2"])
    summary = search.run(cfg)
    trials = pd.read_csv(Path(cfg.run_dir) / "trials.csv")
    assert (trials["state"] == "FAIL").all() and trials["fail_reason"].str.contains("simulated").all()
    assert summary["failed"] == summary["unique_evaluated"] == 3 and summary["front_size"] == 0
    assert (Path(cfg.run_dir) / "pareto.csv").is_file() and (Path(cfg.run_dir) / "summary.json").is_file()


@pytest.mark.integration
def test_an_unwritable_run_dir_is_one_line(tmp_path: Path) -> None:
    """Hydra creates the run directory before any of our code runs; failing there is one line naming
    ``hydra.run.dir``, not Hydra's two chained tracebacks."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = subprocess.run(
        [sys.executable, "src/search.py", f"hydra.run.dir={blocker}/run"],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode != 0
    assert "[hydra.run.dir] cannot create the run directory" in out.stderr and "Fix:" in out.stderr
    assert "Traceback" not in out.stderr, out.stderr[-2000:]

"""Hydra multiruns with the basic launcher: one run dir per sweep point, each a complete search.

A sweep is how users compare seeds and hardware targets; each job must write its own outputs (no two
jobs sharing a dir or a study) and each must say where its latencies came from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_multirun(
    sweep_dir: Path, *overrides: str, timeout: float = 300, wandb_mode: str = "disabled"
) -> subprocess.CompletedProcess[str]:
    """``python src/search.py -m <overrides>`` into ``sweep_dir`` (the real CLI; W&B off unless asked)."""
    pythonpath = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "WANDB_MODE": wandb_mode, "WANDB_SILENT": "true", "PYTHONPATH": pythonpath}
    cmd = [
        sys.executable,
        "src/search.py",
        "-m",
        *overrides,
        f"paths.root_dir={ROOT}",
        f"hydra.sweep.dir={sweep_dir}",
    ]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def job_dirs(sweep_dir: Path) -> dict[tuple[str, ...], Path]:
    """Each job's run dir, keyed by its sorted task overrides (as Hydra recorded them in the job)."""
    jobs: dict[tuple[str, ...], Path] = {}
    for overrides in sorted(sweep_dir.glob("*/.hydra/overrides.yaml")):
        run_dir = overrides.parents[1]
        key = tuple(
            sorted(
                o for o in yaml.safe_load(overrides.read_text()) if o.split("=")[0] in {"seed", "hardware"}
            )
        )
        assert key not in jobs, f"two jobs with the same overrides {key}: {jobs[key]} and {run_dir}"
        jobs[key] = run_dir
    return jobs


def assert_complete(run_dir: Path, n_trials: int) -> tuple[pd.DataFrame, dict]:
    """The job's run dir holds a finished search of ``n_trials`` unique architectures."""
    trials = pd.read_csv(run_dir / "trials.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["unique_evaluated"] == n_trials, run_dir
    assert (run_dir / "study.journal").is_file() and summary["front_size"] >= 1
    return trials, summary


@pytest.mark.integration
def test_seed_sweep_on_the_table_gives_one_run_dir_per_seed(tmp_path: Path, nb201_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run_multirun(sweep, "experiment=nb201", "search.n_trials=8", "seed=0,1")
    jobs = job_dirs(sweep)
    assert set(jobs) == {("seed=0",), ("seed=1",)}
    assert len({p.resolve() for p in jobs.values()}) == 2
    runs = {k: assert_complete(d, 8)[0] for k, d in jobs.items()}
    # The seed reached the sampler: the two searches proposed different architectures.
    assert list(runs[("seed=0",)]["arch_key"]) != list(runs[("seed=1",)]["arch_key"])
    assert (sweep / "multirun.yaml").is_file()


@pytest.mark.slow
@pytest.mark.integration
def test_seed_by_hardware_sweep_trains_four_searches_with_their_latency_source(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    run_multirun(sweep, "seed=0,1", "hardware=cpu,snapdragon888", "debug=fast", timeout=900)
    jobs = job_dirs(sweep)
    assert len(jobs) == 4 and len({p.resolve() for p in jobs.values()}) == 4
    for key, run_dir in jobs.items():
        trials, summary = assert_complete(run_dir, 4)
        hardware = dict(o.split("=") for o in key)["hardware"]
        sources = set(trials["hw/source"].dropna().astype(str))
        if hardware == "snapdragon888":  # no AI Hub token, no phone: the analytical estimate, and it says so
            assert sources == {"estimated"} and summary["latency_source"] == "estimated", (run_dir, sources)
        else:
            assert sources and "estimated" not in sources and summary["latency_source"] != "estimated"


@pytest.mark.integration
def test_wandb_sweep_gives_each_job_its_own_run_in_the_study_group(tmp_path: Path, nb201_path: Path) -> None:
    pytest.importorskip("wandb")
    sweep = tmp_path / "sweep"
    run_multirun(
        sweep, "experiment=nb201", "search.n_trials=5", "seed=0,1", "logger=wandb", wandb_mode="offline"
    )
    runs = {key: list(d.glob("wandb/offline-run-*/run-*.wandb")) for key, d in job_dirs(sweep).items()}
    assert set(runs) == {("seed=0",), ("seed=1",)}
    # One W&B run per job (the basic launcher runs jobs in one process: the first run must not be reused).
    assert all(len(files) == 1 for files in runs.values()), runs
    assert len({files[0].name for files in runs.values()}) == 2

"""``hydra/launcher=slurm`` against a real single-node Slurm cluster started for the session.

The cluster (munged, slurmctld, slurmd on localhost, no accounting) comes from ``tests/slurm/start.sh``
and lives in a temporary folder; it needs the Debian packages ``slurm-wlm munge`` and root. Where they
are missing, or the cluster does not come up, the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "slurm"
PARTITION = "hwnastest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _missing() -> str | None:
    """Why a local cluster cannot be started here, or None."""
    for exe in ("sbatch", "sinfo", "scontrol", "munge"):
        if shutil.which(exe) is None:
            return f"{exe} not installed (apt-get install slurm-wlm munge)"
    for exe in ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged"):
        if not os.access(exe, os.X_OK):
            return f"{exe} not installed (apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "starting the test cluster's daemons needs root"
    return None


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    """A running one-node cluster: the environment (``SLURM_CONF``) that client commands and submitit need."""
    if why := _missing():
        pytest.skip(f"no local Slurm: {why}")
    # Not under pytest's 0700 tmp root: munged runs as user `munge` and must reach its socket folder.
    slurm_dir = Path(tempfile.mkdtemp(prefix="hwnas-slurm-"))
    slurm_dir.chmod(0o755)
    env = {
        **os.environ,
        "SLURM_DIR": str(slurm_dir),
        "SLURM_CONF": str(slurm_dir / "slurm.conf"),
        "SLURM_PARTITION": PARTITION,
        "SLURM_CTLD_PORT": str(_free_port()),
        "SLURMD_PORT": str(_free_port()),
    }
    try:
        try:
            started = subprocess.run(
                ["bash", str(SCRIPTS / "start.sh")], env=env, capture_output=True, text=True, timeout=120
            )
        except subprocess.TimeoutExpired:
            pytest.skip("the local Slurm cluster did not come up within 120 s")
        if started.returncode != 0:
            log = f"{started.stdout[-1500:]}{started.stderr[-1500:]}"
            pytest.skip(f"the local Slurm cluster did not start (tests/slurm/start.sh):\n{log}")
        yield env
    finally:
        subprocess.run(["bash", str(SCRIPTS / "stop.sh")], env=env, capture_output=True, timeout=120)
        shutil.rmtree(slurm_dir, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.integration
def test_slurm_multirun_runs_each_seed_as_a_slurm_job(
    slurm_env: dict[str, str], tmp_path: Path, nb201_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    env = {**slurm_env, "WANDB_MODE": "disabled"}
    cmd = [
        sys.executable, "src/search.py", "-m",
        "hydra/launcher=slurm",
        f"hydra.launcher.partition={PARTITION}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        "experiment=nb201", "search.n_trials=10", "seed=0,1",
        f"paths.root_dir={ROOT}",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    t0 = time.perf_counter()
    # No accounting on the test cluster: a job killed hard would never be reported, hence the timeout.
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=420)
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    print(f"2-job Slurm multirun: {wall:.1f}s")

    seeds = {}
    for run_dir in sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["unique_evaluated"] == 10 and (run_dir / "trials.csv").is_file()
        seeds[next(o for o in overrides if o.startswith("seed="))] = run_dir
    assert set(seeds) == {"seed=0", "seed=1"}

    # Both ran as Slurm jobs (one array) on the partition asked for, with the submitting Python.
    scripts = list(sweep.glob(".submitit/*/*_submission.sh"))
    assert len(scripts) == 1, scripts
    script = scripts[0].read_text()
    assert f"--partition={PARTITION}" in script and "--cpus-per-task=1" in script and "--array=0-1" in script
    assert sys.executable in script
    job_id = scripts[0].parent.name
    for task in (0, 1):
        log_out = (sweep / ".submitit" / f"{job_id}_{task}" / f"{job_id}_{task}_0_log.out").read_text()
        assert f"job_id={job_id}_{task}" in log_out
        state = subprocess.run(
            ["scontrol", "show", "job", f"{job_id}_{task}"], env=env, capture_output=True, text=True
        ).stdout
        assert "JobState=COMPLETED" in state and f"Partition={PARTITION}" in state, state

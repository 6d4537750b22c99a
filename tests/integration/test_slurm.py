"""``hydra/launcher=slurm`` against a real one-node Slurm cluster with accounting.

The cluster (munged, MariaDB + slurmdbd, slurmctld, slurmd on localhost) is started by
``tests/services.sh start`` (``make services``), which writes ``HWNAS_TEST_SLURM_CONF`` into the env file to
source. Where it is not running the tests are skipped and say why; CI sets ``HWNAS_REQUIRE_SLURM=1``, which
turns that skip into a failure. The searches run on a made-up NB201 table (``nb201_table``): seconds, no
training, no ``../shared``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from hwnas.search.trial_attrs import is_evaluated
from tests.conftest import SERVICES, PgDatabase, service_missing
from tests.integration.test_resume import ROOT, SLOW, STUDY, assert_budget_exact, env, evaluated

PAID = re.compile(r"trial\s+(\d+) \[\d+/\d+\] \S+ ok\b")  # a trial line of the search log: evaluated


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]  # SLURM_CONF for sbatch/sacct and the submitting Python process
    partition: str  # the cluster's default partition

    def run(self, *cmd: str) -> str:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture(scope="session")
def slurm() -> Cluster:
    """The running test cluster named by ``$HWNAS_TEST_SLURM_CONF``, checked to answer, accounting included."""
    conf = os.environ.get("HWNAS_TEST_SLURM_CONF")
    if not conf:
        service_missing("HWNAS_REQUIRE_SLURM", f"no Slurm test cluster (HWNAS_TEST_SLURM_CONF): {SERVICES}")
    if not Path(conf).is_file():
        service_missing("HWNAS_REQUIRE_SLURM", f"HWNAS_TEST_SLURM_CONF={conf} does not exist: {SERVICES}")
    run_env = {**os.environ, "SLURM_CONF": conf}
    try:
        info = subprocess.run(
            ["sinfo", "-h", "-o", "%P %a"], env=run_env, capture_output=True, text=True, timeout=30
        )
        acct = subprocess.run(["sacct", "-n", "-X"], env=run_env, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        service_missing("HWNAS_REQUIRE_SLURM", f"the Slurm test cluster does not answer ({exc}): {SERVICES}")
    parts = [line.split()[0] for line in info.stdout.splitlines() if line.strip().endswith("up")]
    if info.returncode != 0 or not parts:
        service_missing(
            "HWNAS_REQUIRE_SLURM", f"no partition up on the Slurm test cluster: {info.stderr[-500:]}"
        )
    if acct.returncode != 0:  # without accounting a job that dies hard leaves the launcher waiting forever
        service_missing(
            "HWNAS_REQUIRE_SLURM", f"the Slurm test cluster has no accounting: {acct.stderr[-500:]}"
        )
    default = next((p for p in parts if p.endswith("*")), parts[0])
    return Cluster(env=run_env, partition=default.rstrip("*"))


def slurm_sweep(cluster: Cluster, sweep: Path, *overrides: str) -> list[str]:
    """``src/search.py -m`` through ``hydra/launcher=slurm``: one small job per sweep point."""
    return [
        sys.executable, "src/search.py", "-m",
        "hydra/launcher=slurm",
        f"hydra.launcher.partition={cluster.partition}",
        "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=1",
        "hydra.launcher.timeout_min=10",
        f"paths.root_dir={ROOT}",
        f"hydra.sweep.dir={sweep}",
        *overrides,
    ]  # fmt: skip


def run_dirs(sweep: Path) -> dict[str, Path]:
    """The sweep's job dirs by their swept override (``seed=0``, ...: the command's last override)."""
    out = {}
    for run_dir in sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
        overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
        out[overrides[-1]] = run_dir
    return out


def job_states(cluster: Cluster, sweep: Path) -> dict[str, str]:
    """Slurm's final state of each array task of the sweep, from accounting (``sacct``).

    The launcher returns once every job has written its result; the job's step may still be ending then.
    """
    (job_dir,) = {p.parent.name for p in sweep.glob(".submitit/*/*_submission.sh")}
    deadline = time.monotonic() + 60
    while True:
        rows = cluster.run("sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", job_dir).split()
        states = dict(row.split("|") for row in rows)
        ended = states and not {"PENDING", "RUNNING", "COMPLETING"} & set(states.values())
        if ended or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


@pytest.mark.integration
def test_slurm_multirun_runs_each_seed_as_a_slurm_job(
    slurm: Cluster, tmp_path: Path, nb201_table: Path
) -> None:
    sweep = tmp_path / "sweep"
    cmd = slurm_sweep(
        slurm, sweep, "experiment=nb201", f"benchmark.path={nb201_table}", "search.n_trials=10", "seed=0,1"
    )
    t0 = time.perf_counter()
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**slurm.env, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=420,
    )
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-3000:]
    print(f"2-job Slurm multirun: {wall:.1f}s")

    seeds = run_dirs(sweep)
    assert set(seeds) == {"seed=0", "seed=1"}
    for run_dir in seeds.values():
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["unique_evaluated"] == 10 and (run_dir / "trials.csv").is_file()

    # Both ran as Slurm jobs (one array) on the partition asked for, with the submitting Python.
    scripts = list(sweep.glob(".submitit/*/*_submission.sh"))
    assert len(scripts) == 1, scripts
    script = scripts[0].read_text()
    assert (
        f"--partition={slurm.partition}" in script
        and "--cpus-per-task=1" in script
        and "--array=0-1" in script
    )
    assert sys.executable in script
    job_id = scripts[0].parent.name
    for task in (0, 1):
        log_out = (sweep / ".submitit" / f"{job_id}_{task}" / f"{job_id}_{task}_0_log.out").read_text()
        assert f"job_id={job_id}_{task}" in log_out
    assert job_states(slurm, sweep) == {f"{job_id}_0": "COMPLETED", f"{job_id}_1": "COMPLETED"}


@pytest.mark.integration
def test_two_slurm_jobs_share_one_postgresql_study_and_its_exact_budget(
    slurm: Cluster, pg_database: PgDatabase, tmp_path: Path, nb201_table: Path
) -> None:
    sweep, budget = tmp_path / "sweep", 12
    # One study for both jobs; each its own sampler seed (the run's `seed` is part of the experiment, and a
    # launch with another one would be refused as a different experiment). Trials slowed so both jobs overlap.
    cmd = slurm_sweep(
        slurm, sweep,
        "experiment=nb201", f"benchmark.path={nb201_table}", f"evaluator._target_={SLOW}",
        f"search.storage={pg_database.url}", f"search.n_trials={budget}", "search.sampler.population_size=4",
        "search.sampler.seed=0,1",
    )  # fmt: skip
    run_env = {**slurm.env, **env(delay_s=1.0), **pg_database.env}  # Slurm hands the environment to the jobs
    out = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=420)
    assert out.returncode == 0, out.stderr[-3000:]

    trials = optuna.load_study(study_name=STUDY, storage=pg_database.full_url).get_trials()
    assert_budget_exact(trials, budget)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert not [t for t in trials if t.user_attrs.get("duplicate") and is_evaluated(t)]
    jobs = run_dirs(sweep)
    assert set(jobs) == {"search.sampler.seed=0", "search.sampler.seed=1"}
    assert set(job_states(slurm, sweep).values()) == {"COMPLETED"}
    # Both jobs paid for architectures (each job's log names the trials it evaluated), none for the same one;
    # the job that finished last wrote the whole study.
    paid = {k: set(map(int, PAID.findall((d / "search.log").read_text()))) for k, d in jobs.items()}
    assert all(paid.values()) and not set.intersection(*paid.values()), paid
    assert set.union(*paid.values()) == {t.number for t in evaluated(trials)}
    done = [json.loads((d / "summary.json").read_text())["unique_evaluated"] for d in jobs.values()]
    assert max(done) == budget, done


@pytest.mark.integration
def test_a_slurm_job_that_dies_hard_fails_the_launch_instead_of_hanging(
    slurm: Cluster, tmp_path: Path, nb201_table: Path
) -> None:
    sweep = tmp_path / "sweep"
    # The job's shell is SIGKILLed before Python starts (as by the OOM killer): no result is ever written.
    # Only accounting (sacct) tells submitit the job FAILED; without it the launch would wait forever.
    cmd = slurm_sweep(
        slurm, sweep, 'hydra.launcher.setup=["kill -9 $$"]',
        "experiment=nb201", f"benchmark.path={nb201_table}", "search.n_trials=4", "seed=0",
    )  # fmt: skip
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**slurm.env, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode != 0 and "state: FAILED" in out.stderr, out.stderr[-3000:]
    assert set(job_states(slurm, sweep).values()) == {"FAILED"}


@pytest.mark.slow  # ~2.5 min: Slurm holds a requeued job back ~2 minutes before it runs again
@pytest.mark.integration
def test_a_slurm_job_sent_sigterm_mid_training_is_requeued_and_resumes_its_checkpoint(
    slurm: Cluster, tmp_path: Path
) -> None:
    from tests.integration.test_long_training import EPOCHS, SUPERNET_ARGS

    sweep = tmp_path / "sweep"
    # timeout_min=20: submitit counts a signal in the last 10 minutes of a job's limit as a timeout, not a pre-emption
    cmd = slurm_sweep(
        slurm,
        sweep,
        *SUPERNET_ARGS,
        "hydra.launcher.timeout_min=20",
        f"paths.cache_dir={tmp_path}/cache",
        "seed=0",
    )
    launch = subprocess.Popen(
        cmd, cwd=ROOT, env={**slurm.env, "WANDB_MODE": "disabled"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline, err = time.monotonic() + 300, None
    while time.monotonic() < deadline and launch.poll() is None:  # the job's log: its second epoch done
        err = next(iter(sweep.glob(".submitit/*/*_0_log.out")), None)
        if err is not None and f"supernet epoch 2/{EPOCHS}" in err.read_text():
            break
        time.sleep(0.2)
    assert err is not None and launch.poll() is None, "the job never reached its second supernet epoch"
    job = err.parent.name  # one sweep point: a plain job
    slurm.run("scancel", "--signal=TERM", job)
    out, errs = launch.communicate(timeout=420)
    assert launch.returncode == 0, errs[-3000:]

    log = err.read_text() + err.with_name(err.name.replace(".out", ".err")).read_text()  # both attempts
    assert "SIGTERM received: checkpoint saved at epoch" in log, log[-3000:]
    assert "handing over to submitit" in log
    m = re.search(rf"resumed from \S+last\.ckpt at epoch (\d+)/{EPOCHS}", log)
    assert m and int(m.group(1)) >= 2, log[-3000:]
    assert "supernet trained in" in log and "Requeued job" in log
    (run_dir,) = run_dirs(sweep).values()
    assert json.loads((run_dir / "summary.json").read_text())["unique_evaluated"] == 4
    assert job_states(slurm, sweep) == {job: "COMPLETED"}

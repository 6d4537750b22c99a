"""One device per worker, GPU memory per trial, out-of-memory failures (:mod:`hwnas.utils.devices`).

On this CPU machine the GPUs are a list given to ``search.devices``: the assignment, the worker processes
and the ``device`` column are the same code a GPU node runs (there ``CUDA_VISIBLE_DEVICES`` then narrows
each worker to its GPU)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch

import hwnas.evaluators.train as train_mod
from hwnas.tasks import search
from hwnas.utils import devices
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_SEARCH, compose_cfg
from tests.integration.test_resume import ROOT, env, search_cmd


def test_slots_span_the_slurm_tasks_of_a_node_and_take_their_own_gpu() -> None:
    node = {"SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "2(x1)"}
    assert devices.slot_of(0, 2, node) == (2, 4) and devices.slot_of(1, 2, node) == (3, 4)
    assert devices.slot_of(1, 3, {}) == (1, 3)
    gpus = devices.visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
    taken = [devices.assign(slot=s, slots=4, gpus=gpus, cpus=16, loader_workers=4, share=2) for s in range(4)]
    assert [a.label for a in taken] == ["cuda:4", "cuda:5", "cuda:6", "cuda:7"]
    assert {(a.threads, a.loader_workers) for a in taken} == {(8, 2)}
    # the node's list survives a process narrowing its own CUDA_VISIBLE_DEVICES (spawned workers read it)
    assert devices.visible_gpus("auto", {"CUDA_VISIBLE_DEVICES": "5", devices.NODE_GPUS_ENV: "4,5"}) == [
        "4",
        "5",
    ]
    assert devices.assign(slot=1, slots=2, gpus=[], cpus=3, loader_workers=0, share=2).label == "cpu"
    with pytest.raises(ConfigError, match=r"search\.devices"):
        devices.visible_gpus("0,1", {})


def test_peak_memory_is_reset_for_each_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    peak = iter([512 * 2**20, 256 * 2**20])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: next(peak))
    first: dict = {}
    second: dict = {}
    with devices.PeakMemory(first):
        pass
    with pytest.raises(RuntimeError), devices.PeakMemory(second):
        raise RuntimeError("CUDA out of memory")  # a failed trial still records its peak
    assert first == {"peak_mem_mb": 512.0} and second == {"peak_mem_mb": 256.0} and calls == ["reset"] * 2
    assert devices.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert devices.is_oom(torch.OutOfMemoryError("x")) and not devices.is_oom(RuntimeError("shape"))


@pytest.mark.integration
def test_two_workers_take_two_devices_recorded_in_trials_csv(tmp_path: Path, nb201_table: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = search_cmd(run_dir, "search.n_workers=2", "search.devices=[0,1]", f"benchmark.path={nb201_table}")
    out = subprocess.run(cmd, cwd=ROOT, env=env(delay_s=1.0), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = pd.read_csv(run_dir / "trials.csv", dtype={"worker": str})
    done = trials[(trials["state"] == "COMPLETE") & ~trials["duplicate"]]  # a duplicate reuses a result
    by_worker = done.groupby("worker")["device"].unique().to_dict()
    assert {w: list(d) for w, d in by_worker.items()} == {"0": ["cuda:0"], "1": ["cuda:1"]}
    assert "worker slot 1/2: device cuda:1" in (run_dir / "worker_1.log").read_text()


def _oom_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[pd.DataFrame, list[int]]:
    """A tiny training search whose first training runs out of memory; the batch size of every training."""
    real, batches = train_mod.fit_candidate, []

    def fit(model, **kw):  # noqa: ANN001, ANN003, ANN202
        batches.append(int(kw["datamodule"].batch_size))
        if len(batches) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real(model, **kw)

    monkeypatch.setattr(train_mod, "fit_candidate", fit)
    # promotion off: the assertions count fit_candidate calls, one per candidate
    cfg = compose_cfg(
        "search", [*TINY_SEARCH, "search.n_trials=3", "search.fidelity=null", *extra], tmp_path / "run"
    )
    search.run(cfg)
    return pd.read_csv(tmp_path / "run" / "trials.csv").sort_values("number"), batches


@pytest.mark.integration
def test_an_out_of_memory_candidate_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trials, batches = _oom_search(tmp_path, monkeypatch)
    first, rest = trials.iloc[0], trials.iloc[1:]
    assert first["state"] == "FAIL" and first["fail_reason"].startswith("out of memory: OutOfMemoryError")
    assert (rest["state"] == "COMPLETE").all() and len(rest) == 2  # the next candidates train
    assert batches == [16, 16, 16] and trials["device"].eq("cpu").all()


@pytest.mark.integration
def test_oom_retry_trains_once_more_at_half_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trials, batches = _oom_search(tmp_path, monkeypatch, "evaluator.oom_retry=true")
    assert (trials["state"] == "COMPLETE").all() and len(trials) == 3
    assert batches == [16, 8, 16, 16]  # the retry at half the batch, then the next ones at the full batch
    assert trials.iloc[0]["oom_retry_batch"] == 8 and trials.iloc[1:]["oom_retry_batch"].isna().all()

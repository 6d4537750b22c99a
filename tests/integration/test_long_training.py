"""A supernet training killed with ``kill -9`` after two of its epochs: the same command resumes it from its last
checkpoint, says from which epoch, trains no epoch before it again, and ends with the very supernet (and
the same candidates' scores) of a run that was never killed. The fast variant, in-process, is
``tests/unit/test_checkpoints.py``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.conftest import ROOT

EPOCHS = 5


#: A small supernet search whose training lasts a few seconds per epoch (also the Slurm pre-emption test's).
SUPERNET_ARGS = [
        "dataset.dataset.num_train=256", "dataset.dataset.num_val=32", "dataset.batch_size=16",
        "evaluator=supernet", f"evaluator.max_epochs={EPOCHS}", "evaluator.limit_train_batches=8",
        "evaluator.limit_val_batches=1", "evaluator.image_size=null", "evaluator.calibration_batches=1",
        "evaluator.calibration_batch_size=8", "hardware.repeats=3", "hardware.warmup=1", "hardware.loop_gap_s=0",
        "search_space.base_channels=[8,12]", "search_space.max_channels=32", "search_space.layers=[1,2]",
        "search_space.kernels=[3,5]", "final.enabled=false", "search.n_trials=4", "search.sampler.population_size=4",
        "trainer.deterministic=true", "logger=[]",
]  # fmt: skip


def _command(run_dir: Path, cache: Path) -> list[str]:
    return [sys.executable, "src/search.py", *SUPERNET_ARGS, f"paths.root_dir={ROOT}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={run_dir}"]  # fmt: skip


ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}  # same threads in every run


def _epochs(log: str) -> list[int]:
    return [int(m) for m in re.findall(rf"supernet epoch (\d+)/{EPOCHS}", log)]


@pytest.mark.slow
@pytest.mark.integration
def test_kill_9_during_supernet_training_then_the_same_command_resumes_it(tmp_path: Path) -> None:
    ref = subprocess.run(
        _command(tmp_path / "ref", tmp_path / "cache-ref"), cwd=ROOT, env=ENV, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert ref.returncode == 0, ref.stderr[-3000:]

    cmd = _command(tmp_path / "run", tmp_path / "cache")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = []
    for line in proc.stdout:  # type: ignore[union-attr]
        seen.append(line)
        if f"supernet epoch 3/{EPOCHS}" in line:  # epoch 2's checkpoint is written by then
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    assert "supernet trained" not in "".join(seen)

    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    m = re.search(
        rf"resumed from \S+last\.ckpt at epoch (\d+)/{EPOCHS} \(epochs 1-(\d+) are not repeated\)", log
    )
    assert m, log[-3000:]
    start = int(m.group(1))
    assert start >= 3 and int(m.group(2)) == start - 1  # at least the two finished epochs were kept
    assert _epochs(log) == list(range(start, EPOCHS + 1))  # no epoch before the checkpoint again

    a = torch.load(tmp_path / "ref" / "supernet" / "supernet.pt", weights_only=True)
    b = torch.load(tmp_path / "run" / "supernet" / "supernet.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    scores = [
        pd.read_csv(d / "trials.csv").set_index("arch_key")["val/miou"]
        for d in (tmp_path / "ref", tmp_path / "run")
    ]
    assert scores[0].dropna().sort_index().equals(scores[1].dropna().sort_index())
    leftovers = list((tmp_path / "cache" / "supernet").rglob("*.ckpt"))
    assert not leftovers  # the finished supernet is cached; its checkpoints are gone

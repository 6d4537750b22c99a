"""``bench/gpu_check.sh``: refuses clearly where there is no CUDA GPU (this machine); its rows run on the
CPU in ``--cpu-dry-run`` (slow tier), so the script a GPU machine runs once is not run for the first time
there."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is here: the check would run")
def test_the_gpu_check_refuses_clearly_without_cuda() -> None:
    out = subprocess.run(
        ["bash", "bench/gpu_check.sh"], cwd=ROOT, env={"GPU_CHECK_PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "needs a CUDA GPU: torch.cuda.is_available() is False" in out.stderr


@pytest.mark.slow
def test_every_row_of_the_gpu_check_runs_on_the_cpu() -> None:
    out = subprocess.run(
        [sys.executable, "bench/gpu_check.py", "--cpu-dry-run"], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert out.returncode == 0 and len(rows) == 6, out.stdout + out.stderr[-2000:]
    assert not [r for r in rows if "FAILED" in r], rows
    assert "4/4 trials ok" in rows[0] and "skipped: 1 GPU" in rows[-1]

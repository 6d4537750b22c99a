"""``python src/profile.py hardware=cpu`` end to end: latency.json written, and repeatable within 5 %."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _profile(tmp_path: Path, name: str, *overrides: str) -> dict:
    run_dir = tmp_path / name
    cmd = [sys.executable, "src/profile.py", f"hydra.run.dir={run_dir}", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((run_dir / "latency.json").read_text())


@pytest.mark.slow
def test_two_cpu_runs_agree_within_5_percent(tmp_path):
    a = _profile(tmp_path, "a", "hardware=cpu", "hardware.repeats=100")
    b = _profile(tmp_path, "b", "hardware=cpu", "hardware.repeats=100")
    assert a["source"] == b["source"] == "measured"
    assert a["cheap"]["macs"] == b["cheap"]["macs"] > 0
    assert abs(a["median_ms"] - b["median_ms"]) / min(a["median_ms"], b["median_ms"]) < 0.05


@pytest.mark.slow
def test_missing_token_exits_2_with_the_fix(tmp_path):
    cmd = [
        sys.executable,
        "src/profile.py",
        f"hydra.run.dir={tmp_path}",
        "hardware=snapdragon888",
        "hardware.backend=qai_hub",
    ]
    env = {k: v for k, v in __import__("os").environ.items() if k != "QAI_HUB_API_TOKEN"}
    env["QAIHUB_CLIENT_INI"] = str(tmp_path / "none.ini")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "qai-hub configure --api_token" in proc.stderr

"""optuna-dashboard serves a search's study: the real server (``python -m hwnas.reporting.dashboard``, as
``make dashboard RUN=<dir>`` starts it) on a free loopback port, queried through its HTTP API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from hwnas.reporting.dashboard import storage_of_run
from hwnas.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _wait_for(url: str, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _get(url)
        except (urllib.error.URLError, ConnectionError):
            assert proc.poll() is None, f"the dashboard exited: {proc.communicate()[0][-2000:]}"
            assert time.monotonic() < deadline, f"the dashboard did not answer {url} within {timeout_s} s"
            time.sleep(0.3)


@pytest.mark.integration
def test_dashboard_serves_the_trials_named_objectives_and_front(logged_run: dict[str, Any]) -> None:
    pytest.importorskip("optuna_dashboard", reason="pip install -e '.[dashboard]'")
    run_dir, trials, pareto = logged_run["run_dir"], logged_run["trials"], logged_run["pareto"]
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwnas.reporting.dashboard", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        [study] = _wait_for(f"{base}/api/studies", proc)["study_summaries"]
        assert study["study_name"] == logged_run["cfg"].search.study_name
        assert study["directions"] == ["maximize", "minimize"]
        detail = _get(f"{base}/api/studies/{study['study_id']}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert detail["objective_names"] == ["val/miou", "hw/latency_ms"]
    served = {t["number"]: t for t in detail["trials"]}
    assert sorted(served) == sorted(trials["number"])
    for _, row in trials.iterrows():
        attrs = {a["key"]: a["value"] for a in served[row["number"]]["user_attrs"]}
        assert attrs["arch_key"] == row["arch_key"]
        result = json.loads(attrs["result"])  # metrics (latency source included), feasibility, timings
        assert result["metrics"]["hw/source"] == row["hw/source"] == "measured"
        assert result["feasible"] == bool(row["feasible"])
        assert served[row["number"]]["state"] == row["state"].capitalize()
    # The dashboard's front (its best trials) is the search's front
    front_keys = {
        next(a["value"] for a in t["user_attrs"] if a["key"] == "arch_key") for t in detail["best_trials"]
    }
    assert front_keys == set(pareto["arch_key"])
    assert "arch_key" in {a["key"] for a in detail["union_user_attrs"]}  # a column of the trials table


def test_dashboard_refuses_a_dir_without_a_study(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[RUN\].*no study.*make dashboard RUN="):
        storage_of_run(tmp_path)


def test_dashboard_reads_the_storage_url_from_the_run_config(tmp_path: Path) -> None:
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "search:\n  storage: postgresql://hwnas:***@127.0.0.1:5432/studies\n"
    )
    # the masked password is dropped: opening the storage takes it from HWNAS_STORAGE_PASSWORD
    assert storage_of_run(tmp_path) == "postgresql://hwnas@127.0.0.1:5432/studies"

"""Each ``logger=`` option records the search: one step per trial, readable without any service.

The searches run over the NAS-Bench-201 table (no training), so each takes a few seconds. W&B runs
offline; its run file is read back with a small reader of W&B's record log (no server, no sync).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from hwnas.tasks import search

N_TRIALS = 8
METRICS = {"accuracy", "latency_ms", "trial/feasible"}


def _search(make_cfg: Callable[..., DictConfig], logger: str) -> tuple[DictConfig, dict[str, Any]]:
    cfg = make_cfg("search", ["experiment=nb201", f"search.n_trials={N_TRIALS}", f"logger={logger}"])
    return cfg, search.run(cfg)


@pytest.mark.integration
def test_csv_logger_writes_one_row_per_trial(make_cfg, nb201_path: Path) -> None:
    cfg, summary = _search(make_cfg, "csv")
    [path] = Path(cfg.run_dir).glob("csv/version_*/metrics.csv")
    metrics = pd.read_csv(path)
    trials = pd.read_csv(Path(cfg.run_dir) / "trials.csv")
    assert set(metrics.columns) >= METRICS
    assert sorted(metrics["step"]) == sorted(trials["number"]) and len(metrics) >= N_TRIALS
    by_step = metrics.set_index("step")["accuracy"]
    for _, row in trials.iterrows():
        assert by_step[row["number"]] == pytest.approx(row["accuracy"])
    assert summary["unique_evaluated"] == N_TRIALS


@pytest.mark.integration
def test_tensorboard_logger_writes_a_scalar_per_trial(make_cfg, nb201_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cfg, _ = _search(make_cfg, "tensorboard")
    [version] = Path(cfg.run_dir).glob("tensorboard/version_*")
    assert list(version.glob("events.out.tfevents.*"))
    acc = event_accumulator.EventAccumulator(str(version))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) >= METRICS
    assert len({s.step for s in acc.Scalars("accuracy")}) >= N_TRIALS


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline ``run-<id>.wandb`` file (W&B's LevelDB-style record log)."""
    from wandb.proto import wandb_internal_pb2

    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunks = header, b""
    while pos + header <= len(data):
        if block - pos % block < header:  # the block's tail is zero padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunks += data[pos + header : pos + header + length]
        pos += header + length
        if kind in (1, 4):  # FULL or LAST chunk: a whole record
            yield wandb_internal_pb2.Record.FromString(chunks)
            chunks = b""


def _finished_run(path: Path, timeout_s: float = 20.0) -> list[Any]:
    """The run file's records once W&B's service has written the run's exit (it writes asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = list(wandb_records(path))
        if any(r.HasField("exit") for r in records):
            return records
        assert time.monotonic() < deadline, f"the W&B run in {path} was not finished (no exit record)"
        time.sleep(0.2)


def _items(items: Any) -> dict[str, str]:
    return {i.key or "/".join(i.nested_key): i.value_json for i in items}


@pytest.mark.integration
def test_wandb_logger_offline_run_has_per_trial_history_the_table_and_the_group(
    make_cfg, nb201_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg, summary = _search(make_cfg, "wandb")
    [run_file] = Path(cfg.run_dir).glob("wandb/offline-run-*/run-*.wandb")
    records = _finished_run(run_file)
    [run] = [r.run for r in records if r.HasField("run")]
    assert run.run_group == cfg.search.study_name and run.project == "hwnas"
    config = _items(run.config.update)
    assert config["seed"] == "0" and config["study_name"] == f'"{cfg.search.study_name}"'
    history = [_items(r.history.item) for r in records if r.HasField("history")]
    per_trial = [h for h in history if "accuracy" in h]
    assert len(per_trial) >= N_TRIALS
    assert all(math.isfinite(float(h["latency_ms"])) for h in per_trial)
    assert any("trials/_type" in h for h in history), "the trials table was not logged"
    assert any("pareto_front/_type" in h for h in history), "the front image was not logged"
    final: dict[str, str] = {}
    for r in records:
        if r.HasField("summary"):
            final.update(_items(r.summary.update))
    assert final["front_size"] == str(summary["front_size"]) and "accuracy" in final

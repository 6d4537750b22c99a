"""Each ``logger=`` option records the search and its final stage, readable without any service.

One tiny real training search with its final stage (``debug=fast``-scale) logs to TensorBoard and W&B
(offline) at once; the tests read back what each wrote with the backend's own formats: TensorBoard's
``EventAccumulator``, and W&B's ``.wandb`` record log decoded with W&B's own protobuf ``Record`` (wandb
0.31 has no Python reader left: its records are read by wandb-core; :func:`wandb_records` walks the
log's blocks as W&B's former ``datastore`` did, CRCs included). The same run's study is then served by
the real optuna-dashboard (``test_dashboard.py``; the run is the session fixture ``logged_run``,
``tests/integration/conftest.py``). The CSV logger runs on the NB201 table.
"""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import DictConfig

from hwnas.tasks import search
from tests.integration.conftest import N_TRIALS

METRICS = {"accuracy", "latency_ms", "trial/feasible"}


@pytest.mark.integration
def test_csv_logger_writes_one_row_per_trial(make_cfg: Callable[..., DictConfig], nb201_path: Path) -> None:
    cfg = make_cfg("search", ["experiment=nb201", "search.n_trials=8", "logger=csv"])
    summary = search.run(cfg)
    [path] = Path(cfg.run_dir).glob("csv/version_*/metrics.csv")
    metrics = pd.read_csv(path)
    trials = pd.read_csv(Path(cfg.run_dir) / "trials.csv")
    assert set(metrics.columns) >= METRICS
    assert sorted(metrics["step"]) == sorted(trials["number"]) and len(metrics) >= 8
    by_step = metrics.set_index("step")["accuracy"]
    for _, row in trials.iterrows():
        assert by_step[row["number"]] == pytest.approx(row["accuracy"])
    assert summary["unique_evaluated"] == 8


@pytest.mark.integration
def test_tensorboard_has_a_scalar_per_trial_the_front_image_and_the_final_curves(
    logged_run: dict[str, Any],
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [version] = (logged_run["run_dir"] / "tensorboard").glob("version_*")
    acc = EventAccumulator(str(version), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    trials, final = logged_run["trials"], logged_run["final"]
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) >= 1
    # One point per trial, at the trial's number, with its value
    by_step = {s.step: s.value for s in acc.Scalars("val/miou")}
    assert sorted(by_step) == sorted(done["number"])
    for _, row in done.iterrows():
        assert by_step[row["number"]] == pytest.approx(row["val/miou"], rel=1e-6)
    feasible = {s.step: s.value for s in acc.Scalars("trial/feasible")}
    is_feasible = trials["feasible"].astype(str).eq("True").astype(float)
    assert feasible == dict(zip(trials["number"], is_feasible, strict=True))
    # The front: its image, and val/miou against latency (step = latency in µs)
    [front_png] = acc.Images("pareto_front_image")
    assert front_png.width > 100 and front_png.height > 100
    front = {s.step: s.value for s in acc.Scalars("pareto_front")}
    pareto = logged_run["pareto"]
    assert front == pytest.approx(
        {round(1000 * r["hw/latency_ms"]): r["val/miou"] for _, r in pareto.iterrows()}, rel=1e-6
    )
    # The final stage: F1 and test mIoU against re-measured latency, its charts and its models table
    ok = final[final["error"].isna()]
    assert len(ok) >= 1
    for metric in ("f1", "full_miou_fp32", "int8_miou"):
        curve = {s.step: s.value for s in acc.Scalars(f"final/{metric}_vs_latency")}
        expected = {round(1000 * r["latency_ms"]): r[metric] for _, r in ok.iterrows()}
        assert curve == pytest.approx(expected, rel=1e-6), metric
    assert {"final/full_training", "final/results"} <= set(acc.Tags()["images"])
    # Each final model's training curves, one point per epoch (train.json's history, from its worker)
    for rel in ok["file_weights"]:
        stem = Path(rel).parent.name
        history = json.loads((logged_run["run_dir"] / Path(rel).parent / "train.json").read_text())["history"]
        assert (
            len(history)
            == json.loads((logged_run["run_dir"] / Path(rel).parent / "train.json").read_text())["epochs"]
        )
        loss = {s.step: s.value for s in acc.Scalars(f"final/training/{stem}/train/loss")}
        assert loss == pytest.approx({int(h["epoch"]): h["train/loss"] for h in history}, rel=1e-5)
    assert {"trials/text_summary", "final/models/text_summary"} <= set(acc.Tags()["tensors"])
    assert (
        ok["arch_key"].iloc[0]
        in acc.Tensors("final/models/text_summary")[0].tensor_proto.string_val[0].decode()
    )


# ---- W&B ------------------------------------------------------------------------------------------------

_BLOCK, _HEADER = 32768, 7
_FULL, _LAST = 1, 4


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of a ``run-<id>.wandb`` file: W&B's LevelDB-style log (a 7-byte file header
    ``:W&B`` + magic 0xBEE1 + version 0; 32 KiB blocks of chunks, each ``crc32 | length | type``, the CRC
    seeded with the type byte), each whole record a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:_HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path} is not a W&B run file"
    pos, chunks = _HEADER, b""
    while pos + _HEADER <= len(data):
        if _BLOCK - pos % _BLOCK < _HEADER:  # the block's tail is zero padding
            pos += _BLOCK - pos % _BLOCK
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:  # preallocated, unwritten
            break
        payload = data[pos + _HEADER : pos + _HEADER + length]
        assert zlib.crc32(payload, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"bad CRC at {pos}"
        chunks += payload
        pos += _HEADER + length
        if kind in (_FULL, _LAST):
            yield wandb_internal_pb2.Record.FromString(chunks)
            chunks = b""


def finished_run(path: Path, timeout_s: float = 30.0) -> list[Any]:
    """The run file's records once W&B's service has written the run's exit (it writes asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = list(wandb_records(path))
        if any(r.HasField("exit") for r in records):
            return records
        assert time.monotonic() < deadline, f"the W&B run in {path} was not finished (no exit record)"
        time.sleep(0.2)


def _items(items: Any) -> dict[str, Any]:
    return {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}


def read_wandb_run(run_dir: Path) -> dict[str, Any]:
    """The run record, config, history rows and final summary of the one offline W&B run in ``run_dir``."""
    [run_file] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    records = finished_run(run_file)
    [run] = [r.run for r in records if r.HasField("run")]
    config: dict[str, Any] = _items(run.config.update)  # wandb.init's config rides on the run record
    summary: dict[str, Any] = {}
    for r in records:
        if r.HasField("config"):
            config.update(_items(r.config.update))
        if r.HasField("summary"):
            summary.update(_items(r.summary.update))
    [exit_record] = [r.exit for r in records if r.HasField("exit")]
    return {
        "run": run,
        "config": config,
        "history": [_items(r.history.item) for r in records if r.HasField("history")],
        "summary": summary,
        "exit_code": exit_record.exit_code,
        "files": run_file.parent / "files",
    }


def _table(wb: dict[str, Any], key: str) -> pd.DataFrame:
    """A logged ``wandb.Table``, read from the table file its history row points at."""
    [row] = [h for h in wb["history"] if h.get(f"{key}/_type") == "table-file"]
    blob = json.loads((wb["files"] / row[f"{key}/path"]).read_text())
    assert row[f"{key}/nrows"] == len(blob["data"])
    return pd.DataFrame(blob["data"], columns=blob["columns"])


@pytest.mark.integration
def test_wandb_offline_run_holds_trials_the_front_scatter_and_the_final_stage(
    logged_run: dict[str, Any],
) -> None:
    cfg, trials, pareto, final = (
        logged_run["cfg"],
        logged_run["trials"],
        logged_run["pareto"],
        logged_run["final"],
    )
    wb = read_wandb_run(logged_run["run_dir"])
    assert wb["exit_code"] == 0
    run = wb["run"]
    assert run.run_group == cfg.search.study_name and run.project == "hwnas"
    assert run.display_name == "search-seed0-cpu"
    assert wb["config"]["seed"] == 0 and wb["config"]["hardware"] == "cpu"
    assert wb["config"]["study_name"] == cfg.search.study_name
    # A history row per trial (step = trial number), with the trial's objectives
    assert sorted(h["trainer/global_step"] for h in wb["history"] if "trial/feasible" in h) == sorted(
        trials["number"]
    )
    per_trial = {h["trainer/global_step"]: h for h in wb["history"] if "val/miou" in h}
    done = trials[trials["state"] == "COMPLETE"]
    assert sorted(per_trial) == sorted(done["number"]) and len(done) >= 1
    for _, row in done.iterrows():
        assert per_trial[row["number"]]["val/miou"] == pytest.approx(row["val/miou"])
        assert math.isfinite(per_trial[row["number"]]["hw/latency_ms"])
    # The trials table, row for row
    table = _table(wb, "trials")
    assert list(table["arch_key"]) == list(trials["arch_key"])
    assert table["val/miou"].to_numpy() == pytest.approx(trials["val/miou"].to_numpy())
    # The front: a W&B scatter (vega spec wandb/scatter/v0) over a table of exactly pareto.csv's points
    chart = wb["config"]["_wandb/visualize/pareto_front"]
    assert chart["panel_config"]["panelDefId"] == "wandb/scatter/v0"
    assert chart["panel_config"]["fieldSettings"] == {"x": "hw/latency_ms", "y": "val/miou"}
    points = _table(wb, "pareto_front_table").sort_values("arch_key")
    expected = pareto.sort_values("arch_key")
    assert list(points["arch_key"]) == list(expected["arch_key"])
    assert points["hw/latency_ms"].to_numpy() == pytest.approx(expected["hw/latency_ms"].to_numpy())
    assert any(h.get("pareto_front_image/_type") == "image-file" for h in wb["history"])
    # The final stage: its models table, F1 vs latency as a scatter, its two charts, its counts
    models = _table(wb, "final/models")
    assert list(models["arch_key"]) == list(final["arch_key"])
    assert models["f1"].to_numpy() == pytest.approx(final["f1"].to_numpy())
    f1_chart = wb["config"]["_wandb/visualize/final/f1_vs_latency"]["panel_config"]
    assert f1_chart["fieldSettings"] == {"x": "latency_ms", "y": "f1"}
    for key in ("final/full_training", "final/results"):
        [image] = [h for h in wb["history"] if h.get(f"{key}/_type") == "image-file"]
        assert (wb["files"] / image[f"{key}/path"]).is_file()
    summary = wb["summary"]
    assert summary["front_size"] == logged_run["summary"]["front_size"] == len(pareto)
    assert summary["final/n_models"] == len(final) and summary["unique_evaluated"] == N_TRIALS


@pytest.mark.slow
@pytest.mark.integration
def test_wandb_sweep_writes_one_finished_run_per_search_in_the_study_group(tmp_path: Path) -> None:
    """The README's sweep at debug scale: ``-m seed=0,1 hardware=cpu,cpu_int8 logger=wandb``."""
    from tests.integration.test_sweeps import job_dirs, run_multirun

    sweep = tmp_path / "sweep"
    run_multirun(
        sweep, "seed=0,1", "hardware=cpu,cpu_int8", "logger=wandb", "debug=fast", "search.n_trials=2",
        timeout=900, wandb_mode="offline",
    )  # fmt: skip
    jobs = job_dirs(sweep)
    assert len(jobs) == 4
    ids = set()
    for key, run_dir in jobs.items():
        point = dict(o.split("=") for o in key)
        wb = read_wandb_run(run_dir)
        assert wb["exit_code"] == 0 and wb["run"].run_group == "hwnas-search"
        assert wb["run"].display_name == f"search-seed{point['seed']}-{point['hardware']}"
        assert wb["config"]["hardware"] == point["hardware"] and wb["config"]["seed"] == int(point["seed"])
        trials = pd.read_csv(run_dir / "trials.csv")
        steps = sorted(h["trainer/global_step"] for h in wb["history"] if "val/miou" in h)
        assert steps == sorted(trials["number"])
        assert len(_table(wb, "final/models")) == len(pd.read_csv(run_dir / "final" / "final.csv"))
        ids.add(wb["run"].run_id)
    assert len(ids) == 4, "a job reused another job's W&B run"

"""The final stage's outputs are named after the run's metric, and ``src/final.py`` run alone logs them to
the run's loggers (the stage itself stubbed: these check the naming and the wiring in seconds; the real
stages run in tests/integration/test_final.py and test_classification.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from omegaconf import OmegaConf

from hwnas.reporting.final import COLUMNS, columns, metric_of, write_final_outputs
from tests.conftest import compose_cfg


def _rows(metric: str) -> list[dict[str, Any]]:
    """Two finished models as the stage's rows (tasks/final.py -> final/rows.py) would hold them."""
    return [
        {
            "arch_key": key,
            "role": role,
            "init": "scratch",
            f"proxy_{metric}": 0.6 + i / 10,
            f"full_{metric}_fp32": 0.8 + i / 10,
            f"onnx_{metric}_fp32": 0.8 + i / 10,
            f"int8_{metric}": 0.79 + i / 10,
            "int8_drop": 1.0,
            f"val_{metric}": 0.7,
            "f1_fp32": 0.7 + i / 10,
            "f1_int8_host": 0.7 + i / 10,
            "f1": 0.7 + i / 10,
            "f1_source": "host-int8",
            "latency_ms": 1.0 + i,
            "latency_p10_ms": 0.9 + i,
            "latency_p90_ms": 1.1 + i,
            "latency_source": "measured (onnxruntime, fp32)",
            "latency_input": "1x1x16x16",
            "train_size": "16x16",
            "search_latency_ms": 1.0 + i,
            "params": 1000 * (i + 1),
            "train_seconds": 3.0,
            "n_test": 64,
            "files": {"weights": f"/nowhere/{key}/weights.pt"},
        }  # fmt: skip
        for i, (key, role) in enumerate((("nb201-aaaaaa", "front"), ("nb201-bbbbbb", "baseline")))
    ]


def test_the_metric_follows_the_task_and_segmentation_keeps_its_columns() -> None:
    assert metric_of("classification") == "acc"
    assert metric_of("segmentation") == metric_of("") == "miou"
    assert columns("miou") == COLUMNS == [  # a segmentation run's final.csv, as before classifiers had theirs
        "arch_key", "role", "init", "proxy_miou", "full_miou_fp32", "onnx_miou_fp32", "int8_miou", "int8_drop",
        "f1_fp32", "f1_int8_host", "f1", "f1_source", "latency_ms", "latency_p10_ms", "latency_p90_ms",
        "latency_source", "latency_input", "train_size", "search_latency_ms", "val_miou", "params",
        "train_seconds", "n_test", "on_final_front", "latency_vs_baseline", "latency_vs_baseline_p25",
        "latency_vs_baseline_p75", "miou_vs_baseline", "beats_baseline", "pick_reason", "error",
    ]  # fmt: skip
    assert [c.replace("miou", "acc") for c in COLUMNS] == columns("acc")


def test_a_classification_gallery_names_its_columns_after_accuracy(tmp_path: Path) -> None:
    out = write_final_outputs(tmp_path, _rows("acc"), budgets=None, latency_label="cpu", metric="acc")
    df = pd.read_csv(tmp_path / "final" / "final.csv")
    for name in ("proxy_acc", "full_acc_fp32", "onnx_acc_fp32", "int8_acc", "val_acc"):
        assert df[name].notna().all(), name
    assert not [c for c in df.columns if "miou" in c], list(df.columns)
    assert out["metric"] == "acc" and out["models"][0]["full_acc_fp32"] == pytest.approx(0.8)
    report = (tmp_path / "report.md").read_text()
    assert "test top-1 accuracy fp32 / int8" in report and "0.800 / 0.790" in report and "mIoU" not in report


def test_final_run_alone_logs_to_the_runs_loggers_or_the_ones_given(tmp_path: Path, monkeypatch) -> None:
    """``src/final.py run=<dir>``: the run's saved ``logger`` node is used (here csv: no end-of-run outputs,
    nothing written), and ``logger=tensorboard`` on the command line replaces it (event files in the run dir,
    with the final stage's table and curves)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hwnas.tasks import final

    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    saved = {
        "task_name": "search",
        "run_dir": "${hydra:runtime.output_dir}",
        "logger": {"csv": {"_target_": "pytorch_lightning.loggers.CSVLogger", "save_dir": "${run_dir}", "name": "csv"}},
    }  # fmt: skip
    OmegaConf.save(OmegaConf.create(saved), run_dir / ".hydra" / "config.yaml")
    (run_dir / "summary.json").write_text(json.dumps({"objectives": []}))
    seen: list[list[str]] = []

    def stage(cfg: Any, where: Path) -> dict[str, Any]:  # the stage's outputs, as run_stage returns them
        seen.append(sorted(cfg.logger))
        return write_final_outputs(where, _rows("acc"), budgets=None, latency_label="cpu", metric="acc")

    monkeypatch.setattr(final, "run_stage", stage)
    final.run(compose_cfg("final", [f"run={run_dir}"], tmp_path / "f"))
    assert seen == [["csv"]] and not (run_dir / "csv").exists() and not (run_dir / "tensorboard").exists()

    out = final.run(compose_cfg("final", [f"run={run_dir}", "logger=tensorboard"], tmp_path / "f"))
    assert seen[-1] == ["tensorboard"]
    [version] = (run_dir / "tensorboard").glob("version_*")
    assert list(version.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(version), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    models = pd.read_csv(out["outputs"]["final_csv"])
    for metric in ("f1", "int8_acc"):
        curve = {s.step: s.value for s in acc.Scalars(f"final/{metric}_vs_latency")}
        assert curve == pytest.approx(
            {round(1000 * r["latency_ms"]): r[metric] for _, r in models.iterrows()}
        )
    assert {"final/full_training", "final/results"} <= set(acc.Tags()["images"])
    assert "final/models/text_summary" in acc.Tags()["tensors"]

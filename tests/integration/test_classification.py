"""A classification search end to end: NAS-Bench-201 cells on the embedded digits, then the final stage
(full training, ONNX fp32 + int8, held-out test scores with F1 over every class, top-1 accuracy), its
final.csv columns named after accuracy (``*_acc*``), not segmentation's mIoU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch

from hwnas.final.predict import evaluate_torch, split_batches
from hwnas.tasks import search
from hwnas.utils.config import build_datamodule, build_space

TINY_DIGITS = [
    "search_space=nb201",
    "search_space.channels=8",
    "search_space.cells_per_stage=1",
    "dataset=digits",
    "dataset.batch_size=32",
    "dataset.dataset.num_train=128",
    "dataset.dataset.num_val=64",
    "dataset.dataset.num_test=64",
    "search.n_trials=3",
    "search.sampler.population_size=2",
    "search.objectives=[{name: val/acc, direction: maximize},{name: hw/latency_ms, direction: minimize}]",
    "evaluator.max_epochs=1",
    "evaluator.limit_train_batches=2",
    "evaluator.image_size=null",
    "hardware.repeats=3",
    "hardware.warmup=1",
    "final.top_k=1",
    "final.baseline=false",
    "final.jobs=1",
    "final.trainer.max_epochs=1",
    "final.int8.calibration_batches=2",
]


@pytest.mark.integration
def test_digits_search_and_final_stage_classify_end_to_end(make_cfg) -> None:
    cfg = make_cfg("search", TINY_DIGITS)
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    trials = pd.read_csv(run_dir / "trials.csv")
    ok = trials[trials["state"] == "COMPLETE"]
    assert len(ok) == 3 and ok["val/acc"].between(0, 1).all() and "val/miou" in trials.columns
    assert summary["train_image_size"] == [16, 16] and summary["latency_input_shape"] == [1, 1, 16, 16]
    exported = sorted((run_dir / "pareto").glob("*.onnx"))
    assert len(exported) == len(pd.read_csv(run_dir / "pareto.csv"))
    for path in exported:  # the front's models: (1, 1, 16, 16) grayscale images -> (1, 10) logits
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert sess.run(None, {"input": np.zeros((1, 1, 16, 16), np.float32)})[0].shape == (1, 10)

    df = pd.read_csv(run_dir / "final" / "final.csv")
    assert len(df) == 1 and df["error"].isna().all(), df.get("error")
    assert (df["n_test"] == 64).all() and df["latency_input"].eq("1x1x16x16").all()
    # Columns named after the classifier's metric, top-1 accuracy (segmentation's are *_miou*)
    for col in ("proxy_acc", "full_acc_fp32", "onnx_acc_fp32", "int8_acc", "val_acc", "f1"):
        assert df[col].between(0, 1).all(), col
    assert not [c for c in df.columns if "miou" in c], list(df.columns)
    assert df["int8_drop"].to_numpy() == pytest.approx(
        100 * (df["full_acc_fp32"] - df["int8_acc"]).to_numpy()
    )
    searched = ok.loc[ok["arch_key"] == df.loc[0, "arch_key"], "val/acc"]
    assert df.loc[0, "proxy_acc"] == pytest.approx(searched.iloc[0])  # the search's val accuracy
    saved = json.loads((run_dir / "summary.json").read_text())["final"]
    assert saved["n_models"] == len(df) and saved["metric"] == "acc"
    assert "test top-1 accuracy fp32 / int8" in (run_dir / "report.md").read_text()
    row = df.iloc[0]
    int8 = ort.InferenceSession(str(run_dir / row["file_onnx_int8"]), providers=["CPUExecutionProvider"])
    assert int8.run(None, {"input": np.zeros((1, 1, 16, 16), np.float32)})[0].shape == (1, 10)
    # The final F1 averages over all ten digits (not the face classes 1-17): recompute it from the weights.
    dm, space = build_datamodule(cfg), build_space(cfg)
    arch = space.load(run_dir / row["file_arch"])
    model = space.build(arch, num_classes=10, in_channels=1)
    model.load_state_dict(torch.load(run_dir / row["file_weights"], map_location="cpu", weights_only=True))
    cm = evaluate_torch(model, split_batches(dm, "test"), num_classes=10, f1_classes=range(10))
    assert row["f1_fp32"] == pytest.approx(cm.f1(), abs=1e-6)
    assert row["full_acc_fp32"] == pytest.approx(cm.pixel_accuracy(), abs=1e-6)

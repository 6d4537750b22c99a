"""Held-out metrics and gallery selection: the numbers the final stage reports, checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hwnas.data.labels import IGNORE_INDEX
from hwnas.final.metrics import F1_CLASSES, ConfusionMatrix
from hwnas.final.predict import evaluate_onnx, evaluate_outputs, evaluate_torch, run_onnx
from hwnas.final.selection import baseline_point, choose, hv_contributions, searched
from hwnas.hardware.export import export_onnx


def test_confusion_matrix_miou_and_f1_by_hand() -> None:
    cm = ConfusionMatrix(num_classes=3)
    target = np.array([[0, 0, 1, 1], [2, 2, IGNORE_INDEX, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])  # the ignored pixel's prediction must not count
    cm.update(pred, target)
    # class 0: tp 1, fp 1 (a 2 predicted as 0), fn 1 -> IoU 1/3; class 1: tp 3, fp 1, fn 0 -> 3/4;
    # class 2: tp 1, fp 0, fn 1 -> 1/2.
    assert cm.iou_per_class() == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert cm.miou() == pytest.approx(np.mean([1 / 3, 3 / 4, 1 / 2]))
    assert cm.f1_per_class() == pytest.approx([2 / 4, 6 / 7, 2 / 3])
    assert cm.f1(classes=(1, 2)) == pytest.approx(np.mean([6 / 7, 2 / 3]))
    assert cm.pixel_accuracy() == pytest.approx(5 / 7)


def test_dataset_level_matrix_is_not_a_mean_of_per_image_scores() -> None:
    big, small = ConfusionMatrix(num_classes=2), ConfusionMatrix(num_classes=2)
    whole = ConfusionMatrix(num_classes=2)
    a_t, a_p = np.ones(100, int), np.ones(100, int)  # image A: 100 pixels of class 1, all right
    b_t, b_p = np.array([1, 0]), np.array([0, 0])  # image B: its one class-1 pixel missed
    big.update(a_p, a_t)
    small.update(b_p, b_t)
    whole.update(a_p, a_t)
    whole.update(b_p, b_t)
    assert whole.iou_per_class()[1] == pytest.approx(100 / 101)  # pixels summed over the split first
    assert whole.iou_per_class()[1] != pytest.approx((big.iou_per_class()[1] + small.iou_per_class()[1]) / 2)


def test_absent_classes_are_left_out_and_f1_skips_background_and_facewear() -> None:
    cm = ConfusionMatrix()  # 19 classes
    target = np.array([0, 0, 1, 1, 18, 18])
    cm.update(target.copy(), target)
    assert np.isnan(cm.iou_per_class()[5]) and cm.miou() == 1.0
    assert tuple(range(1, 18)) == F1_CLASSES
    wrong_bg = np.array([1, 1, 1, 1, 0, 0])  # background and facewear all wrong, class 1 half right
    cm2 = ConfusionMatrix()
    cm2.update(wrong_bg, target)
    assert cm2.f1() == pytest.approx(2 * 2 / (2 * 2 + 2 + 0))  # only class 1 is scored
    with pytest.raises(ValueError, match="labels outside"):
        cm2.update(np.array([19]), np.array([1]))


def test_hypervolume_contribution_favours_knees_over_the_ends_by_hand() -> None:
    # scaled to [0, 1]: acc (0, 0.8, 1), log latency (0, 0.5, 1) for latencies 1, e^0.5, e
    acc = np.array([0.1, 0.5, 0.6])
    lat = np.exp(np.array([0.0, 0.5, 1.0]))
    hv = hv_contributions(acc, lat)
    assert hv == pytest.approx([0.0, 0.5 * 0.8, 0.0])  # the ends span nothing against the front's own corner


def _front() -> pd.DataFrame:
    return pd.DataFrame({
        "arch": list("abcdef"),
        "acc": [0.05, 0.10, 0.12, 0.14, 0.15, 0.16],
        "lat": [0.2, 0.5, 0.8, 0.95, 2.0, 4.0],
        "seeded": ["", "", "", "baseline", "", ""],
    })  # fmt: skip


def test_the_first_picks_aim_at_beating_the_baseline_the_rest_go_to_knees() -> None:
    rows = searched(_front())
    assert "d" not in set(rows["arch"])  # a seeded model is never a searched pick
    picks = choose(rows, 3, acc="acc", latency="lat", base=(0.14, 1.0))
    arch = [r["arch"] for r, _ in picks]
    # <= 0.85 x 1.0 ms: c (the most accurate there); <= 1.0 ms: only b left, below the baseline's proxy,
    # so not picked for that; then the largest exclusive hypervolume: e, then b (the ends a, f: none)
    assert arch == ["b", "c", "e"]
    assert "hypervolume" in dict(zip(arch, [w for _, w in picks], strict=True))["b"]
    reasons = dict(zip(arch, [w for _, w in picks], strict=True))
    assert "0.85" in reasons["c"] and "beat" in reasons["c"] and "hypervolume" in reasons["e"]
    # without the baseline's point: knees first, never the fastest end while a knee is left
    plain = [r["arch"] for r, _ in choose(rows, 2, acc="acc", latency="lat", base=None)]
    assert "a" not in plain and "f" not in plain


def test_the_runner_up_at_the_baseline_latency_comes_from_all_searched_models() -> None:
    rows = searched(_front())
    # g and h are off the front (c and e dominate them) but near the baseline, with proxies above its 0.14
    others = pd.concat([rows, pd.DataFrame({"arch": ["g", "h"], "acc": [0.145, 0.150], "lat": [0.99, 0.97]})])
    front = rows.copy()
    front.loc[len(front)] = {"arch": "x", "acc": 0.155, "lat": 0.9, "seeded": ""}  # the best at <= 1.0 ms
    picks = choose(
        front, 4, acc="acc", latency="lat", base=(0.14, 1.0), others=pd.concat([others, front.tail(1)])
    )
    reasons = {r["arch"]: w for r, w in picks}
    assert "x" in reasons and "h" in reasons and "runner-up" in reasons["h"] and "g" not in reasons
    # with room for three only, the runner-up still comes before the knees
    assert "h" in {r["arch"] for r, _ in choose(front, 3, acc="acc", latency="lat", base=(0.14, 1.0),
                                                 others=pd.concat([others, front.tail(1)]))}  # fmt: skip


def test_baseline_point_reads_the_seeded_trial() -> None:
    trials = pd.DataFrame({"state": ["COMPLETE", "COMPLETE"], "seeded": [np.nan, "baseline"],
                           "acc": [0.1, 0.14], "lat": [0.5, 0.95]})  # fmt: skip
    assert baseline_point(trials, acc="acc", latency="lat") == (0.14, 0.95)
    assert baseline_point(trials.drop(columns="seeded"), acc="acc", latency="lat") is None


def test_onnx_runner_pads_the_last_chunk_of_a_static_batch_and_matches_torch(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval()
    path = export_onnx(model, (2, 3, 8, 8), tmp_path / "m.onnx")  # static batch of 2
    x = np.random.default_rng(0).standard_normal((5, 3, 8, 8)).astype(np.float32)
    from hwnas.final.predict import onnx_session

    out = run_onnx(onnx_session(path), x)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert out.shape == ref.shape and np.abs(out - ref).max() < 1e-4
    y = ref.argmax(axis=1)
    batches = [(x, y)]
    assert evaluate_torch(model, batches, num_classes=3).miou() == 1.0
    assert evaluate_onnx(path, batches, num_classes=3).miou() == 1.0
    # Device outputs come back channels-last (TFLite): scored the same.
    nhwc = [np.moveaxis(ref[i : i + 1], 1, -1) for i in range(5)]
    assert evaluate_outputs(nhwc, [y[i : i + 1] for i in range(5)], num_classes=3).miou() == 1.0


def test_plan_jobs_gives_one_training_per_cpu_and_splits_threads() -> None:
    from hwnas.final.parallel import plan_jobs

    assert plan_jobs(None, 4, cpus=2, gpu=False) == (2, 1)  # auto: one per CPU
    assert plan_jobs(None, 1, cpus=8, gpu=False) == (1, 8)  # never more jobs than models
    assert plan_jobs(None, 3, cpus=8, gpu=False) == (3, 2)
    assert plan_jobs(1, 4, cpus=2, gpu=False) == (1, 2)  # final.jobs=1: in process, both threads
    assert plan_jobs(None, 0, cpus=2, gpu=False) == (1, 2)
    assert plan_jobs(None, 4, cpus=16, gpu=True) == (1, 16)  # a GPU trains one model at a time
    assert plan_jobs(2, 4, cpus=16, gpu=True) == (2, 8)  # unless asked


def test_final_settings_defaults_are_the_shipped_configs() -> None:
    """A key left out of a user's final config means what conf/final/default.yaml says (the parser's own
    defaults once drifted: top_k 4 in code, 3 in the file)."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from hwnas.final.settings import FinalSettings

    shipped = OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "final" / "default.yaml")
    raw = OmegaConf.to_container(shipped, resolve=False)
    literal = {k: v for k, v in raw.items() if not isinstance(v, dict | list) and not str(v).startswith("${")}
    empty = FinalSettings.from_cfg(OmegaConf.create({}))
    full = FinalSettings.from_cfg(OmegaConf.create({**literal, "seed": 0}))
    assert {"top_k", "baseline", "eval_batch_size"} <= set(literal)
    for name in ("top_k", "baseline", "eval_batch_size", "calibration_batches", "per_channel", "chunk_size"):
        assert getattr(empty, name) == getattr(full, name), name
    nested = FinalSettings.from_cfg(OmegaConf.create({"int8": raw["int8"], "device": raw["device"]}))
    for name in ("calibration_batches", "calibration_method", "per_channel", "chunk_size", "max_images"):
        assert getattr(empty, name) == getattr(nested, name), name

"""Tiny real searches end to end: real training, real ONNX, real onnxruntime, real SQLite study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hwnas.pareto import pareto_mask
from hwnas.tasks import search
from tests.conftest import TINY_SEARCH


def _objectives(summary: dict) -> list[tuple[str, str]]:
    return [(o["name"], o["direction"]) for o in summary["objectives"]]


@pytest.mark.integration
def test_tiny_search_writes_every_output_and_the_exact_front(make_cfg) -> None:
    cfg = make_cfg("search", [*TINY_SEARCH, "search.n_trials=5", "search.sampler.population_size=2"])
    summary = search.run(cfg)
    run_dir = cfg.run_dir
    trials = pd.read_csv(f"{run_dir}/trials.csv")
    front = pd.read_csv(f"{run_dir}/pareto.csv")
    # Budget = unique architectures evaluated.
    real = trials[~trials["duplicate"]]
    assert real["arch_key"].nunique() == 5 == summary["unique_evaluated"]
    assert trials["generation"].notna().all() and trials["generation"].max() >= 1  # NSGA-II generations
    for col in ("number", "state", "arch_key", "arch", "val/miou", "hw/latency_ms", "is_pareto", "seconds"):
        assert col in trials.columns
    # The front is exactly the non-dominated set of the feasible complete rows.
    ok = real[(real["state"] == "COMPLETE") & real["feasible"]]
    vals = ok[["val/miou", "hw/latency_ms"]].to_numpy(float)
    expected = set(ok["arch_key"][pareto_mask(vals, ["maximize", "minimize"])])
    assert set(front["arch_key"]) == expected == set(trials.loc[trials["is_pareto"], "arch_key"])
    # Plots are real images; the front's models are exported and loadable.
    assert Image.open(f"{run_dir}/pareto_front.png").size[0] > 100
    gif = Image.open(f"{run_dir}/pareto_evolution.gif")
    assert gif.n_frames >= 2
    import onnxruntime as ort

    for key in front["arch_key"]:
        assert json.loads(Path(f"{run_dir}/pareto/{key}.json").read_text())["key"] == key
        sess = ort.InferenceSession(f"{run_dir}/pareto/{key}.onnx", providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": np.zeros((1, 3, 64, 64), np.float32)})[0]
        assert out.shape == (1, 19, 64, 64)
    report = Path(f"{run_dir}/report.md").read_text()
    assert f"## Pareto front ({len(front)} models)" in report and "pareto_front.png" in report
    saved = json.loads(Path(f"{run_dir}/summary.json").read_text())
    assert saved["front_size"] == len(front) and _objectives(saved)[0] == ("val/miou", "maximize")


@pytest.mark.integration
def test_failing_candidates_become_fail_trials_and_the_search_goes_on(make_cfg, monkeypatch) -> None:
    from hwnas.evaluators.train import TrainingEvaluator

    original = TrainingEvaluator.expensive
    calls = {"n": 0}

    def flaky(self, spec):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom: simulated crash inside a candidate")
        return original(self, spec)

    monkeypatch.setattr(TrainingEvaluator, "expensive", flaky)
    cfg = make_cfg("search", [*TINY_SEARCH, "search.n_trials=4", "search.sampler.population_size=2"])
    summary = search.run(cfg)
    trials = pd.read_csv(f"{cfg.run_dir}/trials.csv")
    failed = trials[trials["state"] == "FAIL"]
    assert len(failed) == 1 and "boom" in failed["fail_reason"].iloc[0]
    assert summary["unique_evaluated"] == 4


@pytest.mark.integration
def test_nan_loss_is_a_failed_trial(make_cfg) -> None:
    cfg = make_cfg(
        "search",
        [
            *TINY_SEARCH,
            "search.n_trials=2",
            "search.sampler.population_size=2",
            "optim.lr=1e30",
            "tricks=none",
        ],
    )
    search.run(cfg)
    trials = pd.read_csv(f"{cfg.run_dir}/trials.csv")
    assert (trials["state"] == "FAIL").all()
    assert trials["fail_reason"].str.contains("non-finite|NaN", regex=True).all()


@pytest.mark.integration
def test_latency_budget_skips_training_of_over_budget_candidates(make_cfg) -> None:
    cfg = make_cfg(
        "search",
        [
            *TINY_SEARCH,
            "search.n_trials=4",
            "search.sampler.population_size=2",
            "+search.constraints={hw/latency_ms: {max: 0.000001}}",
        ],
    )
    summary = search.run(cfg)
    trials = pd.read_csv(f"{cfg.run_dir}/trials.csv")
    assert summary["infeasible"] == 4 and summary["front_size"] == 0
    assert not trials["trained"].any()
    assert trials["val/miou"].isna().all()  # never trained: no made-up accuracy
    assert (trials["seconds_expensive"].isna()).all()

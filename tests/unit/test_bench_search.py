"""The search benchmark's scoring and aggregation on a tiny fake run (behaviour only, never timings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
ACC, LAT = "acc", "lat_ms"
REF = (75.0, 25.0)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "bench_search.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_search"] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def front() -> pd.DataFrame:
    return pd.DataFrame({"arch": ["C", "A", "B"], ACC: [80.0, 90.0, 92.0], LAT: [5.0, 10.0, 20.0]})


@pytest.fixture
def trials() -> pd.DataFrame:
    """Out of order on purpose; a duplicate of A (trial 2) and a failed trial (4)."""
    rows = [
        (5, "COMPLETE", "B", False, 92.0, 20.0),
        (0, "COMPLETE", "X", False, 70.0, 30.0),
        (1, "COMPLETE", "A", False, 90.0, 10.0),
        (2, "COMPLETE", "A", True, 90.0, 10.0),
        (3, "COMPLETE", "C", False, 80.0, 5.0),
        (4, "FAIL", "Y", False, np.nan, np.nan),
    ]
    df = pd.DataFrame(rows, columns=["number", "state", "arch_key", "duplicate", "accuracy", "latency_ms"])
    df["arch"] = [f'{{"key": "{k}"}}' for k in df["arch_key"]]  # trials.csv: the spec as JSON
    df["seconds_cheap"] = 0.001
    df["seconds_expensive"] = [0.002, 0.002, 0.002, np.nan, 0.002, np.nan]
    return df


def test_unique_evaluations_in_trial_order_without_duplicates_or_failures(bench, trials) -> None:
    assert list(bench.unique_evaluations(trials)["arch_key"]) == ["X", "A", "C", "B"]


def test_smaller_budget_scores_the_first_unique_evaluations(bench, trials, front) -> None:
    rows, curve = bench.score_run(trials, front, accuracy=ACC, latency=LAT, budgets=[2, 4, 5], ref=REF)
    at = {r["budget"]: r for r in rows}
    assert at[2]["unique"] == 2 and at[2]["true_front_found"] == 1 and at[2]["duplicates"] == 0
    assert at[2]["hv_ratio"] < 1.0
    assert at[4]["true_front_found"] == 3 and at[4]["duplicates"] == 1
    assert at[4]["hv_ratio"] == pytest.approx(1.0) and at[4]["igd_plus"] == pytest.approx(0.0)
    assert at[5]["unique"] == 4  # the run ended before this budget: scored on what it has
    assert curve.shape == (5,) and curve[0] == 0.0 and np.isnan(curve[4])
    assert curve[1] == pytest.approx(at[2]["hv_ratio"]) and curve[3] == pytest.approx(1.0)
    assert np.all(np.diff(curve[:4]) >= 0)  # HV of a growing set never drops


def test_overhead_subtracts_evaluator_time(bench, trials) -> None:
    o = bench.overhead(trials, loop_s=1.0)
    assert o["eval_s"] == pytest.approx(6 * 0.001 + 4 * 0.002)
    assert o["overhead_ms_per_trial"] == pytest.approx(1000 * (1.0 - o["eval_s"]) / 6)


def test_aggregate_medians_iqr_and_means_per_strategy(bench) -> None:
    raw = pd.DataFrame(
        [
            {
                "strategy": s,
                "seed": k,
                "budget": b,
                "hv_ratio": hv,
                "igd_plus": 1 - hv,
                "true_front_found": tf,
                "duplicates": 2,
                "wall_s": 1.0 + k,
                "overhead_ms_per_trial": 5.0,
                "overhead_s": 1.5,
            }
            for s, scale in (("slow", 0.5), ("fast", 1.0))
            for k, tf in enumerate((1, 2, 6))
            for b, hv in ((10, 0.5 * scale + 0.1 * k), (20, 0.6 * scale + 0.1 * k))
        ]
    )
    agg = bench.aggregate(raw, [10, 20]).set_index("strategy")
    assert list(agg.index) == ["slow", "fast"]
    assert agg.loc["fast", "seeds"] == 3
    assert agg.loc["fast", "hv@10"] == pytest.approx(0.6)
    assert agg.loc["fast", "hv_q25@20"] == pytest.approx(0.65) and agg.loc[
        "fast", "hv_q75@20"
    ] == pytest.approx(0.75)
    assert agg.loc["slow", "tf_mean@20"] == pytest.approx(3.0) and agg.loc["slow", "tf_median@20"] == 2.0
    assert agg.loc["slow", "wall_s"] == 2.0
    table = bench.markdown(agg.reset_index(), [10, 20])
    assert "| fast | 3 | 0.600 [0.550, 0.650]" in table


def test_strategy_variants_run_as_shipped_unless_overridden(bench) -> None:
    assert bench.Strategy.parse("evolution_pareto").overrides == ()
    v = bench.Strategy.parse("motpe@sampler.n_startup_trials=20")
    assert v.name == "motpe" and v.overrides == ("search.sampler.n_startup_trials=20",)
    with pytest.raises(SystemExit, match="unknown strategy"):
        bench.Strategy.parse("simulated_annealing")


def test_run_spec_overrides_give_each_run_its_own_storage(bench, tmp_path) -> None:
    st = bench.Strategy.parse("random")
    a = bench.RunSpec(st, 0, 300, ACC, LAT, "journal", tmp_path / "s0").overrides()
    b = bench.RunSpec(st, 1, 300, ACC, LAT, "journal", tmp_path / "s1").overrides()
    assert "experiment=nb201" in a and "search.n_trials=300" in a and "seed=1" in b
    assert f"search.storage=journal:{tmp_path / 's0' / 'study.journal'}" in a
    sqlite = bench.RunSpec(st, 0, 9, ACC, LAT, "sqlite", tmp_path).overrides()
    assert (
        f"search.storage=sqlite:///{tmp_path / 'study.db'}" in sqlite
    )  # explicit: the default is the journal

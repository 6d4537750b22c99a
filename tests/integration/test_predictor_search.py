"""Real searches with hardware=predictor: a few latencies measured, the rest predicted, the front checked."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwnas.tasks import search
from tests.conftest import TINY_SEARCH

BUDGETED = {"seed", "uncertain", "outside", "near_front"}


def _real(run_dir: Path) -> pd.DataFrame:
    df = pd.read_csv(run_dir / "trials.csv")
    return df[~df["duplicate"].astype(bool) & (df["state"] == "COMPLETE")]


@pytest.mark.integration
def test_nb201_search_measures_at_most_the_budget_and_predicts_the_rest(make_cfg, nb201_path: Path) -> None:
    cfg = make_cfg(
        "search",
        ["experiment=nb201_predictor", "search.n_trials=40", "predictor.max_measurements=12"]
        + ["predictor.seed_size=8", f"benchmark.path={nb201_path}"],
    )
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    trials = _real(run_dir)
    assert set(trials["hw/source"]) == {"measured", "predicted"}
    measured = trials[trials["hw/source"] == "measured"]
    assert measured["hw/predictor_purpose"].isin(BUDGETED).sum() <= 12
    predicted = trials[trials["hw/source"] == "predicted"]
    assert (predicted["hw/interval_lo_ms"] < predicted["latency_ms"]).all()
    assert (predicted["latency_ms"] < predicted["hw/interval_hi_ms"]).all()
    assert (predicted["hw/interval_level"] == 0.9).all()
    truth = pd.read_csv(nb201_path, usecols=["arch", "pixel3_latency_ms"]).set_index("arch")[
        "pixel3_latency_ms"
    ]
    # measured = looked up in the table column, exactly
    assert measured["latency_ms"].to_numpy() == pytest.approx(truth[measured["arch_key"]].to_numpy())
    # what summary.json says is what trials.csv holds
    info = json.loads((run_dir / "summary.json").read_text())["latency_predictor"]
    assert info == summary["latency_predictor"]
    assert info["measured_this_run"] <= 12 and info["trials_predicted"] == len(predicted)
    assert info["measured_near_front"] == int((measured["hw/predictor_purpose"] == "near_front").sum())
    n_fit = int(predicted["hw/predictor_measurements"].max())  # the plots' axis: what predictions used
    assert info["label"] == f"predicted from {n_fit} measurements" and 8 <= n_fit <= 12
    # the front's predicted latencies were measured at the end and compared with their intervals
    front = pd.read_csv(run_dir / "pareto.csv")
    checked = pd.read_csv(run_dir / "predictor_front.csv") if info["front_predicted"] else None
    assert info["front_predicted"] == int((front["hw/source"] == "predicted").sum())
    if checked is not None:
        assert len(checked) == info["front_checked"] == info["front_predicted"]
        assert checked["measured_ms"].to_numpy() == pytest.approx(truth[checked["arch_key"]].to_numpy())
        assert info["front_inside_interval"] == int(checked["inside"].sum())
    used = pd.read_csv(run_dir / "predictor_measurements.csv")
    assert len(used) == info["measurements_used"] and set(used["purpose"]) <= BUDGETED | {"front", "cache"}
    assert (run_dir / "pareto_front.png").is_file()


@pytest.mark.integration
def test_host_cpu_search_predicts_after_its_seed_set(make_cfg) -> None:
    overrides = [o for o in TINY_SEARCH if not o.startswith("hardware.")]
    overrides += [
        "hardware=predictor",
        "predictor.measure=cpu",
        "predictor.measure_settings={repeats: 3, warmup: 1}",
    ]
    overrides += ["search.n_trials=7", "predictor.seed_size=3", "predictor.max_measurements=4"]
    cfg = make_cfg("search", overrides)
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    trials = _real(run_dir)
    info = summary["latency_predictor"]
    assert info["measure"] == "cpu" and info["measure_backend"] == "onnxruntime"
    assert info["measured_this_run"] <= 4
    assert (trials["hw/source"] == "measured").sum() <= 4 < len(trials)
    assert (trials["hw/source"] == "predicted").sum() == info["trials_predicted"] >= 1
    assert trials["hw/backend"].eq("predictor/onnxruntime").all()
    assert (run_dir / "predictor_front.csv").is_file()

"""``search=darts`` / ``search=gdas`` end to end: architectures found by gradient land in the one study as
trials (strategy column), with the same outputs as an evolutionary search; a resumed run searches no point
twice; a gradient run continues an evolutionary run's study, and a latency-target sweep spreads the found
architectures along the latency axis."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwnas.tasks import search
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_FINAL, TINY_SEARCH, compose_cfg

TINY_DNAS = [
    "search.strategy.warmup_epochs=1",
    "search.strategy.epochs=1",
    "search.strategy.limit_train_batches=2",
    "search_space.gradient_widths.base_channels=12",  # inside TINY_SEARCH's narrowed widths
]


def _cfg(tmp_path: Path, run: str, strategy: str, extra: list[str] | None = None):
    overrides = [*TINY_SEARCH, f"search={strategy}", f"paths.cache_dir={tmp_path}/cache"]
    if strategy in ("darts", "gdas"):
        overrides += TINY_DNAS
    return compose_cfg("search", [*overrides, *(extra or [])], tmp_path / run)


@pytest.mark.integration
@pytest.mark.parametrize("strategy", ["darts", "gdas"])
def test_gradient_search_writes_the_outputs_of_any_search(tmp_path: Path, strategy: str) -> None:
    summary = search.run(_cfg(tmp_path, "a", strategy, ["search.latency_targets=[0.1,0.9]"]))
    run = tmp_path / "a"
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == 2 and set(trials["strategy"]) == {strategy}
    assert trials["latency_target"].tolist() == [0.1, 0.9]
    assert (trials["state"] == "COMPLETE").all() and trials["hw/latency_ms"].gt(0).all()
    for name in ("pareto.csv", "pareto_front.png", "pareto_evolution.gif", "summary.json", "report.md"):
        assert (run / name).is_file(), name
    assert summary["strategies"] == {strategy: int((~trials["duplicate"]).sum())}
    assert summary["front_size"] >= 1 and list((run / "pareto").glob("*.onnx"))
    point = json.loads((run / "dnas" / "point-0.json").read_text())
    assert point["attrs"]["strategy"] == strategy and len(point["history"]) == 1
    assert set(point["alphas"]) and point["params"] == json.loads(trials["arch"][0])["params"]


@pytest.mark.integration
def test_resumed_gradient_run_searches_no_point_twice_and_joins_an_evolutionary_study(
    tmp_path: Path, caplog
) -> None:
    evo = search.run(
        _cfg(tmp_path, "a", "evolution_pareto", ["search.n_trials=4", "search.sampler.population_size=2"])
    )
    assert evo["unique_evaluated"] == 4
    resume = [f"search.resume={tmp_path / 'a'}", "search.latency_targets=[0.2,0.8]"]
    first = search.run(_cfg(tmp_path, "b", "gdas", resume))
    trials = pd.read_csv(tmp_path / "a" / "trials.csv")
    assert trials["strategy"].value_counts().to_dict() == {"evolution_pareto": 4, "gdas": 2}
    assert first["strategies"]["evolution_pareto"] == 4
    with caplog.at_level("INFO", logger="hwnas.search"):
        again = search.run(_cfg(tmp_path, "b", "gdas", resume))
    assert "nothing to search" in caplog.text
    assert len(pd.read_csv(tmp_path / "a" / "trials.csv")) == 6  # no trial added for a stored sweep point
    assert again["front"] == first["front"]


@pytest.mark.integration
def test_gradient_found_architectures_go_through_the_final_stage(tmp_path: Path) -> None:
    summary = search.run(_cfg(tmp_path, "a", "gdas", [*TINY_FINAL, "search.latency_targets=[0.5]"]))
    final = pd.read_csv(tmp_path / "a" / "final" / "final.csv")
    assert summary["front_size"] == 1
    assert set(final["arch_key"]) >= {summary["front"][0]["arch_key"]}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("search.strategy.order=2", "search.strategy.order"),  # GDAS is first order
        ("search.latency_loss=fast", "search.latency_loss"),
        ("search.latency_estimate=exact", "search.latency_estimate"),
        ("search.alpha_reg=l2", "search.alpha_reg"),
        ("search.latency_unit=s", "search.latency_unit"),
        ("search.n_workers=2", "search.n_workers"),
        ("search.latency_targets=[]", "search.latency_targets"),
    ],
)
def test_bad_gradient_settings_are_refused_at_start_up(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        search.run(_cfg(tmp_path, "a", "gdas", [override]))
    assert err.value.key == key
    assert not (tmp_path / "a" / "dnas").exists()  # refused before any search


@pytest.mark.integration
@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["search_space=nb201"], "no mixed-op supernet"),
        (["evaluator=table"], "trains on images"),  # no images to search on
    ],
)
def test_a_space_or_evaluator_without_gradient_support_is_refused(tmp_path: Path, overrides, match) -> None:
    cfg = compose_cfg("search", [*overrides, "search=darts"], tmp_path / "a")
    with pytest.raises(ConfigError, match=match):
        search.run(cfg)


@pytest.mark.slow
@pytest.mark.integration
def test_a_latency_target_sweep_orders_measured_latencies_on_one_front_with_evolution(tmp_path: Path) -> None:
    """The bar's sweep: 3 targets give architectures whose measured latencies are ordered like the
    targets, drawn on one pareto_front.png with an evolutionary run's trials."""
    base = ["dataset.dataset.num_train=256", "dataset.dataset.num_val=64", "hardware.repeats=15"]
    search.run(
        _cfg(
            tmp_path,
            "a",
            "evolution_pareto",
            [*base, "search.n_trials=8", "search.sampler.population_size=4"],
        )
    )
    gdas = [
        *base,
        f"search.resume={tmp_path / 'a'}",
        "search.latency_targets=[0.05,0.5,0.95]",
        "search.strategy.warmup_epochs=2",
        "search.strategy.epochs=6",
        "search.strategy.limit_train_batches=8",
    ]
    search.run(_cfg(tmp_path, "b", "gdas", gdas))
    trials = pd.read_csv(tmp_path / "a" / "trials.csv")
    found = trials[trials["strategy"] == "gdas"].sort_values("latency_target")
    assert len(found) == 3
    lat = found["hw/latency_ms"].tolist()
    assert lat == sorted(lat) and lat[0] < lat[-1], lat
    assert (tmp_path / "a" / "pareto_front.png").stat().st_size > 10_000

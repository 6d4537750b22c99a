"""The README's mix-and-match table, cell by cell, in mini mode: every gradient strategy on both spaces
with the latency-aware loss, the α regularisers and the collapse guards, and Petridish growing its own
gallery or a DARTS/GDAS-found front. Each run writes the outputs of any search into one study."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwnas.tasks import search
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_SEARCH, compose_cfg

TINY_GRADIENT = [
    "search.strategy.warmup_epochs=1",
    "search.strategy.epochs=1",
    "search.strategy.limit_train_batches=2",
    "search_space.gradient_widths.base_channels=12",  # inside TINY_SEARCH's narrowed widths
]
TINY_PETRIDISH = [
    "search.strategy.rounds=2",
    "search.strategy.parents_per_round=1",
    "search.strategy.children_per_parent=2",
    "search.strategy.moves_per_child=1",
    "search.strategy.epochs=1",
    "search.strategy.limit_train_batches=2",
    "search_space.gradient_widths.base_channels=12",
]
TINY_DARTS_CELL = [  # the DARTS cell space on the embedded digits (experiment=darts_digits, smaller)
    "search_space=darts_cell",
    "dataset=digits",
    "search.objectives=[{name: val/acc, direction: maximize},{name: hw/latency_ms, direction: minimize}]",
    "dataset.dataset.num_train=64",
    "dataset.dataset.num_val=32",
    "dataset.batch_size=16",
    "evaluator.image_size=null",
    "evaluator.max_epochs=1",
    "evaluator.limit_train_batches=2",
    "evaluator.limit_val_batches=1",
    "hardware.repeats=3",
    "hardware.warmup=1",
    "search_space.channels=4",
    "search_space.layers=3",
    "final.enabled=false",
]
TINY_CELL_GRADIENT = [
    "+search.strategy.network.channels=4",
    "+search.strategy.network.layers=3",
    "search.strategy.warmup_epochs=1",
    "search.strategy.epochs=1",
    "search.strategy.limit_train_batches=2",
]
# (space, switches): each strategy runs with both
COMBOS = {
    "hourglass": ["search.latency_loss=add", "search.alpha_reg=l1", "search.alpha_reg_weight=0.01",
                  "search.aux_skip=0.5"],
    "darts_cell": ["search.latency_loss=mul", "search.alpha_reg=entropy", "search.alpha_reg_weight=0.01",
                   "search.max_normal_skips=2", "search.aux_skip=0.5"],
}  # fmt: skip


def _cfg(tmp_path: Path, run: str, strategy: str, extra: list[str]):
    base = [*TINY_SEARCH, *TINY_GRADIENT] if strategy != "petridish" else [*TINY_SEARCH, *TINY_PETRIDISH]
    return compose_cfg(
        "search", [*base, f"search={strategy}", f"paths.cache_dir={tmp_path}/cache", *extra], tmp_path / run
    )


def _darts_cell_cfg(tmp_path: Path, run: str, strategy: str, extra: list[str]):
    tiny = TINY_CELL_GRADIENT if strategy != "petridish" else TINY_PETRIDISH[:-1]  # no hourglass widths
    overrides = [*TINY_DARTS_CELL, *tiny, f"search={strategy}", f"paths.cache_dir={tmp_path}/cache", *extra]
    return compose_cfg("search", overrides, tmp_path / run)


def _history(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "dnas").glob("point-*.json"))]


def _check_outputs(run: Path, strategy: str, n: int) -> pd.DataFrame:
    trials = pd.read_csv(run / "trials.csv")
    assert len(trials) == n and set(trials["strategy"]) == {strategy}
    assert (trials["state"] == "COMPLETE").all() and trials["hw/latency_ms"].gt(0).all()
    for name in ("pareto.csv", "pareto_front.png", "summary.json", "report.md"):
        assert (run / name).is_file(), name
    assert list((run / "pareto").glob("*.png")), "no architecture picture of the front"
    return trials


@pytest.mark.integration
def test_xnas_on_the_hourglass_mixed_layers(tmp_path: Path) -> None:
    """The XNAS update rule on the hourglass with the additive latency term, L1 on α and DARTS−'s skip."""
    search.run(_cfg(tmp_path, "a", "xnas", ["search.latency_targets=[0.1,0.9]", *COMBOS["hourglass"]]))
    run = tmp_path / "a"
    _check_outputs(run, "xnas", 2)
    for point in _history(run):
        epoch = point["history"][-1]
        assert 0 < epoch["experts_alive"] <= 1 and epoch["expert_grad_absmax"] > 0
        assert any(abs(a) > 1e-3 for row in point["alphas"].values() for a in row), "α never moved"


@pytest.mark.integration
def test_petridish_grows_a_gallery_in_one_study(tmp_path: Path) -> None:
    summary = search.run(_cfg(tmp_path, "a", "petridish", []))
    run = tmp_path / "a"
    trials = _check_outputs(run, "petridish", 1 + 2 * 2)
    assert summary["strategies"] == {"petridish": int((~trials["duplicate"]).sum())}
    seed = trials[trials["petridish_round"] == 0]
    assert len(seed) == 1 and seed["petridish_parent"].isna().all()
    grown = trials[trials["petridish_round"] > 0]
    assert grown["petridish_parent"].notna().all() and grown["petridish_moves"].notna().all()
    first = grown[grown["petridish_round"] == 1]
    assert set(first["petridish_parent"]) == set(seed["arch_key"])  # round 1 grows the seed
    assert first["petridish_moves"].str.count(",").tolist() == [0, 1]  # nested children: 1 move, 2 moves
    grown_files = sorted((run / "petridish").glob("grow-*.json"))
    assert grown_files and all(json.loads(f.read_text())["parent_init"] == "trained" for f in grown_files)
    # a resumed run grows nothing twice and proposes nothing new
    again = search.run(_cfg(tmp_path, "a", "petridish", [f"search.resume={run}"]))
    assert again["unique_evaluated"] == summary["unique_evaluated"]


@pytest.mark.integration
@pytest.mark.parametrize("seed_strategy", [pytest.param("darts", marks=pytest.mark.slow), "gdas"])
def test_petridish_grows_a_darts_or_gdas_found_front(tmp_path: Path, seed_strategy: str) -> None:
    search.run(_cfg(tmp_path, "a", seed_strategy, ["search.latency_targets=[0.2]", *TINY_GRADIENT]))
    found = set(pd.read_csv(tmp_path / "a" / "trials.csv")["arch_key"])
    extra = [f"search.resume={tmp_path / 'a'}", "search.strategy.start=front", "search.strategy.rounds=1"]
    search.run(_cfg(tmp_path, "b", "petridish", extra))
    trials = pd.read_csv(tmp_path / "a" / "trials.csv")
    grown = trials[trials["strategy"] == "petridish"]
    assert len(grown) == 2 and set(grown["petridish_parent"]) == found
    assert set(trials["strategy"]) == {seed_strategy, "petridish"}


@pytest.mark.integration
@pytest.mark.slow  # ~30 s; the fast tier grows an hourglass GDAS front (above)
def test_petridish_grows_a_gdas_found_darts_cell(tmp_path: Path) -> None:
    """Petridish's growth applied to a GDAS-searched DARTS cell: heavier ops beside its edges, one study."""
    search.run(_darts_cell_cfg(tmp_path, "a", "gdas", ["search.latency_targets=[0.5]"]))
    found = pd.read_csv(tmp_path / "a" / "trials.csv")
    extra = [f"search.resume={tmp_path / 'a'}", "search.strategy.start=front", "search.strategy.rounds=1"]
    search.run(_darts_cell_cfg(tmp_path, "b", "petridish", extra))
    trials = pd.read_csv(tmp_path / "a" / "trials.csv")
    grown = trials[trials["strategy"] == "petridish"]
    assert len(grown) == 2 and set(grown["petridish_parent"]) == set(found["arch_key"])
    for _, row in grown.iterrows():  # each move swaps one edge's op for a heavier one
        parent = json.loads(found["arch"][0])["params"]
        child = json.loads(row["arch"])["params"]
        changed = {k for k in child if child[k] != parent[k]}
        assert changed == {m.split(":")[0] for m in row["petridish_moves"].split(",")}
    assert list((tmp_path / "a" / "pareto").glob("*.png"))


@pytest.mark.integration
def test_petridish_refuses_an_empty_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no completed trial"):
        search.run(_cfg(tmp_path, "b", "petridish", ["search.strategy.start=front"]))


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["darts", "gdas", "xnas"])
@pytest.mark.parametrize("space", ["hourglass", "darts_cell"])
def test_every_gradient_strategy_with_every_switch_on_both_spaces(
    tmp_path: Path, strategy: str, space: str
) -> None:
    extra = ["search.latency_targets=[0.5]", *COMBOS[space]]
    cfg = (_cfg if space == "hourglass" else _darts_cell_cfg)(tmp_path, "a", strategy, extra)
    search.run(cfg)
    _check_outputs(tmp_path / "a", strategy, 1)
    (point,) = _history(tmp_path / "a")
    assert point["history"] and point["attrs"]["latency_target"] == 0.5
    if space == "darts_cell":
        assert point["history"][-1]["normal_skips"] is not None

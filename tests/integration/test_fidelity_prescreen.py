"""search.fidelity (multi-fidelity promotion) and search.prescreen (zero-cost drop), end to end."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pandas as pd
import pytest

from hwnas.search.fidelity import RUNG_METRIC, rung_metric
from hwnas.search.trial_attrs import RUNG0_VALUES_ATTR
from hwnas.tasks import search
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_SEARCH

RUNG1 = "search.fidelity={rungs: [{max_epochs: 1, limit_train_batches: 2, image_size: 64}], eta: 2}"


def _study(run_dir: Path) -> optuna.Study:
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / "study.journal"))
    )
    return optuna.load_study(study_name="hwnas-search", storage=storage)


def test_promoted_candidates_train_on_and_report_their_highest_rung(make_cfg) -> None:
    n = 6
    cfg = make_cfg("search", [*TINY_SEARCH, f"search.n_trials={n}", "search.seed_baseline=false", RUNG1])
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    df = pd.read_csv(run_dir / "trials.csv")
    trained = df[df["trained"].astype(str).eq("True")]
    assert trained[rung_metric(0)].notna().all(), "every trained candidate is scored at rung 0"
    promoted = trained[trained[RUNG_METRIC] >= 1]
    # the first arrival is non-dominated and within ceil(1/eta): at least one promotion, at most ceil(n/eta)
    assert 1 <= len(promoted) <= math.ceil(n / 2)
    # a promoted trial's accuracy is its highest rung's; its rung-0 value is kept beside
    assert (promoted["val/miou"] == promoted[rung_metric(1)]).all()
    study = _study(run_dir)
    for t in study.get_trials():
        if t.number in set(promoted["number"]):
            assert t.values[0] == pytest.approx(
                float(promoted.set_index("number").loc[t.number, rung_metric(1)])
            )
            assert t.user_attrs[RUNG0_VALUES_ATTR][0] == pytest.approx(
                float(promoted.set_index("number").loc[t.number, rung_metric(0)])
            )
    fid = summary["fidelity"]
    assert fid["trained_per_rung"] == [len(trained), len(promoted)]
    assert fid["candidate_epochs"] == len(trained) * 1 + len(promoted) * 1  # counted, not timed
    # the promotion's weights and score are kept for a re-run of the trial
    assert len(list((run_dir / "weights").glob("*.r1.json"))) == len(promoted)


def test_a_prescreened_candidate_is_not_trained_nor_counted(make_cfg) -> None:
    n = 6
    cfg = make_cfg(
        "search",
        [
            *TINY_SEARCH,
            f"search.n_trials={n}",
            "search.seed_baseline=false",
            "search.prescreen={score: params, drop: 0.9, neighbours: 2}",
        ],  # fmt: skip
    )
    summary = search.run(cfg)
    df = pd.read_csv(Path(cfg.run_dir) / "trials.csv")
    dropped = df[df["fail_reason"].astype(str).str.startswith("prescreened")]
    assert len(dropped) >= 1
    assert summary["unique_evaluated"] == n  # the budget went to trained candidates
    assert df["prescreen/params"].notna().sum() >= n
    assert summary["prescreen"]["dropped"] == len(dropped)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("search.fidelity={rungs: [], eta: 3}", "search.fidelity.rungs"),
        ("search.fidelity={rungs: [{max_epochs: 1}], eta: 1}", "search.fidelity.eta"),
        ("search.fidelity={rungs: [{epochs: 1}]}", "search.fidelity.rungs[0]"),
        ("search.fidelity={rungs: [{max_epochs: 1, image_size: 50}]}", "search.fidelity.rungs[0].image_size"),
        ("search.prescreen={score: zen}", "search.prescreen.score"),
        ("search.prescreen={score: naswot, drop: 1.5}", "search.prescreen.drop"),
    ],
)
def test_a_bad_schedule_is_refused_at_start_naming_the_key(make_cfg, override: str, key: str) -> None:
    cfg = make_cfg("search", [*TINY_SEARCH, "search.n_trials=2", override])
    with pytest.raises(ConfigError) as err:
        search.run(cfg)
    assert err.value.key == key
    assert not (Path(cfg.run_dir) / "trials.csv").exists()


def test_promotions_with_two_workers_and_the_surrogate_strategy(make_cfg) -> None:
    n = 6
    cfg = make_cfg(
        "search",
        [
            *TINY_SEARCH,
            "search=surrogate_pareto",
            f"search.n_trials={n}",
            "search.seed_baseline=false",
            "search.n_workers=2",
            "search.sampler.n_startup_trials=2",
            RUNG1,
        ],  # fmt: skip
    )
    summary = search.run(cfg)
    df = pd.read_csv(Path(cfg.run_dir) / "trials.csv", dtype={"worker": str})
    trained = df[df["trained"].astype(str).eq("True") & ~df["duplicate"].astype(bool)]
    assert "multi-fidelity" in (Path(cfg.run_dir) / "worker_1.log").read_text(), (
        "the helper runs the schedule"
    )
    promoted = int((trained[RUNG_METRIC] >= 1).sum())
    # two workers may decide at the same moment: at most one promotion more than ceil(n / eta)
    assert 1 <= promoted <= math.ceil(n / 2) + 1
    assert summary["fidelity"]["trained_per_rung"][1] == promoted


def test_the_seed_start_moves_are_never_prescreened(make_cfg) -> None:
    cfg = make_cfg(
        "search",
        [
            *TINY_SEARCH,
            "search.n_trials=6",
            "search_space.baseline.base_channels=12",
            "search.prescreen={score: params, drop: 0.9, neighbours: 2}",
        ],  # fmt: skip
    )
    search.run(cfg)
    df = pd.read_csv(Path(cfg.run_dir) / "trials.csv")
    planned = df["seed_move"].notna() | df["seeded"].notna()
    assert planned.sum() >= 5, "the baseline and its moves"
    assert not df.loc[planned, "fail_reason"].astype(str).str.startswith("prescreened").any()

"""The baseline and the user's own designs are evaluated first, marked seeded, and never picked as searched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from hwnas.search.seeding import seeds_of
from hwnas.tasks import search
from hwnas.utils.config import build, build_space
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_SEARCH, compose_cfg

SEEDED = [*TINY_SEARCH, "search_space.baseline.base_channels=12", "search.n_trials=4"]


def test_the_baseline_is_trial_0_counted_in_the_budget_in_generation_0_and_resume_adds_it_once(
    tmp_path: Path,
) -> None:
    cfg = compose_cfg("search", SEEDED, tmp_path)
    search.run(cfg)
    df = pd.read_csv(tmp_path / "trials.csv")
    df = df[~df["duplicate"].astype(bool)]
    assert len(df) == 4 and (df["state"] == "COMPLETE").all()  # the seed is one of the 4, not a fifth
    first = df.iloc[0]
    assert first["seeded"] == "baseline" and first["strategy"] == "evolution_pareto"
    assert first["arch_key"] == build_space(cfg).baseline().key
    assert first["generation"] == 0  # inside NSGA-II's first population: a parent like any other
    assert df["seeded"].fillna("").eq("").sum() == 3
    more = compose_cfg("search", [*SEEDED, "search.n_trials=5", f"search.resume={tmp_path}"], tmp_path)
    search.run(more)
    df = pd.read_csv(tmp_path / "trials.csv")
    unique = df[~df["duplicate"].astype(bool)]
    assert len(unique) == 5 and (df["seeded"].fillna("") == "baseline").sum() == 1


def test_a_users_design_is_seeded_by_file_and_a_bad_file_is_refused_at_start_up(tmp_path: Path) -> None:
    cfg = compose_cfg("search", SEEDED, tmp_path / "a")
    space = build_space(cfg)
    mine = space.make({**space.baseline().values, "base_channels": 8})
    path = mine.save(tmp_path / "mine.json")
    cfg = compose_cfg("search", [*SEEDED, f"search.seed_architectures=[{path}]"], tmp_path / "a")
    search.run(cfg)
    df = pd.read_csv(tmp_path / "a" / "trials.csv")
    assert list(df["seeded"].fillna("")[:2]) == ["baseline", "arch:mine.json"]
    assert df.loc[1, "arch_key"] == mine.key
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"space": "hourglass", "params": {"base_channels": 999}}))
    cfg = compose_cfg("search", [*SEEDED, f"search.seed_architectures=[{bad}]"], tmp_path / "b")
    with pytest.raises(ConfigError, match="search.seed_architectures"):
        search.run(cfg)
    assert not (tmp_path / "b" / "study.journal").exists()  # refused before the study was opened


def test_a_table_benchmark_is_not_seeded(tmp_path: Path, nb201_path: Path) -> None:
    cfg = compose_cfg("search", ["experiment=nb201", f"benchmark.path={nb201_path}"], tmp_path)
    space = build_space(cfg)
    assert seeds_of(cfg, space, build(cfg.evaluator, "evaluator")) == []

"""Benchmark table loading, its errors, the true front, the reference point and scoring."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hwnas.benchmark.table import (
    chance_level,
    load_table,
    objectives_by_arch,
    reference_point,
    score,
    true_front,
)
from hwnas.pareto import hypervolume_2d
from hwnas.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"
ACC, LAT = "cifar10_test_acc", "pixel3_latency_ms"
needs_table = pytest.mark.skipif(not TABLE.is_file(), reason=f"benchmark table absent: {TABLE}")


def test_missing_file_names_key_and_default(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_table(tmp_path / "nope.csv.gz", accuracy=ACC, latency=LAT)
    text = str(err.value)
    assert "benchmark.path" in text and "../shared/data/nb201/nb201_hw.csv.gz" in text


def test_unknown_columns_list_what_exists(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"arch": ["a"], "cifar10_test_acc": [90.0], "pixel3_latency_ms": [1.0], "x": [0]}).to_csv(
        path, index=False
    )
    with pytest.raises(ConfigError) as err:
        load_table(path, accuracy="cifar10_acc", latency=LAT)
    assert err.value.key == "benchmark.accuracy" and err.value.choices == ["cifar10_test_acc"]
    with pytest.raises(ConfigError) as err:
        load_table(path, accuracy=ACC, latency="pixel4_latency_ms")
    assert err.value.key == "benchmark.latency" and err.value.choices == ["pixel3_latency_ms"]


def test_no_arch_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"cifar10_test_acc": [90.0], "pixel3_latency_ms": [1.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="'arch'"):
        load_table(path, accuracy=ACC, latency=LAT)


def test_chance_levels() -> None:
    assert chance_level("cifar10_test_acc") == 10.0
    assert chance_level("cifar100_test_acc") == 1.0
    assert chance_level("imagenet16_120_test_acc") == pytest.approx(100 / 120)


def test_front_excludes_chance_and_scoring_on_toy_table() -> None:
    df = pd.DataFrame(
        {
            "arch": ["dead", "a", "b", "c", "d"],
            ACC: [10.0, 90.0, 80.0, 85.0, 70.0],
            LAT: [0.01, 10.0, 5.0, 12.0, 6.0],
        }
    )
    front = true_front(df, ACC, LAT)
    assert front["arch"].tolist() == ["b", "a"]
    assert reference_point(front, ACC, LAT) == (pytest.approx(78.5), pytest.approx(11.0))
    perfect = score(df, front, accuracy=ACC, latency=LAT)
    assert perfect["hv_ratio"] == pytest.approx(1.0) and perfect["igd_plus"] == 0.0
    assert perfect["true_front_found"] == 2 and perfect["front_recall"] == 1.0
    partial = score(df[df.arch.isin(["b", "d"])], front, accuracy=ACC, latency=LAT)
    assert 0 < partial["hv_ratio"] < 1 and partial["true_front_found"] == 1 and partial["igd_plus"] > 0


@needs_table
def test_reference_point_and_true_hypervolume_match_readme() -> None:
    df = load_table(TABLE, accuracy=ACC, latency=LAT)
    assert len(df) == 15625
    front = true_front(df, ACC, LAT)
    assert len(front) == 42 and front[ACC].min() == pytest.approx(86.54)
    ref = reference_point(front, ACC, LAT)
    assert ref[0] == pytest.approx(85.04) and ref[1] == pytest.approx(25.943, abs=1e-3)
    hv = hypervolume_2d(front[[ACC, LAT]].to_numpy(), ref, ("maximize", "minimize"))
    assert hv == pytest.approx(204.72, abs=0.01)
    # The README's 43-row file has the same front plus the one chance-level point.
    readme = pd.read_csv(TABLE.parent / "nb201_pixel3_pareto.csv")
    assert set(front["arch"]) == set(readme.loc[readme[ACC] > 10, "arch"])


@needs_table
def test_lookup_by_space_key() -> None:
    from hwnas.search_space.nb201 import NB201Space

    df = load_table(TABLE, accuracy=ACC, latency=LAT)
    lookup = objectives_by_arch(df, ACC, LAT)
    spec = NB201Space().baseline()
    assert lookup[spec.key] == (pytest.approx(94.363333), pytest.approx(35.0333))
    assert len(lookup) == 15625


@needs_table
def test_table_is_cached_and_returned_as_copy() -> None:
    a = load_table(TABLE, accuracy=ACC, latency=LAT)
    a.loc[0, ACC] = -1.0
    b = load_table(TABLE, accuracy=ACC, latency=LAT)
    assert b.loc[0, ACC] != -1.0

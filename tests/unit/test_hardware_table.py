"""Table profiler: measured numbers by architecture key, with errors that list what exists."""

from __future__ import annotations

import gzip

import pytest
from torch import nn

from hwnas.hardware.table import TableProfiler
from hwnas.utils.errors import CandidateFailed, ConfigError, DataError


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "hw.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("arch,pixel3_latency_ms,fpga_latency_ms\n|a|,3.5,1.0\n|b|,4.25,\n")
    return path


def test_lookup_by_key(table):
    prof = TableProfiler(table, "pixel3_latency_ms")
    r = prof.profile(nn.Identity(), (1, 3, 32, 32), arch_key="|b|")
    assert r.median_ms == 4.25 and r.source == "measured" and r.backend == "table"
    assert r.extra == {"table": str(table), "column": "pixel3_latency_ms", "key": "|b|"}
    assert prof.profile_key("|a|").median_ms == 3.5


def test_unknown_column_lists_the_columns(table):
    with pytest.raises(ConfigError) as err:
        TableProfiler(table, "pixel4_latency_ms").check()
    assert err.value.key == "hardware.column"
    assert "pixel3_latency_ms" in err.value.choices


def test_missing_key_or_value_is_a_failed_candidate(table):
    with pytest.raises(CandidateFailed, match="not in table"):
        TableProfiler(table, "pixel3_latency_ms").profile_key("|zzz|")
    with pytest.raises(CandidateFailed):
        TableProfiler(table, "fpga_latency_ms").profile_key("|b|")  # empty cell
    with pytest.raises(CandidateFailed, match="arch_key"):
        TableProfiler(table, "pixel3_latency_ms").profile(nn.Identity(), (1, 3, 8, 8))


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        TableProfiler(tmp_path / "nope.csv", "x").check()

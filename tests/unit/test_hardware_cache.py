"""Latency cache: a hit costs nothing, is labelled ``cached``, and keys separate what differs."""

from __future__ import annotations

import json

from torch import nn

from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.cache import CachedProfiler, LatencyCache


class Counting(Profiler):
    target = "fake"
    backend = "fake"

    def __init__(self, precision: str = "fp32") -> None:
        self.precision = precision
        self.calls = 0

    def profile(self, model, input_shape, *, onnx_path=None, calibration=None, arch_key=None):
        self.calls += 1
        return LatencyReport(1.0 + self.calls, 1.0, 3.0, 5, "fake", "dev", self.precision, "measured")


MODEL = nn.Identity()


def test_hit_returns_cached_without_profiling_again(tmp_path):
    inner = Counting()
    prof = CachedProfiler(inner, LatencyCache(tmp_path))
    first = prof.profile(MODEL, (1, 3, 8, 8), arch_key="a")
    second = prof.profile(MODEL, (1, 3, 8, 8), arch_key="a")
    assert inner.calls == 1
    assert first.source == "measured"
    assert second.source == "cached" and second.extra["original_source"] == "measured"
    assert second.median_ms == first.median_ms
    # A fresh process (new wrapper, same folder) hits too.
    again = CachedProfiler(Counting(), LatencyCache(tmp_path)).profile(MODEL, (1, 3, 8, 8), arch_key="a")
    assert again.source == "cached" and again.extra["original_source"] == "measured"


def test_key_separates_arch_shape_and_precision(tmp_path):
    cache = LatencyCache(tmp_path)
    inner = Counting()
    prof = CachedProfiler(inner, cache)
    prof.profile(MODEL, (1, 3, 8, 8), arch_key="a")
    prof.profile(MODEL, (1, 3, 8, 8), arch_key="b")
    prof.profile(MODEL, (1, 3, 16, 16), arch_key="a")
    CachedProfiler(Counting("int8"), cache).profile(MODEL, (1, 3, 8, 8), arch_key="a")
    assert inner.calls == 3 and len(cache) == 4


def test_no_arch_key_means_no_caching(tmp_path):
    inner = Counting()
    prof = CachedProfiler(inner, LatencyCache(tmp_path))
    prof.profile(MODEL, (1, 3, 8, 8))
    prof.profile(MODEL, (1, 3, 8, 8))
    assert inner.calls == 2 and len(prof.cache) == 0


def test_corrupt_entry_is_a_miss_and_writes_leave_no_temp_files(tmp_path):
    inner = Counting()
    prof = CachedProfiler(inner, LatencyCache(tmp_path))
    prof.profile(MODEL, (1, 3, 8, 8), arch_key="a")
    (entry,) = list(tmp_path.glob("*/*.json"))
    json.loads(entry.read_text())
    entry.write_text("{not json")
    assert prof.profile(MODEL, (1, 3, 8, 8), arch_key="a").source == "measured"
    assert inner.calls == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [entry.name]

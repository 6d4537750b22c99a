"""The comparison with the baseline: latency ratios round by round, the verdict's two ways to win, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hwnas.final.compare import baseline_stats, verdicts
from hwnas.hardware.base import LatencyReport, latency_ratios
from hwnas.hardware.onnxruntime import OnnxRuntimeProfiler


def _report(median: float, rounds: list[float] | None = None) -> LatencyReport:
    extra = {"rounds_ms": rounds} if rounds else {}
    return LatencyReport(median, median, median, 1, "test", "here", "fp32", "measured", extra=extra)


def test_ratios_are_taken_round_by_round_so_a_drift_cancels() -> None:
    # the machine slows down 2x over the pass: each round times both models at the same speed
    base = _report(2.0, [1.0, 2.0, 4.0])
    fast = _report(1.4, [0.7, 1.4, 2.8])
    (q, lo, hi), (one, _, _) = latency_ratios([fast, base], 1)
    assert (q, lo, hi) == pytest.approx((0.7, 0.7, 0.7)) and one == 1.0
    # without rounds (an estimate): the ratio of the medians
    assert latency_ratios([_report(1.5), _report(3.0)], 1)[0] == pytest.approx((0.5, 0.5, 0.5))


def _row(key: str, role: str, miou: float, ratio: float) -> dict:
    return {"arch_key": key, "role": role, "full_miou_fp32": miou, "latency_vs_baseline": ratio}


def test_a_searched_model_beats_the_baseline_faster_or_more_accurate_never_by_noise() -> None:
    rows = [
        _row("base", "baseline", 0.690, 1.0),
        _row("faster", "front", 0.686, 0.85),  # 0.004 below the mean at 0.85x: wins
        _row("too_slow", "front", 0.689, 0.86),  # not fast enough
        _row("too_weak", "front", 0.680, 0.50),  # 0.010 below: loses
        _row("better", "front", 0.701, 1.0),  # +0.011 at the same latency: wins
        _row("slower", "front", 0.750, 1.01),  # more accurate but slower: not a win
    ]
    stats = baseline_stats(rows, [{"seed": 1, "miou": 0.691}, {"seed": 2, "miou": 0.689}], "miou")
    assert stats["mean"] == pytest.approx(0.690) and stats["n"] == 3 and stats["std"] == pytest.approx(0.001)
    winners = {r["arch_key"] for r in verdicts(rows, stats, "miou")}
    assert winners == {"faster", "better"}
    assert rows[0].get("beats_baseline") is None  # the baseline is not judged against itself
    assert rows[3]["miou_vs_baseline"] == pytest.approx(-0.010)


def test_profile_many_interleaves_every_model_in_each_round(tmp_path) -> None:
    torch.manual_seed(0)
    small = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1)).eval()
    big = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)).eval()
    prof = OnnxRuntimeProfiler(repeats=6, warmup=1, workdir=tmp_path)
    reports = prof.profile_many([(small, None, None), (big, None, None)], (1, 3, 32, 32), rounds=4)
    assert [len(r.extra["rounds_ms"]) for r in reports] == [4, 4]
    assert all(r.extra["interleaved"] == 2 and r.n_samples == 4 * 5 for r in reports)
    (q, _, _), _ = latency_ratios(reports, 1)
    assert q < 1.0 and not math.isnan(q)  # the small net is faster, in every honest pass

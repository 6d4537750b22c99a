"""The promotion rule of search.fidelity, the zero-cost scores and bench-proxy's within-bin tau."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.evaluators.rungs import parse_rungs
from hwnas.evaluators.zero_cost import NAMES, SCORES, zero_cost
from hwnas.search.fidelity import RUNG_METRIC, Fidelity, rung_metric
from hwnas.search.objectives import Objective
from hwnas.utils.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from proxy_stats import latency_bins, paired_diff_ci, tau_overall, tau_within  # noqa: E402

ACC, LAT = Objective("val/miou", "maximize"), Objective("hw/latency_ms", "minimize")


def fidelity(eta: int = 2) -> Fidelity:
    return Fidelity(tuple(parse_rungs([{"max_epochs": 1, "limit_train_batches": 2}])), eta, ACC, (LAT,))


def m(acc: float, lat: float, rung: int = 0) -> dict:
    return {rung_metric(0): acc, "hw/latency_ms": lat, RUNG_METRIC: rung}


def test_only_non_dominated_candidates_within_the_share_are_promoted() -> None:
    f = fidelity(eta=2)
    assert f._promotes(m(0.5, 1.0), [], 0), "the first arrival is on its own front, and 1 <= ceil(1/2)"
    peers = [m(0.5, 1.0, rung=1)]
    assert not f._promotes(m(0.6, 0.5), peers, 0), "ceil(2/2) = 1 promotion already taken"
    peers = [m(0.5, 1.0, rung=1), m(0.4, 2.0)]
    assert f._promotes(m(0.6, 0.5), peers, 0), "non-dominated, and 2 <= ceil(3/2)"
    assert not f._promotes(m(0.3, 1.5), peers, 0), "dominated by (0.5, 1.0)"


def test_promotions_stay_within_ceil_n_over_eta() -> None:
    f, rng, peers = fidelity(eta=3), np.random.default_rng(0), []
    for _ in range(60):
        me = m(float(rng.random()), float(rng.random()))
        if f._promotes(me, peers, 0):
            me[RUNG_METRIC] = 1
        peers.append(me)
    promoted = sum(p[RUNG_METRIC] for p in peers)
    assert 1 <= promoted <= math.ceil(60 / 3)


def test_an_evaluator_that_trains_nothing_runs_without_promotion_and_objectives_are_checked(caplog) -> None:
    class Table:  # a look-up (or a supernet's inherited weights): nothing to train on
        cheap_metrics = ("hw/latency_ms",)
        promotable = False

    node = {"rungs": [{"max_epochs": 1}]}
    with caplog.at_level("INFO", logger="hwnas.search"):
        assert Fidelity.from_cfg(node, objectives=[ACC, LAT], evaluator=Table()) is None
    assert "search.fidelity: off" in caplog.text  # the default schedule is off, and the log says so

    class Trainer(Table):
        promotable = True

        def promote(self, spec, rung):  # noqa: ANN001, ANN201
            return {}

    assert Fidelity.from_cfg(None, objectives=[ACC, LAT], evaluator=Trainer()) is None
    assert Fidelity.from_cfg(node, objectives=[ACC, LAT], evaluator=Trainer()) is not None
    with pytest.raises(ConfigError) as err:
        Fidelity.from_cfg(node, objectives=[LAT], evaluator=Trainer())
    assert "maximised objective" in str(err.value) and err.value.key == "search.fidelity"


class Tiny(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, 3, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def test_every_zero_cost_score_is_finite_and_deterministic() -> None:
    torch.manual_seed(0)
    batch = (torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16)))
    model = Tiny(8)
    for name in SCORES:
        a, b = zero_cost(name, model, batch), zero_cost(name, model, batch)
        assert math.isfinite(a), name
        assert a == pytest.approx(b), f"{name} is not deterministic"
    assert zero_cost("synflow", Tiny(16), batch) > zero_cost("synflow", Tiny(4), batch)  # wider: more paths
    assert set(NAMES) >= {"synflow", "naswot", "params", "flops"}
    with pytest.raises(ConfigError):
        zero_cost("zen", model, batch)


def test_within_bin_tau_ignores_what_the_latency_axis_explains() -> None:
    lat = np.arange(8, dtype=float)
    final = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]) + np.array(
        [0, 0.05, 0, 0.05, 0, 0.05, 0, 0.05]
    )
    size = lat.copy()  # a size score: ranks overall because it is the latency axis
    bins = latency_bins(lat, 4)
    assert list(bins) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert tau_overall(size, final, bins) == pytest.approx(1.0)
    flipped = np.array([1, 0, 3, 2, 5, 4, 7, 6], float)  # follows latency, but wrong inside every bin
    assert tau_overall(flipped, final, bins) > 0.5
    assert tau_within(flipped, final, bins) == pytest.approx(-1.0)
    d, lo, hi = paired_diff_ci(tau_within, size, size, final, bins, n=200)
    assert d == 0 and lo == 0 and hi == 0

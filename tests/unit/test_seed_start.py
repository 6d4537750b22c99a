"""The seed start: a seed's one-parameter moves first, then trades that meet a latency target."""

from __future__ import annotations

import math

import optuna
import pytest

from hwnas.search.samplers import SurrogateParetoSampler, UniqueChildNSGAIISampler
from hwnas.search.samplers.seed_start import MOVE_ATTR, SeedStart, as_seed_start
from hwnas.search.trial_attrs import SEEDED_ATTR
from hwnas.utils.errors import ConfigError

CHOICES = {"width": [8, 16, 24, 32], "depth": [1, 2, 3], "expand": [1.0, 1.5, 2.0], "skip": [0, 1]}
SEED = {"width": 16, "depth": 2, "expand": 1.5, "skip": 1}


def latency(p: dict) -> float:
    # Coupled, as the hourglass's relative widths: a narrower expansion saves more on a wider stem.
    return p["width"] * p["expand"] ** 2 * (1 + 0.3 * p["depth"]) * (1 + 0.1 * p["skip"])


def accuracy(p: dict) -> float:
    # Width is what buys accuracy; expansion and depth cost a little when cut; skip is free.
    return 0.5 + 0.01 * p["width"] / 8 + 0.002 * p["expand"] + 0.001 * p["depth"]


def objective(trial: optuna.Trial) -> tuple[float, float]:
    p = {n: trial.suggest_categorical(n, c) for n, c in CHOICES.items()}
    return accuracy(p), latency(p)


def run(sampler: optuna.samplers.BaseSampler, n: int) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.enqueue_trial(SEED, user_attrs={SEEDED_ATTR: "baseline"})
    study.optimize(objective, n_trials=n)
    return study


def n_changed(params: dict) -> int:
    return sum(params[k] != v for k, v in SEED.items())


N_MOVES = sum(len(c) - 1 for c in CHOICES.values())  # 3 + 2 + 2 + 1


@pytest.mark.parametrize("probe", [True, False])
def test_moves_first_then_trades_that_meet_their_latency_target(probe: bool) -> None:
    start = SeedStart(trades=4, fast_target=0.85)
    if probe:
        start.bind_probe(latency, 1)
    study = run(UniqueChildNSGAIISampler(population_size=4, seed=0, seed_start=start), 1 + N_MOVES + 4)
    trials = study.trials
    assert trials[0].user_attrs[SEEDED_ATTR] == "baseline"
    moves = trials[1 : 1 + N_MOVES]
    assert all(n_changed(t.params) == 1 for t in moves)
    assert len({tuple(sorted(t.params.items())) for t in moves}) == N_MOVES  # every move, once
    assert all(t.user_attrs[MOVE_ATTR].startswith("move: ") for t in moves)
    trades = trials[1 + N_MOVES :]
    assert [t.user_attrs[MOVE_ATTR].split(":")[0] for t in trades] == ["trade"] * 4
    seed_lat, seed_acc = latency(SEED), accuracy(SEED)
    ratios = [latency(t.params) / seed_lat for t in trades]
    assert all(n_changed(t.params) >= 2 for t in trades)
    assert all(r <= 1.0 + 1e-9 for r in ratios[:2]) and all(r <= 0.85 + 1e-9 for r in ratios[2:])
    # The first trade buys accuracy with width and pays for it by cutting expansion: better at <= latency.
    assert trades[0].params["width"] > SEED["width"]
    assert accuracy(trades[0].params) > seed_acc
    # Every trial after the seed belongs to an NSGA-II generation (so it can be a parent).
    key = UniqueChildNSGAIISampler(population_size=4)._get_generation_key()
    assert all(key in t.system_attrs for t in trials)


def test_without_seeds_the_sampler_starts_as_before() -> None:
    a = optuna.create_study(directions=["maximize", "minimize"], sampler=UniqueChildNSGAIISampler(seed=3))
    b = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=UniqueChildNSGAIISampler(seed=3, seed_start={"trades": 2}),
    )
    a.optimize(objective, n_trials=12)
    b.optimize(objective, n_trials=12)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_a_genome_sampler_takes_the_seed_start_and_then_its_own_algorithm() -> None:
    study = run(SurrogateParetoSampler(seed=0, n_startup_trials=2, seed_start={"trades": 2}), 1 + N_MOVES + 4)
    kinds = [t.user_attrs.get(MOVE_ATTR, "").split(":")[0] for t in study.trials[1:]]
    assert kinds == ["move"] * N_MOVES + ["trade"] * 2 + ["", ""]


def test_failed_moves_do_not_stall_the_plan() -> None:
    start = SeedStart(trades=2)

    def flaky(trial: optuna.Trial) -> tuple[float, float]:
        acc, lat = objective(trial)
        if trial.params["skip"] == 0:
            raise RuntimeError("this move fails")
        return acc, lat

    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=UniqueChildNSGAIISampler(seed=0, seed_start=start)
    )
    study.enqueue_trial(SEED, user_attrs={SEEDED_ATTR: "baseline"})
    study.optimize(flaky, n_trials=1 + N_MOVES + 2, catch=(RuntimeError,))
    assert [t.user_attrs.get(MOVE_ATTR, "")[:5] for t in study.trials[-2:]] == ["trade", "trade"]
    assert not math.isnan(study.trials[-1].values[0])


def test_bad_settings_name_the_key() -> None:
    assert as_seed_start(None) is None and as_seed_start(False) is None
    with pytest.raises(ConfigError, match="search.sampler.seed_start"):
        as_seed_start({"tradez": 3})

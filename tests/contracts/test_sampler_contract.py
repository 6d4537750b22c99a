"""Contract every search strategy (``conf/search/*.yaml``'s ``sampler:``) must honour.

Run in a plain Optuna ask/tell loop on a toy 2-objective categorical problem (1,024 cells), with the
search loop's rule that a repeated architecture is told its cached values.
"""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import numpy as np
import optuna
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hwnas.pareto import pareto_mask

ROOT = Path(__file__).resolve().parents[2]
OURS = ["evolution_pareto", "regularized_evolution", "local_search", "surrogate_pareto"]
OPTUNA = ["nsga3", "motpe", "gp"]
CHOICES = {
    "a": ["none", "skip", "conv1", "conv3", "pool"],
    "b": [1, 2, 3, 4, 5],
    "c": ["none", "skip", "conv1", "conv3", "pool"],
    "d": [0.5, 1.0, 1.5, 2.0, 2.5],
    "e": ["v", "w", "x", "y", "z"],
    "f": [True, False, None, "t", 7],
}
W_ACC = np.array([3.0, 1.0, 2.5, 0.5, 1.5, 2.0])
W_LAT = np.array([1.0, 2.0, 0.7, 1.2, 0.4, 1.5])
DIRECTIONS = ["maximize", "minimize"]

optuna.logging.set_verbosity(optuna.logging.ERROR)


def toy(idx: np.ndarray) -> np.ndarray:
    """Accuracy saturates in each parameter, latency grows super-linearly: a real trade-off.

    ``idx`` is ``(..., 6)`` choice indices; returns ``(..., 2)`` (accuracy, latency).
    """
    acc = np.sqrt(idx) @ W_ACC + (idx[..., 0] == idx[..., 2]) * 1.5
    lat = idx**1.5 @ W_LAT * 0.5 + 1.0
    return np.stack([acc, lat], axis=-1)


def _true_front() -> np.ndarray:
    grid = np.array(list(itertools.product(range(5), repeat=len(CHOICES))), dtype=float)
    vals = toy(grid)
    return vals[pareto_mask(vals, DIRECTIONS)]


TRUE_FRONT = _true_front()
SPAN = TRUE_FRONT.max(axis=0) - TRUE_FRONT.min(axis=0)


def gap_to_true_front(values: np.ndarray) -> np.ndarray:
    """How far (normalised additive epsilon) each point is from the true front; 0 = on it."""
    v = values * np.array([-1.0, 1.0]) / SPAN
    f = TRUE_FRONT * np.array([-1.0, 1.0]) / SPAN
    return np.clip((v[:, None, :] - f[None, :, :]).max(axis=2).min(axis=1), 0.0, None)


def make_sampler(name: str, seed: int = 0) -> optuna.samplers.BaseSampler:
    cfg = OmegaConf.create(
        {"seed": seed, "search": OmegaConf.load(ROOT / "conf" / "search" / f"{name}.yaml")}
    )
    return instantiate(cfg.search.sampler)


def run(sampler, n_unique: int = 40, *, fail_every: int = 0, max_latency: float | None = None):
    """Ask/tell loop; returns (study, list of (params, values) of unique completed cells in order)."""
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    cache: dict[tuple, tuple[float, float]] = {}
    order: list[tuple[dict, tuple[float, float]]] = []
    asks = 0
    while len(cache) < n_unique and asks < 4 * n_unique:
        asks += 1
        trial = study.ask()
        params = {n: trial.suggest_categorical(n, c) for n, c in CHOICES.items()}
        key = tuple(params[n] for n in CHOICES)
        if fail_every and asks % fail_every == 0 and key not in cache:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        idx = np.array([CHOICES[n].index(params[n]) for n in CHOICES], dtype=float)
        values = cache.get(key) or tuple(float(v) for v in toy(idx))
        if max_latency is not None:
            trial.set_constraint("latency", values[1] - max_latency)
        if key in cache:
            trial.set_user_attr("duplicate", True)
        else:
            cache[key] = values
            order.append((params, values))
        study.tell(trial, list(values))
    return study, order


def available(name: str) -> bool:
    return name != "gp" or importlib.util.find_spec("scipy") is not None


@pytest.mark.parametrize("name", OURS + OPTUNA)
def test_config_instantiates_a_sampler(name: str) -> None:
    assert isinstance(make_sampler(name), optuna.samplers.BaseSampler)
    first = OmegaConf.load(ROOT / "conf" / "search" / f"{name}.yaml")
    assert first.n_trials > 0
    assert (ROOT / "conf" / "search" / f"{name}.yaml").read_text().startswith("# ")


@pytest.mark.parametrize("name", OURS + OPTUNA)
def test_valid_choices_and_deterministic(name: str) -> None:
    if not available(name):
        pytest.skip("GPSampler needs scipy to sample (pip install scipy); not installed here")
    study, order = run(make_sampler(name, seed=3), n_unique=25)
    for t in study.trials:
        assert set(t.params) == set(CHOICES)
        assert all(t.params[n] in CHOICES[n] for n in CHOICES)
    _, again = run(make_sampler(name, seed=3), n_unique=25)
    assert [p for p, _ in order] == [p for p, _ in again]


@pytest.mark.parametrize("name", OURS)
def test_fail_trials_do_not_break_the_search(name: str) -> None:
    study, order = run(make_sampler(name), n_unique=30, fail_every=4)
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.FAIL in states and len(order) == 30


@pytest.mark.parametrize("name", OURS)
def test_rarely_repeats_an_architecture(name: str) -> None:
    study, order = run(make_sampler(name), n_unique=40)
    assert len(study.trials) <= 42, f"{len(study.trials) - 40} repeats"


@pytest.mark.parametrize("name", OURS)
def test_constraints_steer_towards_feasible_cells(name: str) -> None:
    max_latency = 8.0
    _, order = run(make_sampler(name), n_unique=60, max_latency=max_latency)
    feasible = np.array([v[1] <= max_latency for _, v in order])
    # After the random start, the sampler should propose feasible cells more often than chance does.
    assert feasible[30:].mean() > feasible[:10].mean()


@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("seed", [0, 1])
def test_improves_over_its_random_start(name: str, seed: int) -> None:
    _, order = run(make_sampler(name, seed=seed), n_unique=80)
    gaps = gap_to_true_front(np.array([v for _, v in order]))
    # Proposals made once the algorithm runs lie closer to the true front than the random start
    # (random search scores a ratio of about 1 here: 1.04 and 0.96 for these seeds).
    assert gaps[60:].mean() < 0.8 * gaps[:10].mean()

"""Per-trial reads that do not grow with the study: the waiting-trial query of the journal and in-memory
storages, and NSGA-II's generation bookkeeping, give exactly Optuna's answers from the study's tail."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.samplers._ga._base import BaseGASampler
from optuna.trial import TrialState

from hwnas.search.samplers.nsga2 import UniqueChildNSGAIISampler
from hwnas.search.storage.study import make_storage


@pytest.mark.parametrize("kind", ["journal", "memory"])
def test_waiting_trials_come_from_the_tail_in_optunas_order(kind: str, tmp_path: Path) -> None:
    storage = make_storage(f"journal:{tmp_path / 'j.log'}" if kind == "journal" else "memory")
    parent = optuna.storages.JournalStorage if kind == "journal" else optuna.storages.InMemoryStorage
    study = optuna.create_study(storage=storage)
    popped = []
    for step in range(30):
        if step % 4 == 0:
            study.enqueue_trial({"x": float(step)})
        if step % 7 == 0:
            study.enqueue_trial({"x": -float(step)})
        waiting = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
        full = parent.get_all_trials(storage, study._study_id, deepcopy=False, states=(TrialState.WAITING,))
        assert [t.number for t in waiting] == [t.number for t in full]
        trial = study.ask()
        popped.append(trial.number)
        study.tell(trial, trial.suggest_float("x", -100, 100))
    assert popped == sorted(popped) and len(set(popped)) == 30  # every waiting trial popped once, in order


def test_nsga2_generations_and_populations_match_optunas_walk(tmp_path: Path) -> None:
    sampler = UniqueChildNSGAIISampler(population_size=5, seed=0)
    storage = make_storage(f"journal:{tmp_path / 'j.log'}")
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler, storage=storage)
    for i in range(60):
        trial = study.ask()
        x, y = (
            trial.suggest_categorical("x", list(range(21))),
            trial.suggest_categorical("y", list(range(21))),
        )
        if i % 9 == 4:
            study.tell(trial, state=TrialState.FAIL)  # failed trials count in no generation
        else:
            study.tell(trial, [x + y, (x - 10) ** 2 - y])
    frozen = study.get_trials(deepcopy=False)
    generations = {t.system_attrs.get(sampler._get_generation_key()) for t in frozen}
    assert max(g for g in generations if g is not None) >= 5
    for g in range(6):
        ours = sampler.get_population(study, g)
        theirs = BaseGASampler.get_population(sampler, study, g)
        assert [t.number for t in ours] == [t.number for t in theirs]
        assert [t.number for t in sampler.get_parent_population(study, g)] == [
            t.number for t in BaseGASampler.get_parent_population(sampler, study, g)
        ]
    probe = study.ask()  # a new trial's generation, by the same rule as Optuna's walk
    fresh = study._storage.get_trial(probe._trial_id)
    assert sampler.infer_relative_search_space(
        study, fresh
    ) == optuna.samplers.NSGAIISampler.infer_relative_search_space(sampler, study, fresh)
    assert sampler.get_trial_generation(study, fresh) == BaseGASampler.get_trial_generation(
        sampler, study, study._storage.get_trial(probe._trial_id)
    )


def test_nsga2_redraws_store_a_trials_generation_once(tmp_path: Path) -> None:
    """A redrawn child re-enters Optuna's sample_relative with the same trial snapshot; its generation is
    still written once per trial (each extra write was a journal record: 20 redraws, 20 records)."""
    sampler = UniqueChildNSGAIISampler(population_size=4, seed=0, max_redraws=20)
    storage = make_storage(f"journal:{tmp_path / 'j.log'}")
    writes: list[int] = []
    real = storage.set_trial_system_attr

    def counting(trial_id: int, key: str, value: object) -> None:
        if key == sampler._get_generation_key():
            writes.append(trial_id)
        real(trial_id, key, value)

    storage.set_trial_system_attr = counting  # type: ignore[method-assign]
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler, storage=storage)
    for _ in range(40):  # 16 architectures: most children late in the run are redrawn
        trial = study.ask()
        x, y = trial.suggest_categorical("x", [0, 1, 2, 3]), trial.suggest_categorical("y", [0, 1, 2, 3])
        study.tell(trial, [x + y, x - y])
    assert len(writes) == len(set(writes)) == 40


def test_nsga2_children_avoid_what_another_worker_is_evaluating(tmp_path: Path) -> None:
    """Two workers on one storage: a child equal to the other worker's running trial would only wait for
    its result (the search reuses it), so the sampler redraws it as it does a finished architecture."""
    storage = make_storage(f"journal:{tmp_path / 'j.log'}")
    workers = []
    for seed in (0, 1000):
        sampler = UniqueChildNSGAIISampler(population_size=4, seed=seed, mutation_prob=0.1)
        workers.append(
            optuna.create_study(
                study_name="s",
                directions=["minimize", "minimize"],
                sampler=sampler,
                storage=storage,
                load_if_exists=True,
            )  # fmt: skip
        )

    def ask(study: optuna.Study) -> tuple[optuna.Trial, tuple[int, ...]]:
        trial = study.ask()
        return trial, tuple(trial.suggest_categorical(n, [0, 1, 2, 3]) for n in "abc")

    collisions = 0
    for round_ in range(15):  # 30 of the 64 architectures: redraws still find new ones
        (ta, a), (tb, b) = ask(workers[0]), ask(workers[1])  # a is running while b is drawn
        collisions += round_ >= 4 and a == b  # after the random first generation
        for study, trial, p in ((workers[0], ta, a), (workers[1], tb, b)):
            study.tell(trial, [sum(p), p[0] - p[2]])
    assert collisions == 0

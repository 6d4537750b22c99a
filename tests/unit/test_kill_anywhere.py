"""Kill anywhere: a search killed between *any* two storage writes of a trial, then resumed the way
``search.run`` resumes (trials left RUNNING are failed as stale and re-queued), ends with exactly the
budget of unique architectures and never counts one architecture's evaluation twice."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pytest

from hwnas.evaluators.base import Evaluator
from hwnas.search.loop import read_state, run_loop
from hwnas.search.objectives import Objective
from hwnas.search.resume import recover_stale_trials
from hwnas.search.storage.study import open_study
from hwnas.search.trial_attrs import is_evaluated
from hwnas.search_space.base import ArchSpec, SearchSpace

WRITES = ("create_new_trial", "set_trial_param", "set_trial_state_values", "set_trial_user_attr",
          "set_trial_system_attr", "set_trial_intermediate_value")  # fmt: skip
BUDGET = 3
OBJECTIVES = [Objective("acc", "maximize"), Objective("lat", "minimize")]


class Killed(BaseException):
    """A SIGKILL stand-in: not an Exception, so no ``except Exception`` in the loop can absorb it."""


class KillingStorage:
    """Delegates to a real storage; the ``kill_at``-th write happens, then the 'process' dies."""

    def __init__(self, inner: Any, kill_at: int) -> None:
        self._inner, self._kill_at, self.writes = inner, kill_at, 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            self.writes += 1
            if self.writes == self._kill_at:
                raise Killed(f"killed after write {self.writes} ({name})")
            return out

        return write


class Toy(SearchSpace):
    name = "toy"

    def choices(self) -> dict[str, list[Any]]:
        return {"a": list(range(5)), "b": list(range(5))}

    def build(self, spec: ArchSpec, *, num_classes: int, in_channels: int = 3) -> Any:
        raise NotImplementedError


class ToyEvaluator(Evaluator):
    cheap_metrics = ("lat",)
    expensive_metrics = ("acc",)

    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        return {"lat": float(spec["a"] + spec["b"])}

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        return {"acc": float(spec["a"] * 3 - spec["b"])}


def _study(url: str) -> optuna.Study:
    return open_study(url=url, study_name="kill", directions=[o.direction for o in OBJECTIVES],
                      sampler=optuna.samplers.RandomSampler(seed=1))  # fmt: skip


def _search(study: optuna.Study) -> None:
    run_loop(study, space=Toy(), evaluator=ToyEvaluator(), objectives=OBJECTIVES, constraints=[],
             n_trials=BUDGET, max_attempts=200)  # fmt: skip


def _url(kind: str, path: Path) -> str:
    """SQLite (the CLI default) or the journal file (``hwnas.search.storage.journal``: fsync at trial ends)."""
    return f"sqlite:///{path}.db" if kind == "sqlite" else f"journal:{path}.journal"


def _writes_of_a_clean_run(kind: str, tmp_path: Path) -> int:
    study = _study(_url(kind, tmp_path / "clean"))
    counter = KillingStorage(study._storage, kill_at=-1)
    study._storage = counter
    _search(study)
    return counter.writes


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_kill_between_any_two_writes_keeps_the_budget_exact(kind: str, tmp_path: Path) -> None:
    total = _writes_of_a_clean_run(kind, tmp_path)
    assert total > 4 * BUDGET  # several writes per trial: create, params, attributes, state
    for k in range(1, total + 1):
        url = _url(kind, tmp_path / f"k{k}")
        study = _study(url)
        study._storage = KillingStorage(study._storage, kill_at=k)
        with pytest.raises(Killed):
            _search(study)
        resumed = _study(url)  # a new process: fresh objects on the same file
        recover_stale_trials(resumed, single_worker=True)
        _search(resumed)
        trials = resumed.get_trials(deepcopy=False)
        # the toy evaluator never fails: the budget is exactly BUDGET completed evaluations, one per key
        completed = Counter(
            t.user_attrs["arch_key"]
            for t in trials
            if t.state == optuna.trial.TrialState.COMPLETE and not t.user_attrs.get("duplicate")
        )
        assert len(completed) == BUDGET and max(completed.values()) == 1, f"kill after write {k}: {completed}"
        assert (
            read_state(resumed).unique
            == BUDGET
            == sum(is_evaluated(t) for t in trials if not t.user_attrs.get("duplicate"))
        )
        assert not resumed.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))

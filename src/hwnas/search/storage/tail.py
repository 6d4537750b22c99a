"""Journal and in-memory storages whose "which trials are waiting?" question costs O(new trials).

``Study.ask()`` first asks the storage for every WAITING trial of the study, and Optuna's journal and
in-memory storages answer by walking the whole study: at 10,000 trials that walk was a third of a table
search's per-trial cost. A trial is WAITING only from its creation (``enqueue_trial``) until it is popped;
once it has any other state it never waits again. So each storage here keeps, per study, the number below
which no trial waits and walks only from there, looking trials up by number (O(1) in both storages).
Every other query is the parent's.
"""

from __future__ import annotations

from collections.abc import Container

import optuna
from optuna.trial import FrozenTrial, TrialState


class _WaitingFromTail:
    """The mixin: ``get_all_trials(states=(WAITING,))`` from the lowest trial that may still wait."""

    _waiting_low: dict[int, int]

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is None or tuple(states) != (TrialState.WAITING,):  # type: ignore[arg-type]
            return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)  # type: ignore[misc]
        lows = self.__dict__.setdefault("_waiting_low", {})
        number, low, out = lows.get(study_id, 0), None, []
        while True:
            try:
                trial_id = self.get_trial_id_from_study_id_trial_number(study_id, number)  # type: ignore[attr-defined]
            except KeyError:
                break
            trial = self.get_trial(trial_id)  # type: ignore[attr-defined]
            if trial.state == TrialState.WAITING:
                out.append(trial)
                low = number if low is None else low
            number += 1
        lows[study_id] = number if low is None else low
        return out


class TailJournalStorage(_WaitingFromTail, optuna.storages.JournalStorage):
    """:class:`optuna.storages.JournalStorage` with an O(new trials) waiting-trial query."""


class TailInMemoryStorage(_WaitingFromTail, optuna.storages.InMemoryStorage):
    """:class:`optuna.storages.InMemoryStorage` with an O(new trials) waiting-trial query."""

"""What the search loop needs to know about the study, kept in memory and refreshed incrementally.

The loop asks three questions before and during every trial: which architectures are evaluated (the
budget, deduplication), which are being evaluated right now (by this or another worker), and how many
budget slots are committed. Answering them by scanning every trial costs O(study size) per trial. A
:class:`StudyView` instead absorbs each finished trial once, in trial-number order (finished trials are
immutable in Optuna), and re-reads only the *tail*: the trials from the oldest unfinished one on. So the
per-trial cost stays flat as the study grows to thousands of trials, and several workers still agree,
because every answer comes from storage as of the last :meth:`StudyView.refresh`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import optuna
from optuna.storages import InMemoryStorage, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from hwnas.search.trial_attrs import DUPLICATE_ATTR, KEY_ATTR, is_evaluated


@dataclass
class LoopState:
    """What the study holds: the first evaluated trial per architecture key, and keys in flight."""

    done: dict[str, FrozenTrial] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)

    @property
    def unique(self) -> int:
        return len(self.done)


def read_from(study: optuna.Study, low: int) -> list[FrozenTrial]:
    """Trials numbered ``low`` and up. Journal and in-memory storages look trials up by number in O(1),
    so only the tail is read; an RDB storage is read whole (its own cache keeps finished trials)."""
    storage = study._storage
    if not isinstance(storage, JournalStorage | InMemoryStorage):
        return study.get_trials(deepcopy=False)[low:]
    out, number = [], low
    while True:
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        except KeyError:
            return out
        out.append(storage.get_trial(trial_id))
        number += 1


class StudyView:
    """An incrementally refreshed view of ``study`` (see the module docstring)."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._done: dict[str, FrozenTrial] = {}  # absorbed: finished trials below ``_low``
        self._low = 0
        self._tail: list[FrozenTrial] = []

    def refresh(self) -> StudyView:
        """Read the trials from the oldest unfinished one on; absorb the newly finished prefix."""
        tail = self._read_from(self._low)
        i = 0
        while i < len(tail) and tail[i].state.is_finished():
            t = tail[i]
            key = t.user_attrs.get(KEY_ATTR)
            if key is not None and not t.user_attrs.get(DUPLICATE_ATTR) and is_evaluated(t):
                self._done.setdefault(key, t)
            i += 1
        self._low += i
        self._tail = tail[i:]
        return self

    def evaluated(self) -> list[FrozenTrial]:
        """The finished evaluations (no duplicates, no stale trials), as of the last refresh."""
        tail = [
            t
            for t in self._tail
            if t.state.is_finished() and not t.user_attrs.get(DUPLICATE_ATTR) and is_evaluated(t)
        ]
        return [*self._done.values(), *tail]

    def _read_from(self, low: int) -> list[FrozenTrial]:
        return read_from(self.study, low)

    def state(self, *, exclude: int | None = None) -> LoopState:
        """Evaluated architectures (first non-duplicate evaluated trial per key) and in-flight keys."""
        state = LoopState(done=dict(self._done))
        for t in self._tail:
            key = t.user_attrs.get(KEY_ATTR)
            if key is None or t.user_attrs.get(DUPLICATE_ATTR) or t.number == exclude:
                continue
            if is_evaluated(t):
                state.done.setdefault(key, t)
            elif t.state == TrialState.RUNNING:
                state.running.setdefault(key, t.number)
        if exclude is not None and exclude < self._low:  # an absorbed trial asked to be left out
            state.done = {k: t for k, t in state.done.items() if t.number != exclude}
        return state

    def lookup(self, key: str, *, exclude: int | None = None) -> tuple[FrozenTrial | None, int | None]:
        """``(the evaluated trial of key, or None; the number of a RUNNING trial of key, or None)``, reading
        only the absorbed index and the tail (the per-trial question of the loop, O(tail))."""
        done = self._done.get(key)
        if done is not None and done.number != exclude:
            return done, None
        running = None
        for t in self._tail:
            if t.user_attrs.get(KEY_ATTR) != key or t.user_attrs.get(DUPLICATE_ATTR) or t.number == exclude:
                continue
            if is_evaluated(t):
                return t, None
            if t.state == TrialState.RUNNING and running is None:
                running = t.number
        return None, running

    def keyless_before(self, number: int) -> bool:
        """Whether a RUNNING trial numbered below ``number`` has not yet said which architecture it holds.

        Such a trial was asked first and may be about to take the same architecture: the loop waits for its
        key before deciding to evaluate, so of two twins the lower-numbered one always evaluates and the
        other waits for its result, whichever wrote its key first."""
        return any(
            t.number < number and t.state == TrialState.RUNNING and t.user_attrs.get(KEY_ATTR) is None
            for t in self._tail
        )

    def committed(self, *, before: int | None = None) -> tuple[int, int]:
        """``(unique evaluated, in flight)``: in flight counts RUNNING trials (numbered below ``before``)
        that may still add a new architecture, so several workers never together exceed the budget."""
        new_done: set[str] = set()
        running: set[str] = set()
        keyless = 0
        for t in self._tail:
            if t.user_attrs.get(DUPLICATE_ATTR):
                continue
            key = t.user_attrs.get(KEY_ATTR)
            if t.state.is_finished():
                if key is not None and key not in self._done and is_evaluated(t):
                    new_done.add(key)
            elif t.state == TrialState.RUNNING and (before is None or t.number < before):
                if key is None:
                    keyless += 1
                else:
                    running.add(key)
        in_flight = len({k for k in running if k not in self._done and k not in new_done}) + keyless
        return len(self._done) + len(new_done), in_flight

"""The search's live view: budget used, failures, the front and its hypervolume, time left.

On a terminal it is one ``tqdm`` bar on stderr, kept below the per-trial log lines (console logging is
routed through ``tqdm.write`` while it shows)::

    search  62%|██████▎   | 10/16 [01:02<00:37, 6.2s/arch, failed 0 · infeasible 1 · front 5 · HV 0.0132]

In a log file, CI or a Slurm job (stderr not a terminal) the same figures become a plain log line at most
every ``log_every_s`` seconds, and once at the end::

    progress: 10/16 unique (62%), 0 failed, 1 infeasible, front 5, HV 0.0132; 1m02s elapsed, ~37s left

``HWNAS_PROGRESS=1`` forces the bar, ``0`` the lines (as for the final stage's bar). The view is fed by the
loop's per-trial callback and keeps its own counts and front in memory (no study reads); the hypervolume
(:class:`~hwnas.reporting.front_tracker.FrontTracker`, reference: the nadir of the feasible points seen,
pushed out by 10 % of their range) is recomputed at most every ``refresh_s`` seconds. The unique count is
the study's when the loop passes it (``info["unique"]``: other workers' trials included); failures,
infeasible candidates and the front are this process's trials, plus, after :meth:`SearchProgress.seed`, those
the study held when a resumed run started (so a resumed run's front and hypervolume are the whole run's).
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from hwnas.callbacks.progress import bar_wanted
from hwnas.reporting.front_tracker import FrontTracker
from hwnas.search.objectives import Objective
from hwnas.search.trial_attrs import DUPLICATE_ATTR, is_evaluated, trial_attrs

log = logging.getLogger("hwnas.search")
OnTrial = Callable[[FrozenTrial, dict[str, Any]], None]
_NEW = ("ok", "infeasible", "fail")  # statuses of a newly evaluated architecture (it uses budget)


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for a status line."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _width(stream: TextIO) -> dict[str, Any]:
    """Follow the terminal's width; a fixed one where it reports none (a pty without a size, a file)."""
    try:
        if os.get_terminal_size(stream.fileno()).columns > 0:
            return {"dynamic_ncols": True}
    except (AttributeError, OSError, ValueError):
        pass
    return {"ncols": 120, "nrows": 50}  # a zero-size pty would hide the bar (tqdm skips rows past nrows)


class SearchProgress:
    """A live view of a search, fed one finished trial at a time (an ``on_trial`` callback).

    Args:
        objectives: The search objectives (the front and hypervolume are over them).
        total: The budget of unique architectures.
        done: Unique architectures already evaluated before this run (a resumed search).
        mode: ``"auto"`` (a bar on a terminal, else lines; ``HWNAS_PROGRESS`` decides when set), ``"bar"``,
            ``"lines"`` or ``"off"``.
        log_every_s: Least seconds between two status lines (lines mode).
        refresh_s: Least seconds between two recomputations of the front's hypervolume and the bar's text.
        stream: Where the bar is drawn (default: stderr).
    """

    def __init__(
        self,
        objectives: Sequence[Objective],
        *,
        total: int,
        done: int = 0,
        mode: str = "auto",
        log_every_s: float = 30.0,
        refresh_s: float = 0.5,
        stream: TextIO | None = None,
    ) -> None:
        if mode not in ("auto", "bar", "lines", "off"):
            raise ValueError(f"mode must be auto, bar, lines or off, got {mode!r}")
        self.mode = ("bar" if bar_wanted() else "lines") if mode == "auto" else mode
        self.total, self.start_done, self.unique = int(total), int(done), int(done)
        self.failed = self.infeasible = self.duplicates = 0
        self.front = FrontTracker([o.direction for o in objectives])
        self.log_every_s, self.refresh_s = float(log_every_s), float(refresh_s)
        self.t0 = self._last_line = time.monotonic()
        self._last_refresh = -math.inf
        self._hv: float | None = None
        self._dirty = False  # trials seen since the last status line
        self._closed = self.mode == "off"
        self._stack = ExitStack()
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            file = stream or sys.stderr
            self.bar = tqdm(total=self.total, initial=self.unique, desc="search", unit="arch", file=file,
                            mininterval=self.refresh_s, **_width(file))  # fmt: skip
            self._redirect_console_logging()

    def seed(self, study: optuna.Study) -> None:
        """Start from the study's evaluated trials (a resumed run): its front, failures and infeasible ones."""
        if self.mode == "off":
            return
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            if t.user_attrs.get(DUPLICATE_ATTR) or not is_evaluated(t):
                continue
            if t.state == TrialState.FAIL:
                self.failed += 1
            elif not trial_attrs(t).get("feasible", True):
                self.infeasible += 1
            elif t.values is not None:
                self.front.add(t.values)
        self._refresh(time.monotonic())

    def tee(self, *others: OnTrial) -> OnTrial:
        """An ``on_trial`` callback that calls ``others`` (the per-trial logger) first, then this view."""

        def both(trial: FrozenTrial, info: dict[str, Any]) -> None:
            for other in others:
                other(trial, info)
            self(trial, info)

        return both

    def __call__(self, trial: FrozenTrial, info: dict[str, Any]) -> None:
        if self.mode == "off":
            return
        status = str(info.get("status", trial.state.name.lower()))
        if "unique" in info:  # the study's count (all workers), from the loop
            self.unique = int(info["unique"])
        elif status in _NEW:
            self.unique += 1
        if status == "duplicate":
            self.duplicates += 1
        elif status == "fail":
            self.failed += 1
        elif status == "infeasible":
            self.infeasible += 1
        elif status == "ok" and trial.values is not None:
            self.front.add(trial.values)
        self._dirty = True
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_s:
            self._refresh(now)
        if self.bar is not None:
            self.bar.update(self.unique - self.bar.n)
        elif self.mode == "lines" and now - self._last_line >= self.log_every_s:
            self._emit(now)

    def status(self) -> str:
        """The view's figures after the budget counter: ``failed 0 · infeasible 1 · front 5 · HV 0.0132``."""
        hv = "n/a" if self._hv is None else f"{self._hv:.4g}"
        return f"failed {self.failed} · infeasible {self.infeasible} · front {self.front.size} · HV {hv}"

    def line(self, now: float | None = None) -> str:
        """The plain status line (lines mode): counts, front, hypervolume, elapsed and remaining time."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.t0
        pct = f" ({100 * self.unique // self.total}%)" if self.total > 0 else ""
        hv = "n/a" if self._hv is None else f"{self._hv:.4g}"
        here = self.unique - self.start_done
        left = max(0, self.total - self.unique)
        eta = (
            f"~{duration(elapsed / here * left)} left" if here > 0 and left else ("done" if not left else "?")
        )
        return (
            f"progress: {self.unique}/{self.total} unique{pct}, {self.failed} failed, {self.infeasible} "
            f"infeasible, front {self.front.size}, HV {hv}; {duration(elapsed)} elapsed, {eta}"
        )

    def close(self) -> None:
        """Draw the final figures (bar) or write the last status line (lines); restore console logging.

        Safe to call twice (the search closes it after its loop, and again on its way out after an error).
        """
        if self._closed:
            return
        self._closed = True
        now = time.monotonic()
        self._refresh(now)
        if self.bar is not None:
            self.bar.update(self.unique - self.bar.n)
            self.bar.refresh()
            self.bar.close()
            self.bar = None
        elif self.mode == "lines" and self._dirty:
            self._emit(now)
        self._stack.close()

    def _refresh(self, now: float) -> None:
        self._last_refresh = now
        self._hv = self.front.hypervolume()
        if self.bar is not None:
            self.bar.set_postfix_str(self.status(), refresh=False)

    def _emit(self, now: float) -> None:
        self._refresh(now)
        self._last_line, self._dirty = now, False
        log.info("%s", self.line(now))

    def _redirect_console_logging(self) -> None:
        """Route the root logger's console output through ``tqdm.write`` so log lines never cut the bar."""
        from tqdm.contrib.logging import logging_redirect_tqdm

        console = (sys.stdout, sys.stderr)
        if any(isinstance(h, logging.StreamHandler) and h.stream in console for h in logging.root.handlers):
            self._stack.enter_context(logging_redirect_tqdm())

"""One machine-wide rule for host latency: a timing loop runs alone.

Host latency measured while something else computes on the same machine is wrong (on this 2-core machine,
about twice the quiet figure), and a cache would keep the wrong number. Every process of the project takes

* :func:`timing` — an **exclusive** lock — around a timing loop, and
* :func:`busy` — a **shared** lock — around work that competes for the CPU (candidate training),

on the same lock file (``$HWNAS_TIMING_LOCK``, default ``/tmp/hwnas-timing.lock``: one per machine, whatever
run dir or cache a search uses). Trainings run side by side; a timing waits until none is running and
none starts while it runs. A second file is a turnstile that a waiting timer holds, so a stream of
overlapping trainings cannot starve it (writer preference). ``fcntl.flock`` locks die with their process,
so a killed worker never leaves the machine locked. No-ops where ``fcntl`` is missing (Windows).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

ENV = "HWNAS_TIMING_LOCK"
DEFAULT = "/tmp/hwnas-timing.lock"

_depth = {"timing": 0, "busy": 0}  # re-entrance within one process (a timing inside a timing)


def lock_path() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT)


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def timing() -> Iterator[float]:
    """Hold the machine exclusively for a timing loop; yields the seconds spent waiting for it."""
    if fcntl is None or _depth["timing"] or _depth["busy"]:
        yield 0.0  # nested, or inside this process's own busy section: it already owns the machine
        return
    path = lock_path()
    t0 = time.perf_counter()
    with _flock(path.with_suffix(".turnstile"), fcntl.LOCK_EX), _flock(path, fcntl.LOCK_EX):
        waited = time.perf_counter() - t0
        _depth["timing"] += 1
        try:
            yield waited
        finally:
            _depth["timing"] -= 1


@contextlib.contextmanager
def busy() -> Iterator[None]:
    """Mark CPU-heavy work (training): runs beside other busy work, never beside a timing loop."""
    if fcntl is None or _depth["busy"] or _depth["timing"]:
        yield
        return
    path = lock_path()
    with _flock(path.with_suffix(".turnstile"), fcntl.LOCK_EX):
        pass  # wait behind a timer that is queued, then let the next one through
    with _flock(path, fcntl.LOCK_SH):
        _depth["busy"] += 1
        try:
            yield
        finally:
            _depth["busy"] -= 1


@contextlib.contextmanager
def held_by_parent() -> Iterator[None]:
    """In a process whose parent holds :func:`busy` for it (a DDP rank): its own busy sections are no-ops.

    Ranks that take the lock one by one can deadlock with a queued timer: rank 0 holds the shared lock and
    waits in a collective for rank 1, which waits behind the timer, which waits for rank 0.
    """
    _depth["busy"] += 1
    try:
        yield
    finally:
        _depth["busy"] -= 1

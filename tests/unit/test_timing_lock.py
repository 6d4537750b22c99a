"""Host timing runs alone on the machine: a timing waits for trainings of other processes, trainings run
side by side, a killed holder frees the machine; noisy timings are repeated and never cached."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.cache import CachedProfiler
from hwnas.hardware.onnxruntime import OnnxRuntimeProfiler
from hwnas.utils import timing_lock
from hwnas.utils.errors import ConfigError


def _hold_busy(path: str, seconds: float, ready: mp.Event) -> None:
    os.environ[timing_lock.ENV] = path
    with timing_lock.busy():
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "timing.lock")
    monkeypatch.setenv(timing_lock.ENV, path)
    return path


def _start(lock: str, seconds: float) -> mp.Process:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_busy, args=(lock, seconds, ready))
    p.start()
    assert ready.wait(30), "the helper process never took the lock"
    return p


def test_timing_waits_for_another_process_training(lock: str) -> None:
    p = _start(lock, 1.5)
    t0 = time.perf_counter()
    with timing_lock.timing() as waited:
        assert not p.is_alive() or p.exitcode is None
    assert waited >= 0.8 and time.perf_counter() - t0 >= 0.8
    p.join()


def test_trainings_overlap_and_a_killed_holder_frees_the_machine(lock: str) -> None:
    p = _start(lock, 30.0)
    t0 = time.perf_counter()
    with timing_lock.busy():  # shared with the other training: no wait
        assert time.perf_counter() - t0 < 2.0
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    with timing_lock.timing() as waited:  # the dead process's lock died with it
        assert waited < 2.0


def _hold_timing(path: str, ready: mp.Event) -> None:
    os.environ[timing_lock.ENV] = path
    with timing_lock.timing():
        ready.set()
        time.sleep(30)


def test_a_ddp_rank_never_queues_behind_a_timer_its_own_group_blocks(lock: str) -> None:
    """A DDP group's parent holds the busy lock for all ranks; a rank's own busy section must not wait
    for the lock (rank 0 in a collective + rank 1 behind a queued timer + the timer behind rank 0 = deadlock)."""
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    timer = ctx.Process(target=_hold_timing, args=(lock, ready))
    timer.start()
    try:
        assert ready.wait(30), "the timer process never took the lock"
        t0 = time.perf_counter()
        with timing_lock.held_by_parent(), timing_lock.busy():
            assert time.perf_counter() - t0 < 1.0
    finally:
        os.kill(timer.pid, signal.SIGKILL)
        timer.join()


class _Noisy(Profiler):
    target, backend = "cpu", "fake"

    def profile(self, model, input_shape, **kw) -> LatencyReport:  # noqa: ANN001
        return LatencyReport(1.0, 0.5, 2.0, 30, "fake", "here", "fp32", "measured", extra={"noisy": True})


def test_a_noisy_figure_is_not_cached(tmp_path: Path) -> None:
    cached = CachedProfiler(_Noisy(), tmp_path / "cache")
    report = cached.profile(None, (1, 3, 8, 8), arch_key="a")
    assert report.extra["noisy"] and cached.refused == 1 and len(cached.cache) == 0
    assert cached.profile(None, (1, 3, 8, 8), arch_key="a").source == "measured"  # measured again


def test_noisy_timing_loops_are_repeated_until_quiet(lock: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prof = OnnxRuntimeProfiler(repeats=10, max_spread=0.2, retries=3, loops=1, loop_gap_s=0, agree=1.0)
    loops = iter([[1.0] * 5 + [3.0] * 5, [1.0, 1.5] * 5, [1.0] * 10])  # noisy, noisy, quiet
    monkeypatch.setattr(prof, "time_onnx", lambda path, shape: next(loops))
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 3 and samples == [1.0] * 10
    loops = iter([[1.0] * 5 + [3.0] * 5] * 2 + [[1.0, 1.8] * 5])
    prof.retries = 2
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 3 and samples == [1.0, 1.8] * 5  # still noisy: the quietest loop


def test_a_figure_is_the_quietest_of_loops_taken_apart_with_the_lock_released(
    lock: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three loops per figure by default; the lowest-median loop is reported, and between loops the
    machine-wide lock is free (another process's training or timing can run in the gap)."""
    prof = OnnxRuntimeProfiler(repeats=10, max_spread=0.3, retries=2, loop_gap_s=0.05, agree=1.0)
    assert prof.loops == 3
    held: list[str] = []
    loops = iter([[2.0] * 10, [1.0] * 10, [1.5] * 10, [9.9] * 10])

    def one_loop(path: str, shape: tuple[int, ...]) -> list[float]:
        held.append("loop" if timing_lock._depth["timing"] == 1 else "loop without the lock")
        return next(loops)

    def gap(seconds: float) -> None:
        held.append("gap" if timing_lock._depth["timing"] == 0 else "gap holding the lock")

    monkeypatch.setattr(prof, "time_onnx", one_loop)
    monkeypatch.setattr("hwnas.hardware.onnxruntime.time.sleep", gap)
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 3 and samples == [1.0] * 10
    assert held == ["loop", "gap", "loop", "gap", "loop"]
    assert timing_lock._depth["timing"] == 0  # released after the last loop
    # noisy loops (spread over max_spread) earn extra loops, up to `retries`, until two are quiet
    loops = iter([[1.0] * 5 + [3.0] * 5] * 3 + [[1.2] * 10, [1.25] * 10])
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 5 and samples == [1.2] * 10
    # a quiet loop is preferred to a faster noisy one (whose figure could not be cached)
    loops = iter([[0.5] * 6 + [3.0] * 4, [1.0] * 10, [1.01] * 10])  # the noisy one: median 0.5
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 3 and samples == [1.0] * 10

    # loops that disagree earn extra loops until the two quietest agree within `agree`
    prof.agree = 0.03
    loops = iter([[1.0] * 10, [1.5] * 10, [2.0] * 10, [1.02] * 10, [9.9] * 10])
    samples, attempts, _ = prof.quiet_samples("x.onnx", (1, 3, 8, 8))
    assert attempts == 4 and samples == [1.0] * 10


@pytest.mark.parametrize("key", ["loop_gap_s", "agree"])
def test_a_negative_gap_or_agreement_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"hardware.{key}"):
        OnnxRuntimeProfiler(**{key: -0.5})

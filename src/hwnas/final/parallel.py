"""Full training of several final-stage models side by side, one worker process per share of the CPUs.

Why: a small segmentation net uses two cores poorly (its step time is mostly per-op overhead), so two
1-thread trainings side by side finish 1.3-1.4x sooner than the same two one after the other with 2
threads (measured on this 2-core machine; README). Only *training* runs in parallel: every worker
leaves ``weights.pt`` + ``train.json`` in its model's folder exactly as :func:`train_full` does in
process, and the stage then evaluates and times the models one at a time on a quiet machine (reusing
those weights), so no latency is ever measured next to a running training.

Workers are spawned (no forked torch state), die with their parent (``kill -9`` of the stage leaves no
orphan writing into the run dir), take the largest model first (shortest makespan), and turn a failed
training into an error string for that model's row, never into a failed stage.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hwnas.callbacks.progress import ProgressRelay, StageProgress
from hwnas.search_space.base import ArchSpec

log = logging.getLogger("hwnas.final")

_worker: dict[str, Any] = {}


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a Slurm allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def plan_jobs(
    jobs: int | None, n_models: int, cpus: int | None = None, *, gpu: bool | None = None
) -> tuple[int, int]:
    """``(parallel trainings, torch threads each)``: ``jobs=None`` (auto) = one per CPU, at most one per
    model, and one at a time when a GPU trains (``gpu=None`` asks torch)."""
    cpus = available_cpus() if cpus is None else max(1, int(cpus))
    if jobs is None and (gpu if gpu is not None else _gpu_present()):
        return 1, cpus
    n = min(cpus if jobs is None else int(jobs), max(1, n_models))
    n = max(1, n)
    return n, max(1, cpus // n)


def _gpu_present() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this worker when the stage's process dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_context(container: dict[str, Any], threads: int) -> Any:
    """In a spawned training worker (a parallel job or a DDP rank): die with the stage, use ``threads``
    torch threads, keep Lightning quiet, and rebuild the stage's training context from its config."""
    _die_with_parent()
    import torch

    torch.set_num_threads(threads)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from hwnas.final.gallery import training_context

    return training_context(OmegaConf.create(container))


def _init(container: dict[str, Any], queue: Any, threads: int) -> None:
    _worker["ctx"] = worker_context(container, threads)
    _worker["progress"] = ProgressRelay(queue)


def _train(
    spec: dict[str, Any], out_dir: str, init: str, seed: int | None = None
) -> tuple[str | None, float]:
    """In a worker: train one model (with training seed ``seed``; ``None`` = ``final.seed``);
    ``(error or None, seconds)``."""
    from hwnas.final.gallery import MODEL_ERRORS, failure_reason, train_full, with_seed

    t0 = time.perf_counter()
    arch = ArchSpec.from_dict(spec)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        train_full(with_seed(_worker["ctx"], seed), arch, Path(out_dir), _worker["progress"], init)
    except MODEL_ERRORS as exc:  # the same failures as in the stage's own process
        return failure_reason(exc), time.perf_counter() - t0
    return None, time.perf_counter() - t0


def train_parallel(
    cfg: DictConfig,
    work: list[tuple[ArchSpec, Path, int, str] | tuple[ArchSpec, Path, int, str, int | None]],
    *,
    jobs: int,
    threads: int,
    progress: StageProgress,
) -> dict[str, str]:
    """Train ``(spec, out_dir, size, init[, seed])`` items in ``jobs`` worker processes, largest ``size``
    first (``seed``: a training seed other than ``final.seed``, the baseline's repeats).

    Returns ``{str(out_dir): error}`` for the trainings that failed (a dead worker fails its model).
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    pump = progress.follow(queue)
    errors: dict[str, str] = {}
    order = sorted(((*w, None) if len(w) == 4 else w for w in work), key=lambda w: -w[2])
    log.info(
        "final: training %d model(s) in %d parallel process(es) x %d thread(s); accuracy and latency are "
        "measured afterwards, one model at a time",
        len(order), jobs, threads,
    )  # fmt: skip
    try:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init, initargs=(container, queue, threads)
        ) as pool:
            futures = {
                pool.submit(_train, spec.to_dict(), str(out), init, seed): (spec, out)
                for spec, out, _, init, seed in order
            }
            for done, fut in enumerate(as_completed(futures), 1):
                spec, out = futures[fut]
                try:
                    error, seconds = fut.result()
                except Exception as exc:  # noqa: BLE001 - a dead worker (OOM kill, segfault) fails its model
                    error, seconds = f"training worker died: {type(exc).__name__}: {exc}", float("nan")
                if error:
                    errors[str(out)] = error
                    log.warning("final: training %s failed: %s", spec.key, error)
                else:
                    log.info("final: trained %s (%d/%d) in %.0fs", out.name, done, len(order), seconds)
    finally:
        queue.put(None)
        pump.join(timeout=5)
    return errors

"""Train each final-stage model with DDP over ``final.ddp.processes`` processes on this machine.

One model at a time gets every process (gloo on CPUs; nccl on GPUs, one process per GPU). Each rank is a
spawned process that rebuilds the stage's training context from the config, takes its share of every
batch (``dataset.batch_size / processes``: the global batch, the steps per epoch and the learning-rate
schedule stay those of a one-process training), and trains under Lightning's DDP; rank 0 writes the
model's ``weights.pt`` and ``train.json`` exactly as :func:`~hwnas.final.gallery.train_full` does
in process, so evaluation, timing and resume after a crash are unchanged. A failing rank fails its model
(the others are stopped), never the stage.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hwnas.callbacks.progress import NoProgress, ProgressRelay, StageProgress
from hwnas.final.parallel import worker_context
from hwnas.search_space.base import ArchSpec
from hwnas.utils import timing_lock

log = logging.getLogger("hwnas.final")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank_main(
    rank: int,
    container: dict[str, Any],
    spec: dict[str, Any],
    out_dir: str,
    init: str,
    world: int,
    port: int,
    threads: int,
    queue: Any,
    results: Any,
) -> None:
    """One rank (``torch.multiprocessing`` passes ``rank`` first): set the DDP environment, train."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), NODE_RANK="0",
        RANK=str(rank), LOCAL_RANK=str(rank),
    )  # fmt: skip
    from hwnas.final.gallery import MODEL_ERRORS, failure_reason, train_full

    ctx = worker_context(container, threads)
    ctx.datamodule.batch_size //= world  # each rank's share of the configured (global) batch
    progress = ProgressRelay(queue) if rank == 0 else NoProgress()
    try:
        with timing_lock.held_by_parent():  # the parent holds the machine's busy lock for the whole group
            train_full(ctx, ArchSpec.from_dict(spec), Path(out_dir), progress, init, ddp=world)
    except MODEL_ERRORS as exc:
        results.put((rank, failure_reason(exc)))
        raise  # a non-zero exit: torch stops the other ranks instead of leaving them in a collective
    results.put((rank, None))


def check_batch(batch_size: int, processes: int) -> None:
    """``dataset.batch_size`` must split evenly over the processes (a start-up check)."""
    from hwnas.utils.errors import ConfigError

    if processes > 1 and batch_size % processes:
        raise ConfigError(
            f"dataset.batch_size={batch_size} does not split over {processes} DDP processes",
            key="final.ddp.processes",
            fix=f"use a divisor of {batch_size} for final.ddp.processes, or a multiple of {processes} for "
            "dataset.batch_size (each process takes batch_size / processes of every batch)",
        )


def train_ddp(
    cfg: DictConfig,
    work: list[tuple[ArchSpec, Path, str]],
    *,
    processes: int,
    threads: int,
    progress: StageProgress,
) -> dict[str, str]:
    """Train ``(spec, out_dir, init)`` items one after another, each by a DDP group of ``processes``.

    Returns ``{str(out_dir): error}`` for the trainings that failed.
    """
    import torch.multiprocessing as tmp

    from hwnas.lit.ddp import backend

    container = OmegaConf.to_container(cfg, resolve=True)
    ctx = tmp.get_context("spawn")
    queue, results = ctx.Queue(), ctx.SimpleQueue()
    pump = progress.follow(queue)
    errors: dict[str, str] = {}
    log.info(
        "final: training %d model(s) one at a time, each with DDP over %d processes (%s) x %d thread(s)",
        len(work), processes, backend(), threads,
    )  # fmt: skip
    try:
        for done, (spec, out, init) in enumerate(work, 1):
            out.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            args = (
                container,
                spec.to_dict(),
                str(out),
                init,
                processes,
                _free_port(),
                threads,
                queue,
                results,
            )
            error = None
            try:
                with timing_lock.busy():  # for every rank at once: never beside a host latency measurement
                    tmp.start_processes(
                        _rank_main, args=args, nprocs=processes, join=True, start_method="spawn"
                    )
            except Exception as exc:  # noqa: BLE001 - a failed or killed rank fails its model
                error = f"DDP training failed: {type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"
            reported = []
            while not results.empty():
                reported.append(results.get())
            error = next((e for _, e in sorted(reported) if e), error)
            if error:
                errors[str(out)] = error
                log.warning("final: training %s failed: %s", spec.key, error)
            else:
                log.info(
                    "final: trained %s (%d/%d) in %.0fs", out.name, done, len(work), time.perf_counter() - t0
                )
    finally:
        queue.put(None)
        pump.join(timeout=5)
    return errors

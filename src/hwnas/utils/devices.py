"""One device per worker: which GPU, how many CPU threads and data-loader workers a search process takes.

The processes of one node are numbered by *slot*: ``SLURM_LOCALID × search.n_workers + search.worker_id``
(several Slurm tasks on one node, each with its local workers), out of ``tasks on the node ×
search.n_workers``. Slot ``s`` takes GPU ``devices[s mod len(devices)]`` (through ``CUDA_VISIBLE_DEVICES``,
set before this process first touches CUDA, so ``trainer.devices: 1`` and every ``cuda`` tensor land on it),
an equal share of this process's CPUs as torch threads, and a share of ``dataset.num_workers``. The
assignment is logged and each trial records its device (the ``device`` column of trials.csv).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwnas.utils.errors import ConfigError

log = logging.getLogger("hwnas.search")


@dataclass(frozen=True)
class Assignment:
    """What one search process uses."""

    slot: int
    slots: int
    gpu: str | None  # the physical GPU id (``CUDA_VISIBLE_DEVICES`` entry), None on a CPU-only node
    threads: int
    loader_workers: int

    @property
    def label(self) -> str:
        return f"cuda:{self.gpu}" if self.gpu is not None else "cpu"


_current: Assignment | None = None
#: The node's GPUs as the first process saw them, before it narrowed ``CUDA_VISIBLE_DEVICES`` to its own:
#: the workers it spawns inherit both and assign themselves from this one.
NODE_GPUS_ENV = "HWNAS_NODE_GPUS"


def current_label() -> str | None:
    """The device this process was assigned (``cuda:1``, ``cpu``), None before :func:`take_device`."""
    return _current.label if _current is not None else None


def tasks_on_node(env: Mapping[str, str]) -> int:
    """Slurm tasks on this node (``SLURM_TASKS_PER_NODE`` like ``4`` or ``2(x3)``; 1 outside Slurm)."""
    raw = env.get("SLURM_NTASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or "1"
    m = re.match(r"\d+", raw)
    return max(1, int(m.group())) if m else 1


def slot_of(worker_id: int, n_workers: int, env: Mapping[str, str]) -> tuple[int, int]:
    """``(slot, slots)`` of a worker on this node."""
    local = int(env.get("SLURM_LOCALID") or 0)
    return local * n_workers + worker_id, tasks_on_node(env) * n_workers


def visible_gpus(setting: Any, env: Mapping[str, str]) -> list[str]:
    """The node's GPU ids: ``search.devices`` when a list, else ``CUDA_VISIBLE_DEVICES`` or torch's count."""
    if setting not in (None, "auto"):
        if isinstance(setting, str | int) or not isinstance(setting, Sequence):
            raise ConfigError(
                f"must be auto or a list of GPU ids, got {setting!r}", key="search.devices",
                fix="search.devices=auto (every visible GPU) or e.g. search.devices=[0,1]",
            )  # fmt: skip
        return [str(d).removeprefix("cuda:") for d in setting]
    visible = env.get(NODE_GPUS_ENV, env.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def assign(
    *, slot: int, slots: int, gpus: Sequence[str], cpus: int, loader_workers: int, share: int
) -> Assignment:
    """Slot ``slot`` of ``slots``: its GPU (round robin over ``gpus``), and a ``1/share`` part of ``cpus``
    threads and of the configured data-loader workers (``share``: the workers of this process's task, whose
    CPUs under Slurm are already the task's own)."""
    gpu = gpus[slot % len(gpus)] if gpus else None
    share = max(1, int(share))
    return Assignment(slot, slots, gpu, max(1, cpus // share), max(0, loader_workers // share))


def take_device(cfg: Any, env: Mapping[str, str] | None = None) -> Assignment:
    """Assign this process its device, threads and loader workers (see the module docstring); idempotent."""
    global _current
    env = os.environ if env is None else env
    n = int(cfg.search.get("n_workers", 1) or 1)
    slot, slots = slot_of(int(str(cfg.search.get("worker_id", "0"))), n, env)
    gpus = visible_gpus(cfg.search.get("devices", "auto"), env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    loaders = int((cfg.get("dataset") or {}).get("num_workers", 0) or 0)
    a = assign(slot=slot, slots=slots, gpus=gpus, cpus=cpus, loader_workers=loaders, share=n)
    if _current == a:
        return a
    import torch

    if a.gpu is not None and slots > 1:  # one process alone on the node keeps every GPU (DDP final stage)
        if torch.cuda.is_initialized():
            log.warning("CUDA was initialised before the device assignment: %s not enforced", a.label)
        elif env is os.environ:
            os.environ.setdefault(NODE_GPUS_ENV, ",".join(gpus))
            os.environ["CUDA_VISIBLE_DEVICES"] = a.gpu
    if a.gpu is not None and len(gpus) < slots:
        log.warning("%d worker slot(s) on this node share %d GPU(s)", slots, len(gpus))
    if a.gpu is not None and not torch.cuda.is_available():
        log.warning(
            "search.devices assigns %s but torch sees no CUDA device: training runs on the CPU", a.label
        )
    if n > 1 or slots > 1:
        torch.set_num_threads(a.threads)
        if loaders:
            with _open(cfg):
                cfg.dataset.num_workers = a.loader_workers
    log.info(
        "worker slot %d/%d: device %s, %d CPU thread(s), %d data-loader worker(s)",
        a.slot, a.slots, a.label, a.threads, a.loader_workers,
    )  # fmt: skip
    _current = a
    return a


def _open(cfg: Any) -> Any:
    from omegaconf import open_dict

    return open_dict(cfg)


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (CUDA's, or the host's)."""
    import torch

    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory() -> None:
    """Release what a failed training left behind (its tensors, the CUDA cache), so the next one has it."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


class PeakMemory:
    """``with PeakMemory(metrics):`` records the peak GPU memory allocated inside the block as
    ``metrics["peak_mem_mb"]`` (reset at entry: one trial's, not the process's lifetime maximum); nothing
    on a machine without CUDA."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.metrics = metrics

    def __enter__(self) -> PeakMemory:
        import torch

        self.on = torch.cuda.is_available() and torch.cuda.is_initialized()
        if self.on:
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if not self.on and torch.cuda.is_available() and torch.cuda.is_initialized():
            self.on = True  # the block initialised CUDA: its peak is everything allocated since
        if self.on:
            self.metrics["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)

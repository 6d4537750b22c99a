"""Lightning DDP for one model trained by processes the caller started (the final stage's ``final.ddp``).

The processes are launched by :mod:`hwnas.final.ddp` with the usual environment (``MASTER_ADDR``,
``MASTER_PORT``, ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), so Lightning neither re-runs the script (its
subprocess launcher would re-run the whole search) nor pickles the trainer (``ddp_spawn``). The cluster
environment is pinned to :class:`LightningEnvironment` so that on a Slurm node Lightning does not take the
job's own task ids for ranks. Backend: gloo on CPUs, nccl on GPUs (one process per GPU, synced BatchNorm).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytorch_lightning as pl
import torch

from hwnas.utils.errors import CandidateFailed


def backend() -> str:
    """``nccl`` when CUDA GPUs train, ``gloo`` on CPUs."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def trainer_kwargs(processes: int) -> dict[str, Any]:
    """Trainer overrides for DDP over ``processes`` externally launched processes on one machine."""
    from pytorch_lightning.plugins.environments import LightningEnvironment
    from pytorch_lightning.strategies import DDPStrategy

    gpu = backend() == "nccl"
    return {
        "strategy": DDPStrategy(process_group_backend=backend(), cluster_environment=LightningEnvironment()),
        "accelerator": "gpu" if gpu else "cpu",
        "devices": int(processes),
        "num_nodes": 1,
        "sync_batchnorm": gpu,  # torch's SyncBatchNorm has no CPU kernel: per-process statistics on CPUs
    }


def weights_digest(model: torch.nn.Module) -> str:
    """A hash of the trainable parameters' bytes (buffers such as BatchNorm statistics excluded)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class RanksAgree(pl.Callback):
    """At the end of training every rank must hold bit-identical weights (DDP averaged every gradient).

    A rank that trained apart (a broken gradient sync, a rank that skipped steps) fails the model instead
    of saving one rank's weights as "the" model. ``digests`` holds each rank's hash afterwards.
    """

    def __init__(self) -> None:
        self.digests: list[str] = []

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        mine = weights_digest(pl_module)
        gathered: list[Any] = [None] * trainer.world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_gather_object(gathered, mine)
        else:
            gathered = [mine]
        self.digests = [str(d) for d in gathered]
        if len(set(self.digests)) != 1:
            raise CandidateFailed(
                f"DDP ranks ended with different weights ({self.digests}): gradients were not synced"
            )

"""``SupernetModule``: trains a weight-sharing supernet with the sandwich rule and in-place distillation.

Every step runs the largest sub-network on the labels, then the smallest and ``n_random`` random ones,
each on the labels plus ``distill`` × the cross-entropy to the largest's (detached) predictions, and
takes one optimizer step on the summed gradients (BigNAS / Once-for-All). Manual optimisation, so each
sub-network's graph is freed after its backward pass. Logs ``train/loss_largest`` and
``train/loss_smallest``; a NaN/inf loss stops training and sets ``nonfinite_loss``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from hwnas.data.labels import IGNORE_INDEX
from hwnas.lit.candidate import Scheduler, adamw_with_schedule
from hwnas.lit.checkpoints import Resume, fit_resumable
from hwnas.lit.fit import channels_last_of, instantiate_dict, loop_trainer
from hwnas.utils import timing_lock
from hwnas.utils.errors import CandidateFailed

log = logging.getLogger("hwnas.supernet")


#: The supernet training algorithm's version: part of the supernet cache key, so a supernet trained by
#: earlier code is never reused for this code's searches. 2: distillation ignores unlabelled pixels.
SUPERNET_VERSION = 2


def soft_cross_entropy(
    logits: torch.Tensor, target_probs: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy to soft targets (KL up to a constant) over the positions whose label is not
    ``IGNORE_INDEX`` (all of them when ``labels`` is None): like the label loss, ignored pixels carry no
    signal, so the teacher's guesses there are not distilled."""
    per = -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1)
    if labels is None:
        return per.mean()
    valid = (labels != IGNORE_INDEX).to(per.dtype)
    return (per * valid).sum() / valid.sum().clamp_min(1.0)


class SupernetModule(pl.LightningModule):
    """Wraps a plain supernet with the ``set_active`` / ``sample`` / ``largest`` / ``smallest`` contract.

    Args:
        supernet: e.g. :class:`hwnas.models.elastic_hourglass.ElasticHourglass`.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        n_random: Random sub-networks per step besides the largest and the smallest.
        distill: Weight of the in-place distillation loss for the smaller sub-networks (0 = labels only).
        label_smoothing: Cross-entropy label smoothing (a trick).
        schedule: ``schedule(optimizer, total_steps=...)``, a per-step LR scheduler (a trick).
        grad_clip: Gradient-norm clipping (``None`` = off).
        channels_last: NHWC inputs (faster convolutions on CPU).
        seed: Seeds the random sub-networks.
    """

    def __init__(
        self,
        supernet: nn.Module,
        *,
        lr: float,
        weight_decay: float,
        n_random: int = 2,
        distill: float = 1.0,
        label_smoothing: float = 0.0,
        schedule: Scheduler | None = None,
        grad_clip: float | None = None,
        channels_last: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.supernet = supernet
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.n_random, self.distill = int(n_random), float(distill)
        self.schedule, self.grad_clip = schedule, grad_clip
        self.channels_last = bool(channels_last)
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
        self.rng = np.random.default_rng(seed)
        self.nonfinite_loss = False

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt = self.optimizers()
        opt.zero_grad()
        net = self.supernet
        configs = [net.largest(), net.smallest()] + [net.sample(self.rng) for _ in range(self.n_random)]
        teacher: torch.Tensor | None = None
        for i, config in enumerate(configs):
            net.set_active(config)
            logits = net(x)
            loss = self.criterion(logits, y)
            if teacher is None:
                teacher = logits.detach().softmax(dim=1)
            elif self.distill:
                loss = loss + self.distill * soft_cross_entropy(logits, teacher, y)
            if not torch.isfinite(loss):
                self.nonfinite_loss = True
                self.trainer.should_stop = True
                return
            self.manual_backward(loss)
            if i < 2:
                name = "largest" if i == 0 else "smallest"
                self.log(f"train/loss_{name}", loss.detach(), on_step=False, on_epoch=True, batch_size=len(x))
        if self.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=float(self.grad_clip), gradient_clip_algorithm="norm")
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        net.set_active(net.largest())

    def configure_optimizers(self) -> Any:
        return adamw_with_schedule(self, lr=self.lr, weight_decay=self.weight_decay, schedule=self.schedule)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["subnet_rng"] = self.rng.bit_generator.state  # the random sub-networks continue on resume

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "subnet_rng" in checkpoint:
            self.rng.bit_generator.state = checkpoint["subnet_rng"]


class EpochLog(pl.Callback):
    """One log line per supernet epoch (its training takes minutes; a log file should show it moving)."""

    def __init__(self, total: int) -> None:
        self.total = int(total)
        self.t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        m = trainer.callback_metrics
        big, small = m.get("train/loss_largest"), m.get("train/loss_smallest")
        log.info(
            "supernet epoch %d/%d: loss largest %.3f, smallest %.3f (%.0fs)",
            trainer.current_epoch + 1, self.total,
            float(big) if big is not None else float("nan"),
            float(small) if small is not None else float("nan"),
            time.perf_counter() - self.t0,
        )  # fmt: skip


def fit_supernet(
    supernet: nn.Module,
    *,
    datamodule: pl.LightningDataModule,
    tricks: DictConfig,
    trainer_cfg: DictConfig,
    optim: Mapping[str, Any],
    run_dir: str,
    max_epochs: int,
    limit_train_batches: float | int = 1.0,
    n_random: int = 2,
    distill: float = 1.0,
    seed: int = 0,
    callbacks: list[Any] | None = None,
    resume: Resume | None = None,
) -> dict[str, float]:
    """Train ``supernet`` in place with the sandwich rule and the configured tricks; return loss figures.

    The same tricks as a candidate's training (augmentation lives in the datamodule; schedule, label
    smoothing, clipping, precision, memory format and extra callbacks here). With ``resume``, checkpoints
    go to its folder and the training continues from the last one there (see :mod:`hwnas.lit.checkpoints`).

    Raises:
        CandidateFailed: NaN/inf loss.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    channels_last = channels_last_of(tricks)
    module = SupernetModule(
        supernet,
        lr=float(optim["lr"]),
        weight_decay=float(optim["weight_decay"]),
        n_random=n_random,
        distill=distill,
        label_smoothing=float(tricks.get("label_smoothing") or 0.0),
        schedule=instantiate(tricks.schedule) if tricks.get("schedule") else None,
        grad_clip=tricks.get("grad_clip"),
        channels_last=channels_last,
        seed=seed,
    )
    if channels_last:
        supernet.to(memory_format=torch.channels_last)
    extra = [*(callbacks or []), *instantiate_dict(tricks.get("callbacks"))]

    def fit(ckpt: Any) -> pl.Trainer:
        trainer = loop_trainer(
            trainer_cfg,
            callbacks=[EpochLog(max_epochs), *extra, *(resume.callbacks() if resume else [])],
            run_dir=run_dir,
            precision=tricks.get("precision", "auto"),
            max_epochs=max_epochs,
            limit_train_batches=limit_train_batches,
            checkpointing=resume is not None,
        )
        with timing_lock.busy():  # never beside a host latency measurement
            trainer.fit(module, train_dataloaders=datamodule.train_dataloader(), ckpt_path=ckpt)
        return trainer

    t0 = time.perf_counter()
    trainer = fit_resumable(resume, fit)
    seconds = time.perf_counter() - t0
    supernet.to(memory_format=torch.contiguous_format)
    supernet.cpu()
    if module.nonfinite_loss:
        raise CandidateFailed("non-finite loss (NaN/inf) while training the supernet")
    out = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1}
    if not all(math.isfinite(v) for v in out.values()):
        raise CandidateFailed("non-finite supernet training loss")
    return {**out, "train_seconds": seconds, "epochs": float(trainer.current_epoch)}

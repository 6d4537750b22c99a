"""``GrowthModule``: Petridish's joint training of a parent and its stop-forward candidates (manual
optimisation): one SGD step on the parent's and the candidates' weights and one Adam step on the selector
``α`` per training batch, under ``CE + l1 · Σ|α|`` (the paper's sparse selection). The parent's outputs
never depend on the candidates (:mod:`hwnas.models.growth`), so its cross-entropy is the parent's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn

from hwnas.data.labels import IGNORE_INDEX
from hwnas.lit.checkpoints import Resume
from hwnas.lit.fit import fit_search_module
from hwnas.models.growth import GrowingNetwork
from hwnas.models.mixed import ArchParameters

log = logging.getLogger("hwnas.petridish")


class GrowthModule(pl.LightningModule):
    """Trains ``net`` (parent + candidates) and the selector ``arch`` (group ``moves``, one per candidate).

    Args:
        net: The growing network.
        arch: The selector weights, apart from ``net`` (``ArchParameters({"moves": (n,)})``).
        l1: Weight of the L1 penalty on the selector.
        w_lr, w_momentum, w_weight_decay, grad_clip: SGD on the weights (cosine schedule).
        a_lr: Adam on the selector.
        label_smoothing: Cross-entropy label smoothing.
        channels_last: NHWC inputs.
    """

    def __init__(
        self,
        net: GrowingNetwork,
        arch: ArchParameters,
        *,
        l1: float = 1e-3,
        w_lr: float = 0.05,
        w_momentum: float = 0.9,
        w_weight_decay: float = 3e-4,
        grad_clip: float | None = 5.0,
        a_lr: float = 0.05,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.arch = net, arch
        self.l1, self.w_lr, self.w_momentum = float(l1), float(w_lr), float(w_momentum)
        self.w_weight_decay, self.grad_clip, self.a_lr = float(w_weight_decay), grad_clip, float(a_lr)
        self.channels_last = bool(channels_last)
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
        self.nonfinite_loss = False

    def training_step(self, batch: Any, batch_idx: int) -> None:
        w_opt, a_opt = self.optimizers()
        x, y = batch
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        alpha = self.arch.alphas["moves"]
        ce = self.criterion(self.net(x, alpha), y)
        loss = ce + self.l1 * alpha.abs().sum()
        if not torch.isfinite(loss):
            self.nonfinite_loss = True
            self.trainer.should_stop = True
            return
        w_opt.zero_grad()
        a_opt.zero_grad()
        self.manual_backward(loss)
        if self.grad_clip:
            self.clip_gradients(
                w_opt, gradient_clip_val=float(self.grad_clip), gradient_clip_algorithm="norm"
            )
        w_opt.step()
        a_opt.step()
        self.lr_schedulers().step()
        self.log("petridish/ce", ce.detach(), on_step=False, on_epoch=True, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        w_opt = torch.optim.SGD(
            self.net.parameters(), lr=self.w_lr, momentum=self.w_momentum, weight_decay=self.w_weight_decay
        )
        a_opt = torch.optim.Adam(self.arch.parameters(), lr=self.a_lr, betas=(0.5, 0.999))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=total)
        return [w_opt, a_opt], [{"scheduler": sched, "interval": "step"}]


@dataclass
class GrowthRun:
    """The moves by decreasing ``|α|`` and what the joint training cost."""

    ranking: list[tuple[str, float]] = field(default_factory=list)
    ce: float | None = None
    seconds: float = 0.0


def fit_growth(
    module: GrowthModule,
    *,
    train_loader: Any,
    trainer_cfg: DictConfig,
    max_epochs: int,
    limit_train_batches: float | int,
    run_dir: str | Path,
    precision: Any = "auto",
    seed: int = 0,
    resume: Resume | None = None,
) -> GrowthRun:
    """Train parent, candidates and selector jointly; rank the moves.

    Raises:
        CandidateFailed: NaN/inf loss.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    seconds, trainer = fit_search_module(
        module,
        train_loader,
        trainer_cfg=trainer_cfg,
        run_dir=run_dir,
        precision=precision,
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        failure="petridish: non-finite loss (NaN/inf) while training the candidates",
        resume=resume,
    )
    ce = trainer.callback_metrics.get("petridish/ce")
    return GrowthRun(
        ranking=module.net.ranking(module.arch.alphas["moves"]),
        ce=float(ce) if ce is not None else None,
        seconds=seconds,
    )

"""``CandidateModule``: a LightningModule that trains any candidate segmentation or classification network.

Logs ``train/loss``, ``val/loss``, ``val/miou`` (macro IoU over classes present), ``val/f1`` (macro F1)
and ``val/acc`` (pixel accuracy; for classification, top-1 accuracy), all with ``ignore_index=255``. A
NaN/inf loss stops training and is reported through ``nonfinite_loss`` so a search can record the
candidate as a failed trial.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from hwnas.data.labels import IGNORE_INDEX

Scheduler = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def adamw_with_schedule(
    module: pl.LightningModule, *, lr: float, weight_decay: float, schedule: Scheduler | None
) -> Any:
    """AdamW over ``module``'s parameters with the tricks' per-step schedule (what configure_optimizers returns)."""
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    if schedule is None:
        return opt
    total = max(1, int(module.trainer.estimated_stepping_batches))
    return {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": schedule(opt, total_steps=total), "interval": "step"},
    }


def segmentation_metrics(num_classes: int, prefix: str = "val/") -> MetricCollection:
    """``miou`` and ``f1`` (macro over classes present) and ``acc`` (pixels), ignoring ``IGNORE_INDEX``:
    the one definition every evaluator's ``val/*`` figures use, so they compare across evaluators. The
    same metrics take ``[N]`` class ids (classification), where ``acc`` is top-1 accuracy."""
    kw: dict[str, Any] = {"num_classes": num_classes, "ignore_index": IGNORE_INDEX, "average": "macro"}
    return MetricCollection(
        {
            "miou": MulticlassJaccardIndex(**kw),
            "f1": MulticlassF1Score(**kw),
            "acc": MulticlassAccuracy(num_classes=num_classes, ignore_index=IGNORE_INDEX, average="micro"),
        },
        prefix=prefix,
    )


class CandidateModule(pl.LightningModule):
    """Wraps a plain ``nn.Module`` that maps ``(N, C, H, W)`` images to ``(N, K, H, W)`` logits
    (segmentation, ``(N, H, W)`` masks) or ``(N, K)`` logits (classification, ``(N,)`` class ids).

    Args:
        model: The candidate network (built by a search space; never imports Lightning).
        num_classes: ``K``.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        label_smoothing: Cross-entropy label smoothing (a trick).
        schedule: ``schedule(optimizer, total_steps=...)`` returning a per-step LR scheduler (a trick).
        channels_last: Train in NHWC memory format (same numbers, faster convolutions on CPU and GPU).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
        schedule: Scheduler | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "schedule"])
        self.model = model
        self.schedule = schedule
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
        self.val_metrics = segmentation_metrics(num_classes)
        self.nonfinite_loss = False
        self.channels_last = bool(channels_last)

    def on_fit_start(self) -> None:
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def on_fit_end(self) -> None:
        if self.channels_last:  # hand back an ordinary (contiguous) model for export and inference
            self.model.to(memory_format=torch.contiguous_format)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        x, y = batch
        loss = self.criterion(self(self._input(x)), y)
        # Under DDP every rank must take the same branch (one rank skipping backward would hang the others).
        if not self.trainer.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
            # Stop cleanly; the caller turns this into a FAIL trial with the reason.
            self.nonfinite_loss = True
            self.trainer.should_stop = True
            return None
        self.log("train/loss", loss, prog_bar=False, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(self._input(x))
        self.log("val/loss", self.criterion(logits, y), on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        self.val_metrics.update(logits.argmax(dim=1), y)

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()

    def configure_optimizers(self) -> Any:
        return adamw_with_schedule(
            self, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay, schedule=self.schedule
        )

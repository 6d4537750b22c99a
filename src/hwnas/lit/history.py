"""Per-epoch training curves of one training, kept with its weights (``train.json``'s ``history``).

The final stage trains in worker processes without a Lightning logger; this callback records each
epoch's scalar metrics (``train/loss``, and the validation metrics on epochs that validate) so that the
run's loggers (TensorBoard, W&B) can draw every final model's curves afterwards. Its state is part of the
Lightning checkpoint, so a training resumed after a crash keeps the epochs it had already run.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch


class EpochHistory(pl.Callback):
    """``history``: one ``{"epoch": e, metric: value, ...}`` per finished training epoch."""

    def __init__(self) -> None:
        self.history: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": float(trainer.current_epoch + 1)}
        for key, value in trainer.callback_metrics.items():
            if torch.is_tensor(value) and value.numel() == 1 and math.isfinite(float(value)):
                row[key] = round(float(value), 6)
        self.history = [h for h in self.history if h["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history") or [])

"""One place that turns (model, datamodule, tricks, trainer config) into a trained model and metrics.

Both ``train.run`` and the search's training evaluator call :func:`fit_candidate`, so a trick switched
on in config applies identically to a single training and to every candidate of a search.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from hwnas.lit.candidate import CandidateModule
from hwnas.lit.checkpoints import Resume, fit_resumable
from hwnas.tricks.precision import resolve_precision
from hwnas.utils import timing_lock
from hwnas.utils.errors import CandidateFailed, ConfigError


def instantiate_dict(node: DictConfig | Mapping | None) -> list[Any]:
    """Instantiate every ``_target_`` value of a mapping (callbacks, loggers); skip empty entries."""
    if not node:
        return []
    out = []
    for _, sub in node.items() if isinstance(node, Mapping) else node.items():
        if sub is not None and "_target_" in sub:
            out.append(instantiate(sub))
    return out


MEMORY_FORMATS = ("channels_last", "contiguous")


def loop_trainer(
    trainer_cfg: DictConfig,
    *,
    callbacks: list[Any],
    run_dir: str | Path,
    precision: Any,
    max_epochs: int,
    limit_train_batches: float | int,
    checkpointing: bool = False,
) -> pl.Trainer:
    """A Trainer for a training-only loop (supernet, differentiable search): the trainer group's
    accelerator and settings, no logger, progress bar, summary or validation loop; checkpoints only when
    ``checkpointing`` (the callbacks then hold a :class:`~hwnas.lit.checkpoints.Resume`'s)."""
    return instantiate(
        OmegaConf.to_container(trainer_cfg, resolve=True),
        logger=False,
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        precision=resolve_precision(precision),
        enable_checkpointing=bool(checkpointing),
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=int(max_epochs),
        limit_train_batches=limit_train_batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )


def fit_search_module(
    module: Any,
    loader: Any,
    *,
    trainer_cfg: DictConfig,
    run_dir: str | Path,
    precision: Any,
    max_epochs: int,
    limit_train_batches: float | int,
    failure: str,
    callbacks: Sequence[Any] = (),
    resume: Resume | None = None,
) -> tuple[float, pl.Trainer]:
    """Fit a search module that holds ``net`` and ``arch`` (DNAS, Petridish) on ``loader`` under the machine's
    busy lock, NHWC if ``module.channels_last``; leave both on the CPU in contiguous layout; return the
    seconds the fit took and the trainer. The trainer is :func:`loop_trainer`'s with ``callbacks``; with
    ``resume`` the fit checkpoints there and continues from its last checkpoint.

    Raises:
        CandidateFailed: ``failure`` when the module saw a NaN/inf loss.
    """
    if module.channels_last:
        module.net.to(memory_format=torch.channels_last)

    def fit(ckpt: Path | None) -> pl.Trainer:
        trainer = loop_trainer(
            trainer_cfg,
            callbacks=[*callbacks, *(resume.callbacks() if resume else [])],
            run_dir=run_dir,
            precision=precision,
            max_epochs=max_epochs,
            limit_train_batches=limit_train_batches,
            checkpointing=resume is not None,
        )
        with timing_lock.busy():  # never beside a host latency measurement
            trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt)
        return trainer

    t0 = time.perf_counter()
    trainer = fit_resumable(resume, fit)
    seconds = time.perf_counter() - t0
    module.net.to(memory_format=torch.contiguous_format).cpu()
    module.arch.cpu()
    if module.nonfinite_loss:
        raise CandidateFailed(failure)
    return seconds, trainer


def channels_last_of(tricks: DictConfig) -> bool:
    """``tricks.memory_format`` as a flag; a clear error for an unknown value (checked at start-up too)."""
    fmt = str(tricks.get("memory_format") or "contiguous")
    if fmt not in MEMORY_FORMATS:
        raise ConfigError(
            f"unknown value {fmt!r}", key="tricks.memory_format", choices=MEMORY_FORMATS,
            fix="tricks.memory_format=channels_last (faster convolutions) or contiguous",
        )  # fmt: skip
    return fmt == "channels_last"


def fit_candidate(
    model: nn.Module,
    *,
    datamodule: pl.LightningDataModule,
    tricks: DictConfig,
    trainer_cfg: DictConfig,
    optim: DictConfig | Mapping,
    run_dir: str | Path,
    loggers: list[Any] | bool = False,
    callbacks: list[Any] | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    ckpt_path: str | Path | None = None,
) -> tuple[CandidateModule, dict[str, float]]:
    """Train ``model`` with the configured tricks and return the module and its final metrics.

    Args:
        model: Plain torch candidate.
        datamodule: Provides the data and ``num_classes``.
        tricks: The ``tricks`` config group (schedule, label smoothing, callbacks, clipping, precision).
        trainer_cfg: The ``trainer`` config group (a ``pytorch_lightning.Trainer`` node).
        optim: ``lr`` and ``weight_decay``.
        run_dir: Where Lightning may write (checkpoints, logs).
        loggers: Lightning loggers, or False for none.
        callbacks: Extra Lightning callbacks (checkpointing, latency).
        seed: Seed for weights and data order.
        overrides: Trainer keyword overrides (e.g. ``max_epochs`` for partial training in a search).
        ckpt_path: A Lightning checkpoint of this same training to resume from (after a crash).

    Raises:
        CandidateFailed: NaN/inf loss, or no validation metrics were produced.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    schedule = instantiate(tricks.schedule) if tricks.get("schedule") else None
    module = CandidateModule(
        model,
        num_classes=int(datamodule.num_classes),
        lr=float(optim["lr"]),
        weight_decay=float(optim["weight_decay"]),
        label_smoothing=float(tricks.get("label_smoothing") or 0.0),
        schedule=schedule,
        channels_last=channels_last_of(tricks),
    )
    all_callbacks = list(callbacks or []) + instantiate_dict(tricks.get("callbacks"))
    kwargs: dict[str, Any] = {
        "logger": loggers,
        "callbacks": all_callbacks,
        "default_root_dir": str(run_dir),
        "precision": resolve_precision(tricks.get("precision", "auto")),
        "gradient_clip_val": tricks.get("grad_clip"),
    }
    if not any(isinstance(c, pl.callbacks.ModelCheckpoint) for c in all_callbacks):
        kwargs["enable_checkpointing"] = False
    kwargs.update(dict(overrides or {}))
    trainer_node = OmegaConf.to_container(trainer_cfg, resolve=True)
    trainer: pl.Trainer = instantiate(trainer_node, **kwargs)
    t0 = time.perf_counter()
    with timing_lock.busy():  # never beside a host latency measurement
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
        if ckpt_path and "val/miou" not in trainer.callback_metrics:
            # resumed from the checkpoint of its last epoch (killed after it, before the result was kept):
            # no epoch is left to train, so the finished weights are validated here
            trainer.validate(module, datamodule=datamodule, verbose=False)
    seconds = time.perf_counter() - t0
    if module.nonfinite_loss:
        raise CandidateFailed("non-finite loss (NaN/inf) during training")
    metrics = {
        k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1
    }
    if "val/miou" not in metrics or not math.isfinite(metrics["val/miou"]):
        raise CandidateFailed("training produced no finite val/miou (check trainer.limit_val_batches)")
    metrics["train_seconds"] = seconds
    metrics["epochs"] = float(trainer.current_epoch)
    metrics["steps"] = float(trainer.global_step)
    metrics["world_size"] = float(trainer.world_size)
    return module, metrics

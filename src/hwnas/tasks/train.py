"""``train.run(cfg)``: train one architecture, keep the best checkpoint, export and verify ONNX."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from hwnas.hardware.cheap import count_params
from hwnas.hardware.export import export_onnx, onnx_matches_torch
from hwnas.lit.fit import fit_candidate, instantiate_dict
from hwnas.search_space.base import SearchSpace
from hwnas.utils.config import build_datamodule, build_space, resolve_arch, run_dir_of

log = logging.getLogger("hwnas.train")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.arch`` (or the space's baseline) and write ``metrics.json``, ``best.ckpt``, ``model.onnx``.

    Returns:
        The metrics dict written to ``<run dir>/metrics.json``.
    """
    run_dir = run_dir_of(cfg)
    space: SearchSpace = build_space(cfg)
    datamodule = build_datamodule(cfg)
    spec = resolve_arch(cfg, space, input_size=datamodule.image_size)
    spec.save(run_dir / "arch.json")
    log.info("training %s (%s) on %s, run dir %s", spec.key, space.name, type(datamodule).__name__, run_dir)

    model = space.build(spec, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels)
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    module, metrics = fit_candidate(
        model,
        datamodule=datamodule,
        tricks=cfg.tricks,
        trainer_cfg=cfg.trainer,
        optim=cfg.optim,
        run_dir=run_dir,
        loggers=loggers or False,
        callbacks=callbacks,
        seed=int(cfg.seed),
    )
    checkpointer = _checkpointer(callbacks)
    if checkpointer is not None:
        state = torch.load(checkpointer.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state)
        metrics["best_checkpoint"] = str(checkpointer.best_model_path)
        if checkpointer.best_model_score is not None:
            metrics["val/miou"] = float(checkpointer.best_model_score)
    model = module.model.eval()
    metrics["params"] = count_params(model)
    metrics["arch_key"] = spec.key

    if cfg.export.onnx:
        shape = datamodule.input_shape(batch_size=1)
        onnx_path = export_onnx(model, shape, run_dir / f"{spec.stem}.onnx", opset=int(cfg.export.opset))
        x = torch.from_numpy(np.stack(datamodule.calibration_batches(1, batch_size=1))[0])
        metrics["onnx_path"] = str(onnx_path)
        metrics["onnx_max_abs_diff"] = onnx_matches_torch(model, onnx_path, x, atol=float(cfg.export.atol))

    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    log.info(
        "val/miou=%.4f val/f1=%.4f params=%d train_seconds=%.1f -> %s",
        metrics.get("val/miou", float("nan")),
        metrics.get("val/f1", float("nan")),
        metrics["params"],
        metrics["train_seconds"],
        run_dir / "metrics.json",
    )
    return metrics


def _checkpointer(callbacks: list[Any]) -> Any | None:
    """The ``ModelCheckpoint`` among the configured callbacks, if one saved a best model."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    return next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.best_model_path), None)

"""``train.run(cfg)``: train one architecture, keep the best checkpoint, measure its latency, export and
verify ONNX."""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from hwnas.callbacks.latency import LatencyCallback
from hwnas.hardware.build import build_profiler
from hwnas.hardware.cheap import count_params
from hwnas.hardware.export import export_onnx, onnx_matches_torch
from hwnas.lit.fit import fit_candidate, instantiate_dict
from hwnas.search_space.base import SearchSpace
from hwnas.utils.config import build_datamodule, build_space, resolve_arch, run_dir_of

log = logging.getLogger("hwnas.train")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.arch`` (or the space's baseline) and write ``metrics.json``, ``best.ckpt``, ``model.onnx``.

    With ``callbacks=default`` the trained model's latency on ``hardware=`` is measured after training and
    logged (``hw/latency_ms`` and the rest of its report, also in ``metrics.json``).

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
    callbacks = _callbacks(cfg, arch_key=spec.key)
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
    latency = next((cb.report for cb in callbacks if isinstance(cb, LatencyCallback)), None)
    if latency is not None:
        metrics.update(latency.as_metrics())
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
        "val/miou=%.4f val/f1=%.4f params=%d train_seconds=%.1f hw/latency_ms=%.3f -> %s",
        metrics.get("val/miou", float("nan")),
        metrics.get("val/f1", float("nan")),
        metrics["params"],
        metrics["train_seconds"],
        metrics.get("hw/latency_ms", float("nan")),
        run_dir / "metrics.json",
    )
    return metrics


def _callbacks(cfg: DictConfig, *, arch_key: str) -> list[Any]:
    """The ``callbacks=`` group's callbacks. A ``_partial_`` one is completed with what this run knows and it
    asks for by name: ``profiler`` (``hardware=``'s, re-measuring, as the final stage does) and ``arch_key``."""
    runtime: dict[str, Any] = {"arch_key": arch_key}
    out = []
    for cb in instantiate_dict(cfg.get("callbacks")):
        if isinstance(cb, functools.partial):
            wanted = inspect.signature(cb).parameters
            if "profiler" in wanted and "profiler" not in runtime:
                runtime["profiler"] = _profiler(cfg)
            cb = cb(**{k: v for k, v in runtime.items() if k in wanted})
        out.append(cb)
    return out


def _profiler(cfg: DictConfig) -> Any:
    """``hardware=``'s profiler, without the search's latency cache (the trained model is measured afresh);
    ``hardware=predictor`` measures with the profiler it wraps (one model: nothing to predict)."""
    profiler = build_profiler(cfg.hardware, cache_dir=None)
    return getattr(profiler, "measurer", profiler)


def _checkpointer(callbacks: list[Any]) -> Any | None:
    """The ``ModelCheckpoint`` among the configured callbacks, if one saved a best model."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    return next((cb for cb in callbacks if isinstance(cb, ModelCheckpoint) and cb.best_model_path), None)

"""One model of the final stage, step by step: full training, ONNX fp32 + int8, held-out test, target latency.

Every step leaves its result on disk under ``<run dir>/final/models/<stem>/`` and the model's row is
written last (``result.json``), so a re-run after a crash (even ``kill -9``) skips finished models,
reuses trained weights, and resumes an interrupted training from its last epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from hwnas.callbacks.progress import Progress
from hwnas.evaluators.train import candidate_seed
from hwnas.final.metrics import ConfusionMatrix
from hwnas.final.predict import evaluate_onnx, evaluate_outputs, evaluate_torch, split_batches
from hwnas.final.settings import FinalSettings
from hwnas.hardware.base import Profiler
from hwnas.hardware.cheap import count_params
from hwnas.hardware.export import export_onnx
from hwnas.hardware.onnxruntime import quantize_int8
from hwnas.lit.fit import fit_candidate
from hwnas.lit.history import EpochHistory
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import build_datamodule, build_space, config_recipe
from hwnas.utils.errors import CandidateFailed, ConfigError
from hwnas.utils.io import read_json, save_state_dict, write_json

log = logging.getLogger("hwnas.final")

#: ``(int8 ONNX path, images [1, C, H, W]) -> (outputs, info)``: runs the int8 model on the real device.
DeviceRunner = Callable[[Path, Sequence[np.ndarray]], tuple[list[np.ndarray], dict[str, Any]]]


@dataclass
class GalleryContext:
    """What every model of the stage shares (built once by ``tasks/final.py``)."""

    cfg: DictConfig
    settings: FinalSettings
    space: SearchSpace
    datamodule: Any
    recipe: dict[str, Any]
    profiler: Profiler | None = None  # None in a training-only worker (final.parallel)
    deploy_shape: tuple[int, ...] = ()
    calibration: list[np.ndarray] = field(default_factory=list)
    device: DeviceRunner | None = None
    device_name: str = ""
    supernet: nn.Module | None = None  # the search's trained supernet, for final.init=inherit
    supernet_key: str = ""

    @property
    def eval_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.datamodule.input_shape(batch_size=1))


def training_context(cfg: DictConfig) -> GalleryContext:
    """The part of the context that full training needs (data, space, recipe): a training worker's."""
    settings = FinalSettings.from_cfg(cfg.final)
    ctx = GalleryContext(
        cfg=cfg,
        settings=settings,
        space=build_space(cfg),
        datamodule=build_datamodule(cfg),
        recipe=training_recipe(cfg, settings),
    )
    return attach_supernet(ctx)


def attach_supernet(ctx: GalleryContext) -> GalleryContext:
    """Load the run's supernet into ``ctx`` when ``final.init`` inherits weights (a clear error if none)."""
    if "inherit" in ctx.settings.inits:
        from hwnas.evaluators.supernet import load_run_supernet

        run_dir = Path(str(ctx.cfg.run_dir))
        ctx.supernet, ctx.supernet_key = load_run_supernet(run_dir, ctx.space)
    return ctx


def model_dir(final_dir: Path, spec: ArchSpec, init: str) -> Path:
    """``<final>/models/<stem>`` (from scratch) or ``<stem>-inherit`` (fine-tuned from the supernet)."""
    return final_dir / "models" / (spec.stem if init == "scratch" else f"{spec.stem}-{init}")


#: Errors that fail one final-stage model (its row carries the reason); anything else is a bug.
MODEL_ERRORS = (CandidateFailed, RuntimeError, ValueError, OSError)


def failure_reason(exc: BaseException) -> str:
    """The ``error`` text of a model that failed with ``exc``."""
    return exc.reason if isinstance(exc, CandidateFailed) else f"{type(exc).__name__}: {exc}"


def training_recipe(cfg: DictConfig, settings: FinalSettings) -> dict[str, Any]:
    """Everything besides the architecture that changes a fully trained model (its fingerprint)."""
    return {
        **config_recipe(cfg, ("tricks", "dataset", "trainer")),
        "final.trainer": settings.trainer,
        "final.optim": settings.optim,
        "seed": settings.seed,
        "init": settings.init,
    }


def fingerprint(ctx: GalleryContext, spec: ArchSpec, init: str = "scratch") -> str:
    extra = {"supernet": ctx.supernet_key, "final.inherit": ctx.settings.inherit} if init == "inherit" else {}
    blob = json.dumps({"arch": spec.key, **ctx.recipe, "init": init, **extra}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def with_seed(ctx: GalleryContext, seed: int | None) -> GalleryContext:
    """``ctx`` training with another seed (initialisation and data order; the data itself is unchanged):
    the baseline's repeat trainings that measure its spread. ``None`` = ``ctx`` itself."""
    if seed is None or seed == ctx.settings.seed:
        return ctx
    settings = dataclasses.replace(ctx.settings, seed=int(seed))
    return dataclasses.replace(ctx, settings=settings, recipe={**ctx.recipe, "seed": int(seed)})


def _cache_entry(ctx: GalleryContext, fp: str) -> Path | None:
    return Path(ctx.settings.cache) / fp if ctx.settings.cache else None


def _restore_cached(ctx: GalleryContext, fp: str, out_dir: Path) -> bool:
    """Copy a finished training of the same fingerprint from ``final.cache`` into ``out_dir``."""
    entry = _cache_entry(ctx, fp)
    info = (read_json(entry / "train.json") or {}) if entry is not None else {}
    if info.get("fingerprint") != fp or not (entry / "weights.pt").is_file():
        return False
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(entry / "weights.pt", out_dir / "weights.pt")
    write_json(out_dir / "train.json", {**info, "from_cache": str(entry)})
    return True


def _store_cached(ctx: GalleryContext, fp: str, out_dir: Path) -> None:
    """Put a finished training into ``final.cache`` (atomically: a half-copied entry is never read)."""
    entry = _cache_entry(ctx, fp)
    if entry is None or entry.exists():
        return
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out_dir / "weights.pt", tmp / "weights.pt")
        shutil.copy2(out_dir / "train.json", tmp / "train.json")  # last: it marks the entry complete
        os.replace(tmp, entry)
    except OSError as exc:  # a full or read-only cache never fails the model
        log.warning("final: could not cache %s in %s: %s", out_dir.name, entry, exc)
        shutil.rmtree(tmp, ignore_errors=True)


def build_model(ctx: GalleryContext, spec: ArchSpec, init: str = "scratch") -> nn.Module:
    """``spec`` freshly initialised, or with the weights it inherits from the search's supernet."""
    torch.manual_seed(candidate_seed(ctx.settings.seed, spec.key))
    if init == "inherit":
        if ctx.supernet is None:
            raise ConfigError("no supernet loaded", key="final.init", fix="use final.init=scratch")
        return ctx.supernet.extract(ctx.space.model_config(spec)).train()
    dm = ctx.datamodule
    return ctx.space.build(spec, num_classes=dm.num_classes, in_channels=dm.in_channels)


def is_trained(ctx: GalleryContext, spec: ArchSpec, out_dir: Path, init: str = "scratch") -> bool:
    """Whether ``out_dir`` holds this model's finished training under the current recipe (copied there from
    ``final.cache`` when an earlier run trained it)."""
    fp = fingerprint(ctx, spec, init)
    info = read_json(out_dir / "train.json") or {}
    if info.get("fingerprint") == fp and (out_dir / "weights.pt").is_file():
        return True
    if _restore_cached(ctx, fp, out_dir):
        log.info(
            "final: %s (seed %d) reuses its finished training from final.cache", spec.key, ctx.settings.seed
        )
        return True
    return False


def train_full(
    ctx: GalleryContext,
    spec: ArchSpec,
    out_dir: Path,
    progress: Progress,
    init: str = "scratch",
    *,
    ddp: int = 1,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``spec`` (from scratch or from inherited weights) with the final settings; reuse finished
    weights, resume an interrupted training.

    ``ddp > 1``: this process is one rank of a DDP group of that many (launched by
    :mod:`hwnas.final.ddp`); every rank trains, rank 0 alone writes the model's files.
    """
    from hwnas.lit import ddp as lit_ddp
    from hwnas.lit.checkpoints import Resume, fit_resumable

    fp = fingerprint(ctx, spec, init)
    model = build_model(ctx, spec, init)
    weights = out_dir / "weights.pt"
    epochs = ctx.settings.epochs_for(init)
    if is_trained(ctx, spec, out_dir, init):  # read after: a copy from final.cache writes train.json
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model, {**(read_json(out_dir / "train.json") or {}), "reused": True}
    # one checkpoint mechanism for every long training: last.ckpt each epoch, RNG states, pre-emption
    resume = Resume(out_dir / "resume", fp, every_n_epochs=1, keep=1, label=f"final {spec.key}")
    overrides = {
        **ctx.settings.trainer_for(init),
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    agree = lit_ddp.RanksAgree() if ddp > 1 else None
    history = EpochHistory()
    if ddp > 1:
        overrides |= lit_ddp.trainer_kwargs(ddp)
    resumed = False

    def fit(ckpt: Path | None) -> tuple[Any, dict[str, float]]:
        nonlocal model, resumed
        if ckpt is None and resumed:  # the checkpoint could not be read: a fresh model
            model = build_model(ctx, spec, init)
        resumed = ckpt is not None
        return fit_candidate(
            model,
            datamodule=ctx.datamodule,
            tricks=ctx.cfg.tricks,
            trainer_cfg=ctx.cfg.trainer,
            optim=ctx.settings.optim_for(init),
            run_dir=out_dir / "lightning",
            loggers=False,
            callbacks=[
                *resume.callbacks(),
                history,
                progress.callback(spec.key),
                *([agree] if agree else []),
            ],
            seed=candidate_seed(ctx.settings.seed, spec.key),
            overrides=overrides,
            ckpt_path=ckpt,
        )

    module, metrics = fit_resumable(resume, fit)
    model = module.model.cpu().eval()
    if module.global_rank != 0:  # another rank of a DDP group: rank 0 writes the (identical) model
        return model, {"rank": module.global_rank}
    save_state_dict(model, weights)
    info = {
        "fingerprint": fp,
        "arch_key": spec.key,
        "val_miou": metrics.get("val/miou"),
        "val_acc": metrics.get("val/acc"),  # top-1 for classifiers (final.csv's val_acc)
        "train_seconds": round(float(metrics.get("train_seconds", float("nan"))), 2),
        "epochs": epochs,
        "init": init,
        "resumed": resumed,
        "history": history.history,  # per-epoch curves, drawn by the run's loggers (TensorBoard, W&B)
    }
    if agree is not None:
        info["ddp"] = {
            "processes": int(metrics["world_size"]),
            "backend": lit_ddp.backend(),
            "steps": int(metrics["steps"]),
            "rank_weights": agree.digests,
        }
    write_json(out_dir / "train.json", info)
    _store_cached(ctx, fp, out_dir)
    resume.done()
    shutil.rmtree(out_dir / "lightning", ignore_errors=True)
    return model, {**info, "reused": False}


def _shape_tag(shape: Sequence[int]) -> str:
    return f"{int(shape[-2])}x{int(shape[-1])}"


def export_pair(
    ctx: GalleryContext, model: nn.Module, out_dir: Path, shape: tuple[int, ...]
) -> tuple[Path, Path]:
    """fp32 ONNX and its int8 QDQ twin (U8S8, calibrated on training images) at ``shape``."""
    fp32 = export_onnx(model, shape, out_dir / f"model_{_shape_tag(shape)}.onnx")
    int8 = quantize_int8(
        fp32,
        ctx.calibration,
        input_shape=shape,
        per_channel=ctx.settings.per_channel,
        calibration_method=ctx.settings.calibration_method,
        reduce_range=ctx.settings.reduce_range,
    )
    return fp32, int8


def evaluate(ctx: GalleryContext, model: nn.Module, out_dir: Path) -> dict[str, Any]:
    """Test-split mIoU / F1 / accuracy for torch fp32, ONNX fp32 and ONNX int8 (and the device, when there
    is one). F1 averages over the datamodule's ``f1_classes`` (faces: 1-17; classification: every class)."""
    dm, k, bs = ctx.datamodule, int(ctx.datamodule.num_classes), ctx.settings.eval_batch_size
    kw: dict[str, Any] = {"num_classes": k, "f1_classes": getattr(dm, "f1_classes", None)}
    fp32, int8 = export_pair(ctx, model, out_dir, ctx.eval_shape)
    cms: dict[str, ConfusionMatrix] = {
        "torch": evaluate_torch(model, split_batches(dm, "test", batch_size=bs), **kw),
        "onnx_fp32": evaluate_onnx(fp32, split_batches(dm, "test", batch_size=bs), **kw),
        "int8": evaluate_onnx(int8, split_batches(dm, "test", batch_size=bs), **kw),
    }
    out: dict[str, Any] = {"n_test": int(len(dm.split("test")))}
    for name, cm in cms.items():
        out |= cm.summary(prefix=f"{name}/")
    out["f1_source"] = "host-int8"
    out["f1"] = out["int8/f1"]
    if ctx.device is not None:
        images, targets = [], []
        for x, y in split_batches(dm, "test", batch_size=bs):
            images += [x[i : i + 1] for i in range(len(x))]
            targets += [y[i : i + 1] for i in range(len(y))]
        if ctx.settings.max_images:
            images, targets = images[: ctx.settings.max_images], targets[: ctx.settings.max_images]
        outputs, info = ctx.device(int8, images)
        cm = evaluate_outputs(outputs, targets, **kw)
        out |= cm.summary(prefix="device/")
        out |= {"f1": out["device/f1"], "f1_source": f"device ({ctx.device_name})", "device_jobs": info}
    files = {"onnx_fp32": fp32, "onnx_int8": int8}
    if tuple(ctx.deploy_shape[1:]) != tuple(ctx.eval_shape[1:]):
        files["deploy_onnx_fp32"], files["deploy_onnx_int8"] = export_pair(
            ctx, model, out_dir, ctx.deploy_shape
        )
    out["files"] = {k: str(v) for k, v in files.items()}
    return out


def params_of(model: nn.Module) -> int:
    return int(count_params(model))

"""``evaluator=train``: latency and cheap metrics first, then partial training of feasible candidates."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from hwnas.data.base import normalize_batch, parse_image_size
from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.rungs import Rung
from hwnas.evaluators.zero_cost import zero_cost
from hwnas.hardware.base import LatencyReport
from hwnas.hardware.build import build_profiler, calibration_for, input_shape_for
from hwnas.hardware.cheap import cheap_metrics
from hwnas.hardware.export import export_onnx
from hwnas.lit.fit import channels_last_of, fit_candidate
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import build_datamodule
from hwnas.utils.devices import free_memory, is_oom
from hwnas.utils.errors import CandidateFailed, ConfigError, InvalidArchError
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.search")


def candidate_seed(seed: int, key: str) -> int:
    """A per-architecture seed: the same candidate trains identically whatever order it comes in."""
    return (int(seed) * 1_000_003 + int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)) % (2**31 - 1)


def _x(dims: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in dims)


def _latency_metrics(report: LatencyReport) -> dict[str, Any]:
    """``hw/*`` metrics of ``report``; a latency-cache hit says where the cached latency came from."""
    metrics: dict[str, Any] = {**report.as_metrics(), "hw/cache_hit": report.source == "cached"}
    if report.source == "cached":
        metrics["hw/source"] = report.extra.get("original_source", "cached")
    return metrics


def check_size(space: SearchSpace, size: tuple[int, ...], *, key: str, fix: str) -> None:
    """Refuse a training or profiling size the space rejects (e.g. not a multiple of 32): it would fail
    every trial. A space's size rules do not depend on the architecture, so one valid architecture tells."""
    size = (int(size[-2]), int(size[-1]))
    spec = space.sample(np.random.default_rng(0))
    try:
        space.validate(spec, input_size=size)
    except InvalidArchError as exc:
        divisor = getattr(space, "divisor", None)
        hint = f"use a multiple of {divisor}" if divisor else "use a size the search space accepts"
        raise ConfigError(
            f"search_space={space.name} cannot run at {_x(size)}: {exc.message}",
            key=key,
            fix=f"{hint}; {fix}",
        ) from exc


class TrainingEvaluator(Evaluator):
    """Profiles each candidate on the hardware target, then trains it for a few epochs.

    Training always runs at the dataset's image size; latency is measured at the profiler's input
    shape, which is the dataset's size unless ``hardware.input_size`` says otherwise (e.g. train on
    64x64 images, measure at the 256x256 deployment resolution). ``params``/``macs``/``flops``/
    ``peak_act_mb`` are counted at the profiled shape, like the latency, and the front's ONNX files
    are exported at it. Every trial records both sizes (columns of ``trials.csv``):

    * ``train_image_size``: ``"HxW"`` the candidate was trained (and validated) at, e.g. ``"64x64"``.
    * ``hw/input_shape``: ``"BxCxHxW"`` the latency (and the counts above) refer to, e.g.
      ``"1x3x256x256"``.

    ``sizes()`` gives the same two as lists for ``summary.json``.

    Args:
        max_epochs: Partial-training epochs per candidate.
        limit_train_batches: Fraction (≤1.0) or number of training batches per epoch.
        limit_val_batches: Fraction or number of validation batches.
        keep_weights: Keep every candidate's weights (else only the final front's are kept).
        latency_cache: Use the on-disk latency cache (a re-run never re-profiles the same model).
        oom_retry: After an out-of-memory error, train the candidate once more at half the batch (the
            trial records ``oom_retry_batch``); else the trial fails with reason ``out of memory``.
        image_size: Resolution of the proxy training and validation (``None`` = the dataset's). A lower
            one buys more training steps for the same time; ``make bench-proxy`` measured 3 epochs x 32
            batches at 32x32 ranking architectures like full 64x64 training far better than 1 x 32 at
            64x64 (Kendall tau 0.88 vs 0.67). Latency is measured at ``hardware.input_size`` regardless.
    """

    promotable = True  # a candidate can train on from its weights (search.fidelity's rungs)

    cheap_metrics = ("params", "macs", "flops", "peak_act_mb", "hw/latency_ms")
    expensive_metrics = ("val/miou", "val/f1", "val/acc", "val/loss", "train_seconds")

    def __init__(
        self,
        *,
        max_epochs: int = 2,
        limit_train_batches: float | int = 1.0,
        limit_val_batches: float | int = 1.0,
        keep_weights: bool = False,
        latency_cache: bool = True,
        image_size: Any = None,
        oom_retry: bool = False,
    ) -> None:
        if not isinstance(oom_retry, bool):
            raise ConfigError(
                f"must be true or false, got {oom_retry!r}", key="evaluator.oom_retry", choices=(True, False),
                fix="evaluator.oom_retry=true (retry once at half the batch) or false",
            )  # fmt: skip
        self.oom_retry = oom_retry
        if int(max_epochs) < 1:
            raise ConfigError(f"must be >= 1, got {max_epochs}", key="evaluator.max_epochs")
        self.max_epochs = int(max_epochs)
        self.limit_train_batches = limit_train_batches
        self.limit_val_batches = limit_val_batches
        self.keep_weights = bool(keep_weights)
        self.latency_cache = bool(latency_cache)
        self.image_size = (
            None if image_size is None else parse_image_size(image_size, key="evaluator.image_size")
        )

    def setup(self, *, cfg: DictConfig, space: SearchSpace, run_dir: Path) -> None:
        self.cfg = cfg
        self.space = space
        self.run_dir = run_dir
        self.weights_dir = run_dir / "weights"
        channels_last_of(cfg.tricks)  # an unknown memory format would fail every candidate: refuse now
        self.datamodule = build_datamodule(cfg)
        self._datamodules: dict[tuple[int, ...], Any] = {}
        self.train_datamodule = self._proxy_datamodule(cfg)
        cache_dir = Path(cfg.paths.cache_dir) / "latency" if self.latency_cache else None
        self.profiler = build_profiler(cfg.hardware, cache_dir=cache_dir)
        self.profiler.check()
        self.train_size = tuple(int(d) for d in self.train_datamodule.image_size)
        self.input_shape = input_shape_for(self.profiler, self.datamodule)
        self._check_size(
            tuple(self.datamodule.image_size),
            key="dataset.image_size",
            fix="e.g. dataset.image_size=64",
        )
        self._check_size(
            self.train_size,
            key="evaluator.image_size",
            fix="e.g. evaluator.image_size=32, or null to train at the dataset's size",
        )
        self._check_size(
            tuple(self.input_shape[-2:]),
            key="hardware.input_size",
            fix="e.g. hardware.input_size=256, or null to profile at the dataset's size",
        )
        self.calibration = calibration_for(self.profiler, self.datamodule)
        log.info(
            "hardware: %s; training at %s, latency at input %s",
            self.profiler.describe(),
            _x(self.train_size),
            _x(self.input_shape),
        )

    def _proxy_datamodule(self, cfg: DictConfig, image_size: Any = "proxy") -> Any:
        """The datamodule the proxy trains on: the dataset's own, or the same data at ``image_size`` (the
        evaluator's own by default; a promotion rung may name another)."""
        size = self.image_size if image_size == "proxy" else image_size
        if size is None or tuple(size) == tuple(self.datamodule.image_size):
            return self.datamodule
        if tuple(size) in self._datamodules:
            return self._datamodules[tuple(size)]
        small = cfg.copy()
        with open_dict(small):
            small.dataset.image_size = list(size)
        self._datamodules[tuple(size)] = build_datamodule(small)
        return self._datamodules[tuple(size)]

    def _check_size(self, size: tuple[int, ...], *, key: str, fix: str) -> None:
        check_size(self.space, size, key=key, fix=fix)

    def _build(self, spec: ArchSpec) -> torch.nn.Module:
        self.space.validate(spec, input_size=tuple(self.datamodule.image_size))
        self.space.validate(spec, input_size=self.train_size)
        torch.manual_seed(candidate_seed(int(self.cfg.seed), spec.key))
        return self.space.build(
            spec, num_classes=self.datamodule.num_classes, in_channels=self.datamodule.in_channels
        )

    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        model = self._build(spec).eval()
        metrics: dict[str, Any] = {
            "train_image_size": _x(self.train_size),
            "hw/input_shape": _x(self.input_shape),
        }
        metrics.update(cheap_metrics(model, self.input_shape))
        report = self.profiler.profile(
            model, self.input_shape, calibration=self.calibration, arch_key=spec.key
        )
        metrics.update(_latency_metrics(report))
        return metrics

    @property
    def confirms_near_front(self) -> bool:
        return bool(getattr(self.profiler, "measure_near_front", False))

    def confirm(self, spec: ArchSpec) -> dict[str, Any] | None:
        """Measure ``spec``'s predicted latency with the predictor's measuring profiler (its budget)."""
        report = self.profiler.confirm(  # type: ignore[attr-defined] - a PredictorProfiler
            self._build(spec).eval(), self.input_shape, arch_key=spec.key, calibration=self.calibration
        )
        return None if report is None else _latency_metrics(report)

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        try:
            return self._train(spec)
        except Exception as exc:
            if not (self.oom_retry and is_oom(exc)):
                raise
        free_memory()  # outside the handler: the traceback no longer holds the failed training's tensors
        dm = self.train_datamodule
        full = int(dm.batch_size)
        dm.batch_size = max(1, full // 2)
        log.warning(
            "%s: out of memory at batch %d; evaluator.oom_retry: once more at %d",
            spec.key,
            full,
            dm.batch_size,
        )
        try:
            return {**self._train(spec), "oom_retry_batch": dm.batch_size}
        finally:
            dm.batch_size = full

    def _train(self, spec: ArchSpec, rung: Rung | None = None) -> dict[str, Any]:
        model = self._build(spec)
        epochs, batches, dm = self.max_epochs, self.limit_train_batches, self.train_datamodule
        optim = OmegaConf.to_container(self.cfg.optim, resolve=True)
        if rung is not None:  # a promotion: the previous rung's weights, trained on with the rung's settings
            weights = self.weights_dir / f"{spec.stem}.pt"
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            epochs, batches = rung.max_epochs, rung.limit_train_batches
            dm = self._proxy_datamodule(self.cfg, rung.image_size)
            optim = {**optim, **({"lr": rung.lr} if rung.lr is not None else {})}
        overrides = {
            "max_epochs": epochs,
            "limit_train_batches": batches,
            "limit_val_batches": self.limit_val_batches,
            "check_val_every_n_epoch": epochs,  # only the last validation is used
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        }
        module, metrics = fit_candidate(
            model,
            datamodule=dm,
            tricks=self.cfg.tricks,
            trainer_cfg=self.cfg.trainer,
            optim=optim,
            run_dir=self.run_dir / "lightning",
            loggers=False,
            callbacks=[],
            seed=candidate_seed(int(self.cfg.seed), spec.key) + (0 if rung is None else rung.index),
            overrides=overrides,
        )
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        torch.save(module.model.state_dict(), self.weights_dir / f"{spec.stem}.pt")
        return {k: v for k, v in metrics.items() if k in self.expensive_metrics or k.startswith("val/")}

    def promote(self, spec: ArchSpec, rung: Rung) -> dict[str, Any]:
        """Train ``spec`` on from the weights of its previous rung (rung 0: :meth:`expensive`) with
        ``rung``'s settings, the multi-fidelity schedule's promotion (``search.fidelity``). A finished
        promotion is kept beside the weights (``<stem>.r<i>.pt``/``.json``): a trial re-run after a crash
        retrains its rung 0, then reuses the promotions it had finished and trains the interrupted one
        again from the start of that rung."""
        done = self.weights_dir / f"{spec.stem}.r{rung.index}.json"
        weights = self.weights_dir / f"{spec.stem}.pt"
        kept = self.weights_dir / f"{spec.stem}.r{rung.index}.pt"
        if done.is_file() and kept.is_file():
            shutil.copy2(kept, weights)
            return read_json(done) or {}
        metrics = self._train(spec, rung)
        shutil.copy2(weights, kept)
        write_json(done, metrics)
        return metrics

    def zero_cost(self, spec: ArchSpec, name: str, *, batch_size: int = 16) -> float:
        """Zero-cost score ``name`` (:mod:`hwnas.evaluators.zero_cost`) of the untrained ``spec`` on the
        first ``batch_size`` training images at the proxy's size (the same batch for every candidate)."""
        if not hasattr(self, "_zc_batch"):
            dm = self.train_datamodule
            dm.setup("fit")
            ds = dm.split("train")
            pairs = [ds.raw(i) for i in range(min(batch_size, len(ds)))]
            images = normalize_batch(np.stack([p[0] for p in pairs]))
            self._zc_batch = (images, torch.as_tensor(np.stack([p[1] for p in pairs])).long())
        return zero_cost(name, self._build(spec), self._zc_batch)

    def export(self, spec: ArchSpec, out_dir: Path) -> dict[str, str]:
        weights = self.weights_dir / f"{spec.stem}.pt"
        if not weights.is_file():
            raise CandidateFailed(f"no trained weights for {spec.key} (was it trained in this run dir?)")
        model = self._build(spec)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        onnx_path = export_onnx(model.eval(), self.input_shape, out_dir / f"{spec.stem}.onnx")
        return {"onnx": str(onnx_path), "weights": str(weights)}

    def sizes(self) -> dict[str, Any]:
        return {"train_image_size": list(self.train_size), "latency_input_shape": list(self.input_shape)}

    def prune_weights(self, keep: set[str]) -> None:
        """Delete weights of candidates not in ``keep`` (the front), unless ``keep_weights``."""
        if self.keep_weights or not self.weights_dir.is_dir():
            return
        for path in self.weights_dir.glob("*.pt"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)

    def describe(self) -> str:
        return (
            f"train {self.max_epochs} epoch(s) x {self.limit_train_batches} batches per candidate at "
            f"{_x(self.train_size)} after {self.profiler.describe()}"
        )

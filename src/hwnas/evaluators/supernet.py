"""``evaluator=supernet``: one weight-sharing supernet trained once; each candidate scored with inherited weights.

At set-up the supernet of the search space's ranges is trained with the sandwich rule (or loaded: from
the run dir on a resume, else from the cache under ``paths.cache_dir/supernet`` keyed by the space's
ranges, the data, the tricks and the supernet's training settings, so neither a re-run nor a resumed
search retrains it). ``cheap(spec)`` is the training evaluator's (latency on the target, counts);
``expensive(spec)`` extracts the sub-network, re-estimates its BatchNorm statistics on a few training
batches and scores it on the validation split: a fraction of a second instead of a training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from hwnas.data.base import normalize_batch
from hwnas.data.labels import IGNORE_INDEX
from hwnas.evaluators.train import TrainingEvaluator
from hwnas.hardware.export import export_onnx
from hwnas.lit.candidate import segmentation_metrics
from hwnas.lit.checkpoints import resume_for
from hwnas.lit.fit import channels_last_of
from hwnas.lit.supernet import SUPERNET_VERSION, fit_supernet
from hwnas.models.elastic_hourglass import KERNEL_MODES, recalibrate_bn
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import config_recipe
from hwnas.utils.errors import CandidateFailed, ConfigError
from hwnas.utils.io import read_json, save_state_dict, write_json

log = logging.getLogger("hwnas.search")

#: Where a search run keeps the supernet it used (the final stage's ``final.init=inherit`` reads it).
RUN_SUBDIR = "supernet"


def _supernet_factory(space: SearchSpace) -> Any:
    """``space.supernet``; a clear error for a space that has none."""
    make = getattr(space, "supernet", None)
    if make is None:
        raise ConfigError(
            f"search_space={space.name} has no weight-sharing supernet",
            key="evaluator",
            fix="use evaluator=train (partial training) with this space, or search_space=hourglass",
        )
    return make


def supernet_of(
    space: SearchSpace, *, num_classes: int, in_channels: int, kernel_mode: str
) -> torch.nn.Module:
    """The space's untrained supernet; a clear error for a space that has none."""
    return _supernet_factory(space)(num_classes=num_classes, in_channels=in_channels, kernel_mode=kernel_mode)


def load_run_supernet(run_dir: Path, space: SearchSpace) -> tuple[torch.nn.Module, str]:
    """``(supernet, its key)``: the trained supernet a search run used (``<run dir>/supernet/``)."""
    meta = read_json(run_dir / RUN_SUBDIR / "supernet.json")
    weights = run_dir / RUN_SUBDIR / "supernet.pt"
    if not meta or not weights.is_file():
        raise ConfigError(
            f"{run_dir} holds no trained supernet (it was not searched with evaluator=supernet)",
            key="final.init",
            fix="use final.init=scratch for this run",
        )
    net = supernet_of(
        space,
        num_classes=meta["num_classes"],
        in_channels=meta["in_channels"],
        kernel_mode=meta["kernel_mode"],
    )
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval(), str(meta["key"])


class SupernetEvaluator(TrainingEvaluator):
    """Scores candidates with weights inherited from a supernet trained once (Once-for-All, BigNAS).

    Args:
        max_epochs: Supernet training epochs (each step trains 2 + ``n_random`` sub-networks).
        limit_train_batches: Batches per epoch (int) or a fraction of the training set.
        limit_val_batches: Validation batches (int, of ``dataset.batch_size``) or fraction scoring a candidate.
        n_random: Random sub-networks per step besides the largest and the smallest (sandwich rule).
        distill: Weight of in-place distillation from the largest sub-network (0 = labels only).
        kernel_mode: ``shared`` (smaller kernels are centres of the largest) or ``separate`` weights.
        lr: AdamW learning rate of the supernet training.
        calibration_batches: Training batches (of ``calibration_batch_size``) that re-estimate a
            sub-network's BatchNorm statistics before it is scored.
        calibration_batch_size: Images per calibration batch.
        image_size: Resolution of supernet training and scoring (``None`` = the dataset's).
        keep_weights: Keep every scored candidate's extracted weights (else only the front's).
        latency_cache: Use the on-disk latency cache.
        cache: Reuse a supernet trained before under the same settings (``paths.cache_dir/supernet``).
    """

    promotable = False  # scores inherit the supernet's weights: no candidate training to extend

    expensive_metrics = ("val/miou", "val/f1", "val/acc", "val/loss", "score_seconds")
    shares_weights = True

    def __init__(
        self,
        *,
        max_epochs: int = 6,
        limit_train_batches: float | int = 1.0,
        limit_val_batches: float | int = 1.0,
        n_random: int = 2,
        distill: float = 1.0,
        kernel_mode: str = "shared",
        lr: float = 0.004,
        calibration_batches: int = 2,
        calibration_batch_size: int = 32,
        image_size: Any = None,
        keep_weights: bool = False,
        latency_cache: bool = True,
        cache: bool = True,
    ) -> None:
        super().__init__(
            max_epochs=max_epochs,
            limit_train_batches=limit_train_batches,
            limit_val_batches=limit_val_batches,
            keep_weights=keep_weights,
            latency_cache=latency_cache,
            image_size=image_size,
        )
        if kernel_mode not in KERNEL_MODES:
            raise ConfigError(
                f"unknown value {kernel_mode!r}", key="evaluator.kernel_mode", choices=KERNEL_MODES,
                fix="evaluator.kernel_mode=shared (smaller kernels are centres of the largest) or separate",
            )  # fmt: skip
        for key, value in (("n_random", n_random), ("calibration_batches", calibration_batches)):
            if int(value) < 0:
                raise ConfigError(f"must be >= 0, got {value}", key=f"evaluator.{key}")
        if int(calibration_batch_size) < 1:
            raise ConfigError(
                f"must be >= 1, got {calibration_batch_size}", key="evaluator.calibration_batch_size"
            )
        self.n_random = int(n_random)
        self.distill = float(distill)
        self.kernel_mode = kernel_mode
        self.lr = float(lr)
        self.calibration_batches = int(calibration_batches)
        self.calibration_batch_size = int(calibration_batch_size)
        self.use_cache = bool(cache)

    # -- set-up: train the supernet once, or load it ----------------------------------------------
    def setup(self, *, cfg: DictConfig, space: SearchSpace, run_dir: Path) -> None:
        _supernet_factory(space)  # a space without one is refused before the data is drawn
        super().setup(cfg=cfg, space=space, run_dir=run_dir)
        dm = self.train_datamodule
        torch.manual_seed(int(cfg.seed))  # its initial weights: the same command trains the same supernet
        self.supernet = supernet_of(
            space, num_classes=dm.num_classes, in_channels=dm.in_channels, kernel_mode=self.kernel_mode
        )
        self.recipe = self._recipe(cfg)
        self.key = hashlib.sha256(json.dumps(self.recipe, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]
        self._load_or_train(cfg, run_dir)
        self.supernet.eval()
        self._calib = [
            torch.from_numpy(b)
            for b in dm.calibration_batches(
                self.calibration_batches, self.calibration_batch_size, split="train"
            )
        ]
        val = dm.split("val")
        n_val = len(val)
        lim = self.limit_val_batches
        if isinstance(lim, int) and not isinstance(lim, bool):
            n_val = min(n_val, lim * int(dm.batch_size))
        else:
            n_val = max(1, int(round(float(lim) * n_val)))
        pairs = [val.raw(i) for i in range(n_val)]
        self._val_x = normalize_batch(np.stack([p[0] for p in pairs]))
        self._val_y = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64))
        self.channels_last = channels_last_of(cfg.tricks)
        if self.channels_last:  # NHWC inference: a third faster here, same numbers up to rounding
            self._calib = [b.contiguous(memory_format=torch.channels_last) for b in self._calib]
            self._val_x = self._val_x.contiguous(memory_format=torch.channels_last)

    def _recipe(self, cfg: DictConfig) -> dict[str, Any]:
        return {
            "space": dataclasses.asdict(self.space.ranges()),
            "classes": [int(self.train_datamodule.num_classes), int(self.train_datamodule.in_channels)],
            **config_recipe(cfg, ("dataset", "tricks", "trainer", "seed")),
            "train_size": list(self.train_size),
            "supernet": {
                "epochs": self.max_epochs,
                "batches": self.limit_train_batches,
                "n_random": self.n_random,
                "distill": self.distill,
                "kernel_mode": self.kernel_mode,
                "lr": self.lr,
                "weight_decay": float(cfg.optim.weight_decay),
            },
            "torch": torch.__version__.split("+")[0],
            "version": SUPERNET_VERSION,  # the training code's own version: older supernets are not reused
        }

    def _load_or_train(self, cfg: DictConfig, run_dir: Path) -> None:
        here = run_dir / RUN_SUBDIR
        cache = Path(cfg.paths.cache_dir) / "supernet" / self.key if self.use_cache else None
        for place in (here, cache):
            if place is not None and (read_json(place / "supernet.json") or {}).get("key") == self.key:
                try:
                    state = torch.load(place / "supernet.pt", map_location="cpu", weights_only=True)
                    self.supernet.load_state_dict(state)
                except (OSError, RuntimeError) as exc:
                    log.warning("supernet at %s unreadable (%s); not used", place, exc)
                    continue
                log.info("supernet %s loaded from %s (not retrained)", self.key, place)
                if place != here:
                    self._store(here, read_json(place / "supernet.json"))
                return
        log.info(
            "supernet %s: training %d epoch(s) x %s batches at %s, sandwich of %d sub-networks per step "
            "(kernels %s); cached under %s",
            self.key, self.max_epochs, self.limit_train_batches, "x".join(map(str, self.train_size)),
            2 + self.n_random, self.kernel_mode, cache or "(no cache)",
        )  # fmt: skip
        self.train_datamodule.setup("fit")
        # checkpoints beside the cache entry (the same command resumes them), never its supernet.json
        resume = resume_for(cfg, (cache or here) / "resume", self.key, f"supernet {self.key}")
        stats = fit_supernet(
            self.supernet,
            datamodule=self.train_datamodule,
            tricks=self.cfg.tricks,
            trainer_cfg=self.cfg.trainer,
            optim={"lr": self.lr, "weight_decay": float(cfg.optim.weight_decay)},
            run_dir=str(run_dir / "lightning"),
            max_epochs=self.max_epochs,
            limit_train_batches=self.limit_train_batches,
            n_random=self.n_random,
            distill=self.distill,
            seed=int(cfg.seed),
            resume=resume,
        )
        meta = {
            "key": self.key,
            "num_classes": int(self.train_datamodule.num_classes),
            "in_channels": int(self.train_datamodule.in_channels),
            "kernel_mode": self.kernel_mode,
            "train_seconds": round(stats["train_seconds"], 1),
            "loss_largest": stats.get("train/loss_largest"),
            "loss_smallest": stats.get("train/loss_smallest"),
            "recipe": self.recipe,
        }
        log.info(
            "supernet trained in %.0fs: loss largest %.3f, smallest %.3f",
            stats["train_seconds"], meta["loss_largest"] or float("nan"), meta["loss_smallest"] or float("nan"),
        )  # fmt: skip
        self._store(here, meta)
        if cache is not None:
            self._store(cache, meta)
        resume.done()

    def _store(self, place: Path, meta: dict[str, Any]) -> None:
        """Weights first, then the JSON that says they are complete (a kill in between leaves no key)."""
        save_state_dict(self.supernet, place / "supernet.pt")
        write_json(place / "supernet.json", meta)

    # -- scoring ----------------------------------------------------------------------------------
    def subnet(self, spec: ArchSpec) -> torch.nn.Module:
        """``spec`` with inherited weights and BatchNorm statistics re-estimated (eval mode)."""
        self.space.validate(spec, input_size=self.train_size)
        model = self.supernet.extract(self.space.model_config(spec))
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return recalibrate_bn(model, self._calib)

    @torch.inference_mode()
    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        t0 = time.perf_counter()
        model = self.subnet(spec)
        metrics = segmentation_metrics(int(self.train_datamodule.num_classes))
        losses = []
        for start in range(0, len(self._val_x), 64):
            x, y = self._val_x[start : start + 64], self._val_y[start : start + 64]
            logits = model(x)
            losses.append(
                float(torch.nn.functional.cross_entropy(logits, y, ignore_index=IGNORE_INDEX)) * len(x)
            )
            metrics.update(logits.argmax(dim=1), y)
        out = {k: float(v) for k, v in metrics.compute().items()}
        model = model.to(memory_format=torch.contiguous_format)
        if not np.isfinite(out["val/miou"]):
            raise CandidateFailed("inherited weights gave a non-finite val/miou")
        out["val/loss"] = sum(losses) / len(self._val_x)
        if self.keep_weights:  # else only the front's, written by export() (re-extraction is exact)
            self._save(model, spec)
        out["score_seconds"] = time.perf_counter() - t0
        return out

    def _save(self, model: torch.nn.Module, spec: ArchSpec) -> Path:
        return save_state_dict(model, self.weights_dir / f"{spec.stem}.pt")

    def export(self, spec: ArchSpec, out_dir: Path) -> dict[str, str]:
        """The inherited sub-network (BatchNorm re-estimated, as scored) as weights and ONNX."""
        with torch.no_grad():
            model = self.subnet(spec).to(memory_format=torch.contiguous_format)
        weights = self._save(model, spec)
        onnx_path = export_onnx(model.eval(), self.input_shape, out_dir / f"{spec.stem}.onnx")
        return {"onnx": str(onnx_path), "weights": str(weights)}

    def prune_weights(self, keep: set[str]) -> None:
        super().prune_weights(keep)
        shutil.rmtree(self.run_dir / "lightning", ignore_errors=True)

    def describe(self) -> str:
        return (
            f"supernet {self.key} ({self.kernel_mode} kernels, {self.max_epochs} epochs at "
            f"{'x'.join(map(str, self.train_size))}); inherited weights + BN re-estimated on "
            f"{self.calibration_batches}x{self.calibration_batch_size} images, after {self.profiler.describe()}"
        )

"""The final stage's settings: the ``final`` config node, checked once at start-up.

Every bad value is refused here with the key, the valid choices and the fix, before anything is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hwnas.hardware.onnxruntime import CALIBRATION_METHODS, u8s8_saturates
from hwnas.utils.errors import ConfigError

INITS = ("scratch", "inherit", "both")


@dataclass(frozen=True)
class FinalSettings:
    """The ``final`` config node, checked once at start-up (errors name the key and the fix)."""

    top_k: int
    baseline: bool
    init: str
    seed: int
    trainer: dict[str, Any]
    optim: dict[str, Any]
    inherit: dict[str, Any]
    calibration_batches: int
    calibration_method: str
    per_channel: bool
    reduce_range: bool
    eval_batch_size: int
    device_enabled: str
    jobs: int | None
    chunk_size: int
    max_images: int | None
    budgets: list[float] | None
    ddp_processes: int = 1
    baseline_seeds: int = 3
    cache: str | None = None

    @property
    def inits(self) -> tuple[str, ...]:
        """How each picked model is initialised: ``("scratch",)``, ``("inherit",)`` or both (``final.init``)."""
        return ("inherit", "scratch") if self.init == "both" else (self.init,)

    @property
    def epochs(self) -> int:
        """Full-training epochs per model from scratch (``final.trainer.max_epochs``)."""
        return int(self.trainer.get("max_epochs", 1))

    def trainer_for(self, init: str) -> dict[str, Any]:
        """Trainer overrides of a model trained ``init``-wise (``final.inherit.max_epochs`` fine-tunes)."""
        if init != "inherit" or "max_epochs" not in self.inherit:
            return dict(self.trainer)
        epochs = int(self.inherit["max_epochs"])
        out = dict(self.trainer, max_epochs=epochs)
        if "check_val_every_n_epoch" in out:
            out["check_val_every_n_epoch"] = epochs
        return out

    def optim_for(self, init: str) -> dict[str, Any]:
        """Optimizer settings of a model trained ``init``-wise (``final.inherit.lr`` fine-tunes)."""
        extra = (
            {k: v for k, v in self.inherit.items() if k in ("lr", "weight_decay")}
            if init == "inherit"
            else {}
        )
        return {**self.optim, **extra}

    def epochs_for(self, init: str) -> int:
        return int(self.trainer_for(init).get("max_epochs", 1))

    @classmethod
    def from_cfg(cls, node: DictConfig) -> FinalSettings:
        d = OmegaConf.to_container(node, resolve=True)
        assert isinstance(d, dict)

        def positive(key: str, value: Any) -> int:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"must be a positive integer, got {value!r}",
                    key=f"final.{key}",
                    fix=f"set final.{key} to 1 or more (see conf/final/default.yaml)",
                )
            return value

        init = str(d.get("init", "scratch"))
        if init not in INITS:
            raise ConfigError(
                f"unknown value {init!r}", key="final.init", choices=INITS,
                fix="final.init=scratch, or with evaluator=supernet inherit (fine-tune supernet weights) or both",
            )  # fmt: skip
        int8 = dict(d.get("int8") or {})
        method = str(int8.get("calibration_method", "minmax"))
        if method not in CALIBRATION_METHODS:
            raise ConfigError(
                f"unknown value {method!r}", key="final.int8.calibration_method", choices=CALIBRATION_METHODS
            )
        reduce_range = str(int8.get("reduce_range", "auto")).lower()
        if reduce_range not in ("auto", "true", "false"):
            raise ConfigError(
                f"unknown value {reduce_range!r}",
                key="final.int8.reduce_range",
                choices=("auto", True, False),
            )
        device = dict(d.get("device") or {})
        enabled = str(device.get("enabled", "auto")).lower()
        if enabled not in ("auto", "true", "false"):
            raise ConfigError(
                f"unknown value {enabled!r}", key="final.device.enabled", choices=("auto", True, False)
            )
        trainer = dict(d.get("trainer") or {})
        positive("trainer.max_epochs", trainer.get("max_epochs", 1))
        inherit = dict(d.get("inherit") or {})
        unknown = sorted(set(inherit) - {"max_epochs", "lr", "weight_decay"})
        if unknown:
            raise ConfigError(
                f"unknown key(s) {unknown}", key="final.inherit", choices=("max_epochs", "lr", "weight_decay"),
                fix="e.g. final.inherit.max_epochs=4 final.inherit.lr=0.01",
            )  # fmt: skip
        if "max_epochs" in inherit:
            positive("inherit.max_epochs", inherit["max_epochs"])
        budgets = d.get("budgets")
        if budgets is not None:
            try:
                budgets = sorted(float(b) for b in budgets)
            except (TypeError, ValueError) as exc:
                raise ConfigError(
                    f"expected a list of milliseconds, got {budgets!r}",
                    key="final.budgets",
                    fix="e.g. final.budgets=[1,2,5]",
                ) from exc
        max_images = device.get("max_images")
        jobs = d.get("jobs", "auto")
        jobs = None if str(jobs).lower() == "auto" else positive("jobs", jobs)
        return cls(
            top_k=positive("top_k", d.get("top_k", 4)),  # conf/final/default.yaml's
            baseline=bool(d.get("baseline", True)),
            init=init,
            seed=int(d.get("seed", 0)),
            trainer=trainer,
            optim=dict(d.get("optim") or {}),
            inherit=inherit,
            calibration_batches=positive("int8.calibration_batches", int8.get("calibration_batches", 32)),
            calibration_method=method,
            per_channel=bool(int8.get("per_channel", True)),
            reduce_range=u8s8_saturates() if reduce_range == "auto" else reduce_range == "true",
            eval_batch_size=positive("eval_batch_size", d.get("eval_batch_size", 32)),
            device_enabled=enabled,
            jobs=jobs,
            chunk_size=positive("device.chunk_size", device.get("chunk_size", 16)),
            max_images=None if max_images is None else positive("device.max_images", max_images),
            budgets=budgets,
            ddp_processes=positive("ddp.processes", dict(d.get("ddp") or {}).get("processes", 1)),
            baseline_seeds=positive("baseline_seeds", d.get("baseline_seeds", 3)),
            cache=None if d.get("cache") in (None, "") else str(d["cache"]),
        )

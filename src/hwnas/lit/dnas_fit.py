"""Run one differentiable search: Lightning fits a :class:`~hwnas.lit.dnas.DnasModule`, an epoch monitor
finalizes the architecture after every epoch (the trajectory is kept) and applies the skip collapse guard.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.utilities import CombinedLoader

from hwnas.lit.checkpoints import Resume
from hwnas.lit.dnas import DnasModule
from hwnas.lit.fit import fit_search_module

log = logging.getLogger("hwnas.dnas")


@dataclass
class DnasRun:
    """What one search produced: the finalized parameters and the per-epoch trajectory."""

    params: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The α that ``finalize`` turns into ``params`` (the final α, an earlier epoch's, or the capped one).
    alphas: dict[str, torch.Tensor] = field(default_factory=dict)
    stopped_early: str | None = None
    seconds: float = 0.0


class EpochMonitor(pl.Callback):
    """After every epoch: finalize ``α``, log one line, record it; stop once the normal cell holds more
    than ``max_normal_skips`` skip connections (DARTS+'s collapse criterion), keeping the last
    architecture within the limit.

    Args:
        label: Prefix of the log lines (e.g. ``darts target 1.2 ms``).
        total: Planned epochs (for the log).
        max_normal_skips: The guard's limit (``None`` = off; spaces without cells report no count).
    """

    def __init__(self, *, label: str, total: int, max_normal_skips: int | None) -> None:
        self.label, self.total, self.max_skips = label, int(total), max_normal_skips
        self.history: list[dict[str, Any]] = []
        self.best_alphas: dict[str, torch.Tensor] | None = None  # α of the last epoch within the limit
        self.stopped_early: str | None = None
        self.t0 = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:  # the trajectory so far travels in a resumable checkpoint
        return {"history": self.history, "best_alphas": self.best_alphas, "stopped_early": self.stopped_early}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history") or [])
        self.best_alphas = state_dict.get("best_alphas")
        self.stopped_early = state_dict.get("stopped_early")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        module: DnasModule = pl_module  # type: ignore[assignment]
        params = module.net.finalize(module.arch.detached())
        metrics = trainer.callback_metrics
        entry: dict[str, Any] = {
            "epoch": trainer.current_epoch + 1,
            "weight_loss": _num(metrics.get("search/weight_loss")),
            "arch_loss": _num(metrics.get("search/arch_loss")),
            "expected_latency_ms": module.last.get("expected_latency_ms"),
            "table_latency_ms": module.finalized_latency(),
            "tau": round(module.tau, 4) if module.mixing == "gumbel" else None,
            "aux_skip": round(module.net.aux_skip, 4),
            "experts_alive": module.last.get("xnas_alive"),
            "expert_grad_absmax": module.last.get("xnas_grad_absmax"),
            "params": params,
        }
        skips = module.net.skip_count(params)
        entry["normal_skips"] = skips
        self.history.append(entry)
        exp = entry["expected_latency_ms"]
        log.info(
            "%s epoch %d/%d: weight loss %.3f, arch loss %s, E[latency] %s%s%s (%.0fs)",
            self.label, entry["epoch"], self.total, entry["weight_loss"] or float("nan"),
            f"{entry['arch_loss']:.3f}" if entry["arch_loss"] is not None else "-",
            f"{exp:.3f} ms" if exp is not None else "-",
            f", {skips} skips in the normal cell" if skips is not None else "",
            f", {entry['experts_alive']:.0%} experts alive" if entry["experts_alive"] is not None else "",
            time.perf_counter() - self.t0,
        )  # fmt: skip
        if self.max_skips is None or skips is None or not module.search_arch:
            return
        if skips <= self.max_skips:
            self.best_alphas = module.arch.detached()
            return
        self.stopped_early = (
            f"epoch {entry['epoch']}: {skips} skip connections in the normal cell > "
            f"search.max_normal_skips={self.max_skips}"
        )
        log.warning("%s: collapse guard stops the search at %s", self.label, self.stopped_early)
        trainer.should_stop = True


def _num(v: Any) -> float | None:
    return float(v) if torch.is_tensor(v) and v.numel() == 1 else None


def fit_dnas(
    module: DnasModule,
    *,
    train_loader: Any,
    val_loader: Any,
    trainer_cfg: DictConfig,
    max_epochs: int,
    limit_train_batches: float | int,
    run_dir: str,
    label: str,
    max_normal_skips: int | None = None,
    precision: Any = "auto",
    seed: int = 0,
    resume: Resume | None = None,
) -> DnasRun:
    """Fit ``module`` (weights and, unless it is a warm-up, ``α``) and finalize its architecture.

    Raises:
        CandidateFailed: NaN/inf loss.
    """
    pl.seed_everything(seed, workers=True, verbose=False)
    monitor = EpochMonitor(label=label, total=max_epochs, max_normal_skips=max_normal_skips)
    loader = CombinedLoader({"train": train_loader, "val": val_loader}, mode="max_size_cycle")
    seconds, _ = fit_search_module(
        module,
        loader,
        trainer_cfg=trainer_cfg,
        run_dir=run_dir,
        precision=precision,
        max_epochs=max_epochs,
        limit_train_batches=limit_train_batches,
        failure=f"{label}: non-finite loss (NaN/inf) during the search",
        callbacks=[monitor],
        resume=resume,
    )
    alphas = module.arch.detached()
    # collapsed from the first epoch: no earlier architecture to keep, so the skips are capped (P-DARTS)
    capped = (
        monitor.stopped_early is not None and monitor.best_alphas is None and max_normal_skips is not None
    )
    if monitor.stopped_early and monitor.best_alphas is not None:
        alphas = monitor.best_alphas
    elif capped:
        alphas = module.net.limit_skips(alphas, max_normal_skips)
    params = module.net.finalize(alphas)
    if capped:
        log.warning(
            "%s: collapsed in its first epoch; skips capped at %d (P-DARTS): %d left",
            label,
            max_normal_skips,
            module.net.skip_count(params) or 0,
        )
    return DnasRun(
        params=params,
        history=monitor.history,
        alphas=alphas,
        stopped_early=monitor.stopped_early,
        seconds=seconds,
    )

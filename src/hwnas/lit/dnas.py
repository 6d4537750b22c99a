"""``DnasModule``: bilevel differentiable NAS (DARTS first/second order, GDAS) on any mixed-op supernet.

Manual optimisation, one step per (training batch, validation batch) pair:

1. **architecture step** (skipped during warm-up): the validation objective — cross-entropy of the
   network under the mixing weights, times or plus the latency term, plus the α regulariser — is
   differentiated with respect to ``α`` (first order: directly; second order: through one virtual
   weight step, :mod:`hwnas.lit.hypergradient`) and Adam updates ``α``;
2. **weight step**: SGD with momentum on the training batch under the mixing weights of the current
   (detached) ``α``, gradient clipping, cosine learning rate.

The two optimizers hold disjoint parameters by construction: the weight optimizer is built from
``net.parameters()`` and ``α`` lives in a separate :class:`~hwnas.models.mixed.ArchParameters`.
Mixing: ``softmax`` (DARTS) or ``gumbel`` (GDAS: a hard Gumbel-softmax sample with a straight-through
gradient, temperature annealed linearly from ``tau_max`` to ``tau_min``). Architecture update: ``adam``
(DARTS, GDAS) or ``xnas`` (XNAS's exponentiated gradient with wipe-out, :mod:`hwnas.lit.xnas`), so the
update rule, the mixing, the latency term and the α regulariser combine freely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from hwnas.data.labels import IGNORE_INDEX
from hwnas.lit.hypergradient import unrolled_hypergradient
from hwnas.lit.xnas import ExpertAdvice
from hwnas.models.mixed import ArchParameters, DifferentiableSupernet

log = logging.getLogger("hwnas.dnas")

#: The differentiable search's version, part of the key of a run's saved sweep points: a resumed run never
#: reuses architectures found by earlier code. 2: schedules count batches; the expected latency of DARTS
#: cells leaves out `none`; the published latency-loss forms; the finalized-latency estimate.
DNAS_VERSION = 2

MIXINGS = ("softmax", "gumbel")
UPDATES = ("adam", "xnas")
LATENCY_FORMS = ("abs", "mul", "add", "mul_clamped", "add_clamped")
LATENCY_LOSSES = ("none", *LATENCY_FORMS)
LATENCY_ESTIMATES = ("expected", "finalized")
ALPHA_REGS = ("none", "l1", "entropy")


def combination_error(*, mixing: str, order: int, update: str) -> tuple[str, str, str] | None:
    """``(key, problem, fix)`` when ``mixing``, ``order`` and ``update`` cannot go together, else ``None``:
    the one place these rules live (the module raises them, the strategy reports them with their key)."""
    if mixing not in MIXINGS:
        return "mixing", f"mixing must be one of {MIXINGS}, got {mixing!r}", "search.strategy.mixing=softmax"
    if update not in UPDATES:
        return "update", f"update must be one of {UPDATES}, got {update!r}", "search.strategy.update=adam"
    if str(order) not in ("1", "2"):
        return "order", f"order must be 1 or 2, got {order!r}", "search.strategy.order=1 (or 2: DARTS only)"
    if int(order) == 2 and mixing != "softmax":
        return (
            "order",
            "the second-order hypergradient needs deterministic (softmax) mixing",
            "use search=darts search.strategy.order=2, or order 1 with GDAS",
        )
    if update == "xnas" and (mixing != "softmax" or int(order) != 1):
        return (
            "update",
            "XNAS's exponentiated-gradient update (xnas) mixes by softmax, first order",
            "search=xnas (softmax mixing, order 1), or update=adam with GDAS / second-order DARTS",
        )
    return None


@dataclass(frozen=True)
class LatencyTerm:
    """Latency-aware losses on the differentiable expected latency ``E`` (ms), against a target ``T``.

    The published forms:

    * ``mul``: ``CE · (E/T) ** beta``: the multiplicative soft constraint of MnasNet and ProxylessNAS
      (a log-ratio in the log domain: faster than the target is rewarded too, so the search settles
      where the accuracy gained by a millisecond equals ``beta`` times its relative cost);
    * ``add``: ``CE + lam · E/T``: ProxylessNAS's additive form, linear in the latency (here in units of
      the target, so ``lam`` does not depend on the device's speed);
    * ``abs``: ``CE + lam · |E/T − 1|``: TuNAS's absolute-value reward, two-sided, so the search is pulled
      *to* the target from either side. With ``estimate="finalized"`` it is the strategies' default: the
      one combination that landed every seed's finalized architecture within ±6 % of a mid-range target
      for DARTS and GDAS (``bench/bench_latency_loss.py``, figures in ``docs/results.md``).

    And the hard-target forms (no pull below the target, only a penalty above it):

    * ``mul_clamped``: ``CE · max(1, E/T) ** beta``;
    * ``add_clamped``: ``CE + lam · max(0, E/T − 1)``.

    Attributes:
        table: ``{op name: ms}`` from :func:`hwnas.hardware.op_table.op_latency_table`.
        form: One of :data:`LATENCY_FORMS`.
        target_ms: The latency target on the table's scale.
        beta: Exponent of the multiplicative forms.
        lam: Weight of the additive forms.
        estimate: What ``E`` is. ``expected``: the mixture's expected latency; ``finalized``: the table
            latency of the architecture ``α`` finalizes to *now*, with the expectation's gradient
            (straight-through: ``E_fin + E − stop_grad(E)``), so the term acts on the latency the search
            will actually return rather than on the mixture's (the discretisation gap).
    """

    table: Mapping[str, float]
    form: str
    target_ms: float
    beta: float = 0.6
    lam: float = 1.0
    estimate: str = "expected"

    def __post_init__(self) -> None:
        if self.form not in LATENCY_FORMS:
            raise ValueError(f"latency form must be one of {LATENCY_FORMS}, got {self.form!r}")
        if self.estimate not in LATENCY_ESTIMATES:
            raise ValueError(f"latency estimate must be one of {LATENCY_ESTIMATES}, got {self.estimate!r}")

    def apply(self, ce: torch.Tensor, expected_ms: torch.Tensor) -> torch.Tensor:
        ratio = expected_ms / self.target_ms
        if self.form == "mul":
            return ce * ratio**self.beta
        if self.form == "mul_clamped":
            return ce * ratio.clamp_min(1.0) ** self.beta
        if self.form == "add":
            return ce + self.lam * ratio
        if self.form == "abs":
            return ce + self.lam * (ratio - 1.0).abs()
        return ce + self.lam * (ratio - 1.0).clamp_min(0.0)


def alpha_regulariser(kind: str, weight: float, arch: ArchParameters) -> torch.Tensor | None:
    """``l1``: ``weight · Σ|α|`` (keeps logits small, delaying premature commitment); ``entropy``:
    ``weight · mean H(softmax α)`` (pushes each choice towards one op, shrinking the discretisation gap)."""
    if kind == "none" or not weight:
        return None
    if kind == "l1":
        return weight * sum(a.abs().sum() for a in arch.alphas.values())
    ents = [-(p * p.clamp_min(1e-12).log()).sum(dim=-1).mean() for p in arch.probs().values()]
    return weight * torch.stack(ents).mean()


def mixing_weights(mixing: str, alphas: Mapping[str, torch.Tensor], tau: float) -> dict[str, torch.Tensor]:
    """The network's mixing weights from ``α``: a softmax, or a hard Gumbel sample whose one-hot value
    carries the soft sample's gradient (``F.gumbel_softmax(hard=True)``: ``y_hard − y_soft.detach() + y_soft``),
    so every ``α`` of a used choice receives a gradient although one op runs."""
    if mixing == "softmax":
        return {k: a.softmax(dim=-1) for k, a in alphas.items()}
    return {k: F.gumbel_softmax(a, tau=tau, hard=True, dim=-1) for k, a in alphas.items()}


class DnasModule(pl.LightningModule):
    """Searches ``α`` of ``net`` (see the module docstring). Batches are ``{"train": (x, y), "val": (x, y)}``.

    Args:
        net: The mixed-op supernet.
        arch: Its architecture parameters (never inside ``net``).
        mixing: ``softmax`` (DARTS) or ``gumbel`` (GDAS).
        order: 1 or 2 (second order: softmax mixing only).
        search_arch: False = warm-up (weights only, α frozen at its initial near-uniform value).
        w_lr, w_lr_min, w_momentum, w_weight_decay, grad_clip: The weight optimizer (SGD, cosine).
        a_lr, a_betas, a_weight_decay: The architecture optimizer (Adam).
        update: ``adam`` (DARTS, GDAS: Adam on the α gradient) or ``xnas`` (exponentiated gradient with
            wipe-out, :mod:`hwnas.lit.xnas`; softmax mixing, first order).
        xnas_grad_bound, xnas_wipeout: XNAS's gradient bound ``L`` and its wipe-out switch.
        tau_max, tau_min: GDAS temperature schedule.
        latency: The latency term (``None`` = accuracy only).
        alpha_reg, alpha_reg_weight: The α regulariser (``none`` | ``l1`` | ``entropy``).
        aux_skip: DARTS−'s auxiliary skip weight at the start, decayed linearly to 0 (0 = off).
        label_smoothing: Cross-entropy label smoothing (a trick).
        channels_last: NHWC inputs.
    """

    def __init__(
        self,
        net: DifferentiableSupernet,
        arch: ArchParameters,
        *,
        mixing: str = "softmax",
        order: int = 1,
        search_arch: bool = True,
        w_lr: float = 0.025,
        w_lr_min: float = 0.001,
        w_momentum: float = 0.9,
        w_weight_decay: float = 3e-4,
        grad_clip: float | None = 5.0,
        a_lr: float = 3e-4,
        a_betas: tuple[float, float] = (0.5, 0.999),
        a_weight_decay: float = 1e-3,
        update: str = "adam",
        xnas_grad_bound: float = 1.0,
        xnas_wipeout: bool = True,
        tau_max: float = 10.0,
        tau_min: float = 0.1,
        latency: LatencyTerm | None = None,
        alpha_reg: str = "none",
        alpha_reg_weight: float = 0.0,
        aux_skip: float = 0.0,
        label_smoothing: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net, self.arch = net, arch
        self.mixing, self.order, self.search_arch = mixing, int(order), bool(search_arch)
        self.w_lr, self.w_lr_min, self.w_momentum = float(w_lr), float(w_lr_min), float(w_momentum)
        self.w_weight_decay, self.grad_clip = float(w_weight_decay), grad_clip
        self.a_lr, self.a_betas, self.a_weight_decay = float(a_lr), tuple(a_betas), float(a_weight_decay)
        self.tau_max, self.tau_min = float(tau_max), float(tau_min)
        error = combination_error(mixing=mixing, order=order, update=update)
        if error:
            raise ValueError(f"{error[1]} (fix: {error[2]})")
        self.update, self.xnas_grad_bound, self.xnas_wipeout = (
            update,
            float(xnas_grad_bound),
            bool(xnas_wipeout),
        )
        self.expert: ExpertAdvice | None = None
        self.latency, self.alpha_reg, self.alpha_reg_weight = latency, alpha_reg, float(alpha_reg_weight)
        self.aux_skip0 = float(aux_skip)
        self.channels_last = bool(channels_last)
        self.criterion = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
        self.tau = self.tau_max
        self.nonfinite_loss = False
        self.last: dict[str, float] = {}

    # ----- schedules ------------------------------------------------------------------------------
    # Every schedule (GDAS's τ, DARTS−'s skip decay, XNAS's step index and horizon) counts *batches*:
    # ``global_step`` counts optimizer steps, two per batch when both the weights and α step, which
    # once ended the schedules at half the search.
    def batch_index(self) -> int:
        """The current training batch, 0-based, across epochs (survives a checkpoint resume)."""
        return max(0, int(self.trainer.fit_loop.epoch_loop.total_batch_idx))

    def total_batches(self) -> int:
        """The batches of the whole fit (every epoch)."""
        return max(1, int(self.trainer.estimated_stepping_batches))

    def progress(self) -> float:
        """0 at the first batch, 1 at the last: the linear schedules' position."""
        return min(1.0, self.batch_index() / max(1, self.total_batches() - 1))

    def _update_schedules(self) -> None:
        p = self.progress()
        self.tau = self.tau_max - (self.tau_max - self.tau_min) * p
        self.net.aux_skip = self.aux_skip0 * (1.0 - p)

    # ----- objectives -----------------------------------------------------------------------------
    def _x(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def expected_latency(self, probs: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor | None:
        """The latency the term sees: the mixture's expectation under ``probs`` (default ``softmax(α)``), or,
        under ``estimate="finalized"``, the finalized architecture's with the expectation's gradient."""
        if self.latency is None:
            return None
        expected = self.net.expected_latency(
            self.arch.probs() if probs is None else probs, self.latency.table
        )
        if self.latency.estimate == "expected":
            return expected
        finalized = self.finalized_latency()
        return expected + (finalized - expected.detach())

    def finalized_latency(self) -> float | None:
        """The table latency of the architecture ``α`` finalizes to now (``None`` without a latency term)."""
        if self.latency is None:
            return None
        with torch.no_grad():
            probs = self.net.finalized_probs(self.arch.detached())
            return float(self.net.expected_latency(probs, self.latency.table))

    def task_objective(
        self, logits: torch.Tensor, y: torch.Tensor, probs: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """CE with the latency term (on ``probs``, by default ``softmax(α)``): what the experts are judged by."""
        loss = self.criterion(logits, y)
        self.last["val_ce"] = float(loss.detach())
        expected = self.expected_latency(probs)
        if expected is not None:
            self.last["expected_latency_ms"] = float(expected.detach())
            loss = self.latency.apply(loss, expected)
        return loss

    def arch_objective(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The validation objective ``α`` descends: CE with the latency term and the α regulariser."""
        loss = self.task_objective(logits, y)
        reg = alpha_regulariser(self.alpha_reg, self.alpha_reg_weight, self.arch)
        return loss if reg is None else loss + reg

    def weight_loss_fn(
        self, batch: tuple[torch.Tensor, torch.Tensor]
    ) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """``L_train(w, α)`` as a function of explicit weights (for the second-order hypergradient)."""
        x, y = self._x(batch[0]), batch[1]
        buffers = {n: b.clone() for n, b in self.net.named_buffers()}  # virtual passes leave BN stats alone

        def loss(w: Mapping[str, torch.Tensor]) -> torch.Tensor:
            weights = mixing_weights(self.mixing, self.arch.as_dict(), self.tau)
            return self.criterion(functional_call(self.net, {**w, **buffers}, (x, weights)), y)

        return loss

    def _arch_step(self, train: Any, val: Any, a_opt: Any, w_opt: Any) -> None:
        a_opt.zero_grad()
        xv, yv = self._x(val[0]), val[1]
        if self.order == 2:
            params = dict(self.net.named_parameters())
            buffers = {n: b.clone() for n, b in self.net.named_buffers()}

            def val_objective(w: Mapping[str, torch.Tensor]) -> torch.Tensor:
                weights = mixing_weights(self.mixing, self.arch.as_dict(), self.tau)
                return self.arch_objective(functional_call(self.net, {**w, **buffers}, (xv, weights)), yv)

            momentum = {}
            opt = w_opt.optimizer if hasattr(w_opt, "optimizer") else w_opt
            for name, p in params.items():
                buf = opt.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    momentum[name] = self.w_momentum * buf
            lr = opt.param_groups[0]["lr"]
            alphas = list(self.arch.alphas.values())
            grads = unrolled_hypergradient(
                params, alphas, train_loss=self.weight_loss_fn(train), val_objective=val_objective,
                xi=lr, weight_decay=self.w_weight_decay, momentum=momentum,
            )  # fmt: skip
            if not all(bool(torch.isfinite(g).all()) for g in grads):
                self._stop_nonfinite()
                return
            for a, g in zip(alphas, grads, strict=True):
                a.grad = g
            loss_value = self.last.get("val_ce", float("nan"))
        else:
            weights = mixing_weights(self.mixing, self.arch.as_dict(), self.tau)
            loss = self.arch_objective(self.net(xv, weights), yv)
            if not torch.isfinite(loss):
                self._stop_nonfinite()
                return
            self.manual_backward(loss)
            loss_value = float(loss.detach())
        a_opt.step()
        self.log("search/arch_loss", loss_value, on_step=False, on_epoch=True, batch_size=len(xv))

    def _xnas_step(self, val: Any) -> None:
        """XNAS: expert gradients ``∂ℓ/∂p`` from one batched pass with the mixing weights as leaves."""
        if self.expert is None:
            self.expert = ExpertAdvice(
                self.arch,
                total_steps=self.total_batches(),
                grad_bound=self.xnas_grad_bound,
                wipeout=self.xnas_wipeout,
                never_chosen=self.net.never_chosen(),
            )
        xv, yv = self._x(val[0]), val[1]
        probs = {k: p.detach().requires_grad_(True) for k, p in self.arch.probs().items()}
        loss = self.task_objective(self.net(xv, probs), yv, probs)
        if not torch.isfinite(loss):
            self._stop_nonfinite()
            return
        names = list(probs)
        grads = dict(zip(names, torch.autograd.grad(loss, [probs[k] for k in names]), strict=True))
        reg = alpha_regulariser(self.alpha_reg, self.alpha_reg_weight, self.arch)
        reg_grads = None
        if reg is not None:
            alphas = self.arch.as_dict()
            reg_grads = dict(zip(alphas, torch.autograd.grad(reg, list(alphas.values())), strict=True))
        self.last["xnas_grad_absmax"] = max(float(g.abs().max()) for g in grads.values())
        self.expert.step(grads, self.batch_index(), reg_grads)
        self.last["xnas_alive"] = self.expert.alive_fraction()
        value = float(loss.detach()) + (float(reg.detach()) if reg is not None else 0.0)
        self.log("search/arch_loss", value, on_step=False, on_epoch=True, batch_size=len(xv))

    def _stop_nonfinite(self) -> None:
        self.nonfinite_loss = True
        self.trainer.should_stop = True

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        w_opt, a_opt = self.optimizers()
        self._update_schedules()
        train, val = batch["train"], batch["val"]
        if self.search_arch and self.update == "xnas":
            self._xnas_step(val)
            if self.nonfinite_loss:
                return
        elif self.search_arch:
            self._arch_step(train, val, a_opt, w_opt)
            if self.nonfinite_loss:
                return
        w_opt.zero_grad()
        alphas = {k: a.detach() for k, a in self.arch.as_dict().items()}
        x, y = self._x(train[0]), train[1]
        loss = self.criterion(self.net(x, mixing_weights(self.mixing, alphas, self.tau)), y)
        if not torch.isfinite(loss):
            self._stop_nonfinite()
            return
        self.manual_backward(loss)
        if self.grad_clip:
            self.clip_gradients(
                w_opt, gradient_clip_val=float(self.grad_clip), gradient_clip_algorithm="norm"
            )
        w_opt.step()
        self.lr_schedulers().step()
        self.log("search/weight_loss", loss.detach(), on_step=False, on_epoch=True, batch_size=len(x))

    def configure_optimizers(self) -> Any:
        w_opt = torch.optim.SGD(
            self.net.parameters(), lr=self.w_lr, momentum=self.w_momentum, weight_decay=self.w_weight_decay
        )
        a_opt = torch.optim.Adam(
            self.arch.parameters(), lr=self.a_lr, betas=self.a_betas, weight_decay=self.a_weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            w_opt, T_max=self.total_batches(), eta_min=self.w_lr_min
        )  # stepped once per batch
        return [w_opt, a_opt], [{"scheduler": sched, "interval": "step"}]

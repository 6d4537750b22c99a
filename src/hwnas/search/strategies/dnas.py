"""``search=darts`` / ``search=gdas``: gradient-based search whose architectures join the one study.

The strategy trains the search space's mixed-op supernet (``space.mixed_supernet``) with bilevel
optimisation (:class:`hwnas.lit.dnas.DnasModule`), finalizes ``α`` into an ``ArchSpec`` and hands it back;
the search task then evaluates every such architecture with the configured evaluator and stores it as
a trial of the same Optuna study an evolutionary search writes (``strategy`` column), so trials.csv,
pareto.csv, the plots and the final stage treat gradient-found and evolution-found architectures alike.

A sweep yields one architecture per point: ``search.latency_targets`` (a list, or one value per Hydra
multirun job) × ``search.latency_lambda`` (a list for the additive form). The weights are warmed up once
(α frozen, ``warmup_epochs``) and every point searches from a copy of that warm supernet.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from hwnas.hardware.op_table import describe_table, op_latency_table
from hwnas.lit.checkpoints import Resume, resume_for
from hwnas.lit.dnas import (
    ALPHA_REGS,
    DNAS_VERSION,
    LATENCY_ESTIMATES,
    LATENCY_LOSSES,
    MIXINGS,
    UPDATES,
    DnasModule,
    LatencyTerm,
    combination_error,
)
from hwnas.lit.dnas_fit import fit_dnas
from hwnas.lit.fit import channels_last_of
from hwnas.models.mixed import ArchParameters, DifferentiableSupernet, latency_range
from hwnas.search.strategies.base import Proposal, ProposingStrategy, SearchContext
from hwnas.search.strategies.dnas_settings import UNITS, plain, sweep_points, xnas_settings
from hwnas.search_space.base import SearchSpace
from hwnas.utils.config import config_recipe
from hwnas.utils.errors import ConfigError
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.search")

#: Where a run keeps each sweep point's result (a resumed search does not search a point twice).
RUN_SUBDIR = "dnas"


class GradientSearch(ProposingStrategy):
    """Differentiable NAS over the space's mixed-op supernet (see the module docstring).

    Args:
        name: The ``strategy`` recorded with every trial (``darts``, ``gdas``).
        mixing: ``softmax`` (DARTS) or ``gumbel`` (GDAS).
        update: The α update rule: ``adam`` (DARTS, GDAS) or ``xnas`` (exponentiated gradient with
            wipe-out; softmax mixing, first order).
        xnas: XNAS settings: ``grad_bound`` (``L``, the expert-gradient clip) and ``wipeout``.
        order: DARTS order (1, or 2 = the unrolled hypergradient; softmax mixing only).
        epochs: Bilevel epochs per sweep point.
        warmup_epochs: Weight-only epochs, once, before the points (α frozen near uniform).
        limit_train_batches: Batches per epoch (int) or fraction.
        network: Keyword arguments of ``space.mixed_supernet`` (e.g. ``channels``/``layers`` of a DARTS
            search network, ``fixed`` widths of the hourglass).
        latency_loss: ``none``, ``mul`` or ``add`` (:class:`hwnas.lit.dnas.LatencyTerm`).
        latency_targets: Target(s); one architecture per target.
        latency_unit: ``relative`` (0 = the table's fastest architecture, 1 = its slowest) or ``ms``.
        latency_lambda: Weight(s) of the additive form; a list sweeps it.
        latency_beta: Exponent of the multiplicative form.
        latency_estimate: ``expected`` (the mixture's) or ``finalized`` (the finalized architecture's table
            latency, straight-through; :class:`hwnas.lit.dnas.LatencyTerm`).
        alpha_reg, alpha_reg_weight: α regulariser (``none`` | ``l1`` | ``entropy``) for every strategy.
        max_normal_skips: Collapse guard: stop when the normal cell holds more skips (``None`` = off).
        aux_skip: DARTS−'s auxiliary skip weight (decays to 0; 0 = off).
        optim: Weight/architecture optimizer settings (``w_lr``, ``w_lr_min``, ``w_momentum``,
            ``w_weight_decay``, ``grad_clip``, ``a_lr``, ``a_betas``, ``a_weight_decay``, ``tau_max``,
            ``tau_min``, ``alpha_init_scale``).
        seed: Seeds α's initial values and the data order.
    """

    def __init__(
        self,
        *,
        name: str = "darts",
        mixing: str = "softmax",
        update: str = "adam",
        xnas: Mapping[str, Any] | None = None,
        order: int = 1,
        epochs: int = 4,
        warmup_epochs: int = 1,
        limit_train_batches: float | int = 1.0,
        network: Mapping[str, Any] | None = None,
        latency_loss: str = "abs",
        latency_targets: Any = (0.2, 0.5, 0.8),
        latency_unit: str = "relative",
        latency_lambda: Any = 1.0,
        latency_beta: float = 0.6,
        latency_estimate: str = "finalized",
        alpha_reg: str = "none",
        alpha_reg_weight: float = 0.0,
        max_normal_skips: int | None = None,
        aux_skip: float = 0.0,
        optim: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.name = str(name)
        self.mixing = self._choice(mixing, MIXINGS, "search.strategy.mixing")
        self.update = self._choice(update, UPDATES, "search.strategy.update")
        error = combination_error(mixing=self.mixing, order=order, update=self.update)
        if error:
            raise ConfigError(error[1], key=f"search.strategy.{error[0]}", fix=error[2])
        self.order = int(order)
        self.xnas = xnas_settings(xnas)
        self.epochs, self.warmup_epochs = int(epochs), int(warmup_epochs)
        if self.epochs < 1 or self.warmup_epochs < 0:
            raise ConfigError(
                f"epochs must be >= 1 and warmup_epochs >= 0, got {epochs} / {warmup_epochs}",
                key="search.strategy.epochs",
            )
        self.limit_train_batches = limit_train_batches
        self.network = plain(network)
        self.latency_loss = self._choice(latency_loss, LATENCY_LOSSES, "search.latency_loss")
        self.latency_unit = self._choice(latency_unit, UNITS, "search.latency_unit")
        self.points = sweep_points(self.latency_loss, self.latency_unit, latency_targets, latency_lambda)
        self.latency_beta = float(latency_beta)
        self.latency_estimate = self._choice(latency_estimate, LATENCY_ESTIMATES, "search.latency_estimate")
        self.alpha_reg = self._choice(alpha_reg, ALPHA_REGS, "search.alpha_reg")
        self.alpha_reg_weight = float(alpha_reg_weight)
        self.max_normal_skips = None if max_normal_skips is None else int(max_normal_skips)
        self.aux_skip = float(aux_skip)
        self.optim = plain(optim)
        self.alpha_init_scale = float(self.optim.pop("alpha_init_scale", 1e-3))
        known = set(inspect.signature(DnasModule).parameters)
        unknown = sorted(k for k in self.optim if k not in known)
        if unknown:
            raise ConfigError(
                f"unknown optimizer settings {unknown}",
                key="search.strategy.optim",
                choices=["w_lr", "w_lr_min", "w_momentum", "w_weight_decay", "grad_clip", "a_lr", "a_betas",
                         "a_weight_decay", "tau_max", "tau_min", "alpha_init_scale"],
            )  # fmt: skip
        self.seed = int(seed)

    @staticmethod
    def _choice(value: Any, choices: Sequence[str], key: str) -> str:
        if str(value) not in choices:
            raise ConfigError(f"unknown value {value!r}", key=key, choices=list(choices))
        return str(value)

    # ----- start-up checks -------------------------------------------------------------------------
    def check(self, *, space: SearchSpace, evaluator: Any, cfg: DictConfig) -> None:
        """Refuse, before any data or training, a space without mixed layers, bad network settings, a
        parallel launch or an evaluator without images. The supernet is built on the ``meta`` device:
        its settings are checked (a bad width: now) without allocating its weights."""
        if not callable(getattr(space, "mixed_supernet", None)):
            raise ConfigError(
                f"search_space={space.name} has no mixed-op supernet for gradient-based search",
                key="search",
                fix="use search_space=darts_cell or search_space=hourglass, or an evolutionary search=",
            )
        with torch.device("meta"):
            space.mixed_supernet(num_classes=2, **self.network)
        super().check(space=space, evaluator=evaluator, cfg=cfg)

    def describe(self) -> str:
        pts = ", ".join(self._point_label(t, lam) for t, lam in self.points)
        order = f", order {self.order}" if self.mixing == "softmax" else ""
        rule = f", {self.update} update" if self.update != "adam" else ""
        return f"{self.name} ({self.mixing} mixing{order}{rule}), {self.warmup_epochs}+{self.epochs} epochs, points: {pts}"

    def _point_label(self, target: Any, lam: Any) -> str:
        if target is None:
            return "no latency term"
        unit = "" if self.latency_unit == "relative" else " ms"
        lam_s = f", λ {lam:g}" if self.latency_loss in ("add", "abs", "add_clamped") else ""
        return f"target {float(target):g}{unit}{lam_s}"

    # ----- the search ------------------------------------------------------------------------------
    def recipe(self) -> dict[str, Any]:
        """Everything that decides the architectures found (a run-dir result is reused only if equal)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def run_recipe(self, space: SearchSpace, cfg: DictConfig) -> dict[str, Any]:
        """The key of a run's saved sweep points: the recipe, the space, the seed and the code's version."""
        return json.loads(
            json.dumps(
                {**self.recipe(), "space": space.name, "seed_cfg": int(cfg.seed), "version": DNAS_VERSION},
                default=str,
            )
        )

    def planned(self) -> int:
        """Architectures this search proposes: one per sweep point."""
        return len(self.points)

    def proposal_rounds(self, ctx: SearchContext) -> Any:
        """One round: every sweep point's architecture."""
        yield self.propose(space=ctx.space, evaluator=ctx.evaluator, cfg=ctx.cfg, run_dir=ctx.run_dir)

    def propose(
        self, *, space: SearchSpace, evaluator: Any, cfg: DictConfig, run_dir: Path
    ) -> list[Proposal]:
        """Search every sweep point; return one architecture per point (reusing a run dir's results)."""
        dm = evaluator.train_datamodule
        out_dir = run_dir / RUN_SUBDIR
        recipe = self.run_recipe(space, cfg)
        cached = [self._cached(out_dir, i, recipe) for i in range(len(self.points))]
        if all(c is not None for c in cached):
            log.info("%s: every sweep point found in %s (resumed run): nothing to search", self.name, out_dir)
            return [self._proposal(space, c) for c in cached]  # type: ignore[arg-type]
        torch.manual_seed(self.seed)
        net: DifferentiableSupernet = space.mixed_supernet(
            num_classes=int(dm.num_classes), in_channels=int(dm.in_channels), **self.network
        )
        table = op_latency_table(evaluator.profiler, net.latency_ops(tuple(evaluator.input_shape)))
        lo, hi = latency_range(net, table)
        log.info(
            "%s: table latency range %.3f–%.3f ms (%s)",
            self.name,
            lo,
            hi,
            describe_table(table)["costliest"][:2],
        )
        common = self._module_kwargs(cfg)
        warm_resume = self._resume(cfg, recipe, "warmup")  # kept until every point is stored: a resumed
        if self.warmup_epochs:  # search restores the warm supernet from it instead of warming up again
            warm = DnasModule(net, self._arch(net, 0), search_arch=False, **common)
            self._fit(warm, dm, cfg, run_dir, epochs=self.warmup_epochs, label=f"{self.name} warm-up",
                      resume=warm_resume)  # fmt: skip
        proposals: list[Proposal] = []
        for i, (target, lam) in enumerate(self.points):
            if cached[i] is not None:
                proposals.append(self._proposal(space, cached[i]))
                continue
            record = self._search_point(i, target, lam, space=space, net=net, table=table, span=(lo, hi), dm=dm, cfg=cfg,
                                        run_dir=run_dir, common=common)  # fmt: skip
            write_json(out_dir / f"point-{i}.json", {"recipe": recipe, **record})
            self._resume(cfg, recipe, f"point-{i}").done()  # stored: its checkpoints are spent
            proposals.append(self._proposal(space, record))
        warm_resume.done()
        return proposals

    def _resume(self, cfg: DictConfig, recipe: dict[str, Any], part: str) -> Resume:
        """Checkpoints of one training of this search (the warm-up, a sweep point) under
        ``paths.cache_dir/checkpoints``, keyed by everything that decides it: the same command resumes it."""
        keys = ("search_space", "dataset", "tricks", "trainer", "evaluator", "seed")
        blob = json.dumps(
            {"recipe": recipe, "part": part, **config_recipe(cfg, keys)}, sort_keys=True, default=str
        )
        fp = hashlib.sha256(blob.encode()).hexdigest()[:16]
        folder = Path(cfg.paths.cache_dir) / "checkpoints" / self.name / f"{part}-{fp}"
        return resume_for(cfg, folder, fp, f"{self.name} {part}")

    def _search_point(
        self,
        i: int,
        target: Any,
        lam: Any,
        *,
        space: SearchSpace,
        net: DifferentiableSupernet,
        table: Mapping[str, float],
        span: tuple[float, float],
        dm: Any,
        cfg: DictConfig,
        run_dir: Path,
        common: dict[str, Any],
    ) -> dict[str, Any]:
        """Search one sweep point from a copy of the warm supernet; its record (architecture, attributes, α)."""
        lo, hi = span
        target_ms = None
        if target is not None:
            target_ms = float(target) if self.latency_unit == "ms" else lo + float(target) * (hi - lo)
        latency = (
            LatencyTerm(
                table=table,
                form=self.latency_loss,
                target_ms=max(target_ms, 1e-6),
                beta=self.latency_beta,
                lam=float(lam),
                estimate=self.latency_estimate,
            )
            if target_ms is not None
            else None
        )
        module = DnasModule(copy.deepcopy(net), self._arch(net, i + 1), latency=latency, **common)
        label = f"{self.name} [{self._point_label(target, lam)}]"
        resume = self._resume(cfg, self.run_recipe(space, cfg), f"point-{i}")
        result = self._fit(module, dm, cfg, run_dir, epochs=self.epochs, label=label, resume=resume)
        spec = space.make(result.params)
        with torch.no_grad():  # the mixture's expectation, and the returned architecture's table sum
            final_e = float(module.net.expected_latency(module.arch.probs(), table))
            table_ms = float(module.net.expected_latency(module.net.finalized_probs(result.alphas), table))
        record = {
            "point": i,
            "params": spec.values,
            "attrs": {
                "strategy": self.name,
                "latency_target": None if target is None else float(target),
                "latency_target_ms": target_ms,
                "latency_lambda": None if lam is None else float(lam),
                "expected_latency_ms": round(final_e, 5),
                "table_latency_ms": round(table_ms, 5),
                "dnas_epochs": len(result.history),
                "dnas_seconds": round(result.seconds, 2),
                "dnas_stopped_early": result.stopped_early,
            },
            "history": result.history,
            "alphas": {k: v.tolist() for k, v in module.arch.detached().items()},
        }
        log.info(
            "%s: found %s (E[latency] %.3f ms, its table latency %.3f ms%s)",
            label,
            spec.key,
            final_e,
            table_ms,
            "" if target_ms is None else f", target {target_ms:.3f} ms",
        )
        return record

    def _cached(self, out_dir: Path, i: int, recipe: dict[str, Any]) -> dict[str, Any] | None:
        record = read_json(out_dir / f"point-{i}.json")
        return record if record and record.get("recipe") == recipe else None

    @staticmethod
    def _proposal(space: SearchSpace, record: Mapping[str, Any]) -> Proposal:
        return Proposal(spec=space.make(record["params"]), attrs=dict(record["attrs"]))

    def _arch(self, net: DifferentiableSupernet, stream: int) -> ArchParameters:
        gen = torch.Generator().manual_seed(self.seed * 1000 + stream)
        return ArchParameters(net.alpha_shapes(), init_scale=self.alpha_init_scale, generator=gen)

    def _module_kwargs(self, cfg: DictConfig) -> dict[str, Any]:
        tricks = cfg.tricks
        return {
            "mixing": self.mixing,
            "order": self.order,
            "update": self.update,
            "xnas_grad_bound": self.xnas["grad_bound"],
            "xnas_wipeout": self.xnas["wipeout"],
            "alpha_reg": self.alpha_reg,
            "alpha_reg_weight": self.alpha_reg_weight,
            "aux_skip": self.aux_skip,
            "label_smoothing": float(tricks.get("label_smoothing") or 0.0),
            "channels_last": channels_last_of(tricks),
            **self.optim,
        }

    def _fit(
        self,
        module: DnasModule,
        dm: Any,
        cfg: DictConfig,
        run_dir: Path,
        *,
        epochs: int,
        label: str,
        resume: Resume | None = None,
    ) -> Any:
        return fit_dnas(
            module,
            train_loader=dm.train_dataloader(),
            val_loader=dm.val_dataloader(),
            trainer_cfg=cfg.trainer,
            max_epochs=epochs,
            limit_train_batches=self.limit_train_batches,
            run_dir=str(run_dir / "lightning"),
            label=label,
            max_normal_skips=self.max_normal_skips,
            precision=cfg.tricks.get("precision", "auto"),
            seed=self.seed,
            resume=resume,
        )

"""``search=petridish``: forward growth along the accuracy–latency front (Hu et al., NeurIPS 2019).

Round 0 evaluates a start architecture (the space's smallest at the gradient widths, its baseline, or
nothing when ``start=front`` grows what the study already holds: a DARTS-, GDAS- or XNAS-found front).
Every later round draws parents from the current Pareto front of the study (ranked over every trial, then
the ones not yet expanded, spread across latency; the next rank once the whole front is expanded), attaches every candidate move of the parent with stopped forward values and stopped
input gradients (:mod:`hwnas.models.growth`), trains parent, candidates and an L1-sparse selector jointly
(:mod:`hwnas.lit.petridish`) and proposes children that keep the strongest moves: the top
``moves_per_child``, the top ``2 × moves_per_child``, ... (``children_per_parent`` nested children, so one
parent yields a small and a larger step); a move on a parameter a stronger move already set is skipped. The children are evaluated by the configured evaluator and stored
as trials of the same study (``strategy``, ``petridish_parent``, ``petridish_moves`` columns); as the front
moves, so do the parents, and the gallery grows along the latency axis.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from hwnas.lit.checkpoints import Resume, resume_for
from hwnas.lit.fit import channels_last_of
from hwnas.lit.petridish import GrowthModule, fit_growth
from hwnas.models.growth import GrowingNetwork
from hwnas.models.mixed import ArchParameters
from hwnas.pareto import non_dominated_ranks
from hwnas.search.objectives import Objective
from hwnas.search.strategies.base import Proposal, ProposingStrategy, SearchContext
from hwnas.search.trial_attrs import ARCH_ATTR, KEY_ATTR, trial_attrs
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import config_recipe
from hwnas.utils.errors import ConfigError
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.search")

STARTS = ("minimal", "baseline", "front")
RUN_SUBDIR = "petridish"
OPTIM_KEYS = ("w_lr", "w_momentum", "w_weight_decay", "grad_clip", "a_lr")
#: The growth algorithm's version, part of the key of every round and grow file: a resumed run never
#: replays children chosen by earlier code. 2: parents from the front over all trials; one move per
#: parameter per child.
PETRIDISH_VERSION = 2  # (and: a parent's joint training starts from its trained weights when kept)


class PetridishSearch(ProposingStrategy):
    """Petridish (see the module docstring).

    Args:
        name: The ``strategy`` recorded with every trial.
        start: ``minimal`` (the space's growth seed), ``baseline`` or ``front`` (grow the study's front).
        rounds: Growth rounds after the start.
        parents_per_round: Front models expanded per round (spread across latency).
        children_per_parent: Nested children per parent (top m, top 2m, ... moves).
        moves_per_child: ``m``.
        epochs, limit_train_batches: Joint training of parent, candidates and selector per parent.
        l1: Weight of the selector's L1 penalty.
        optim: ``w_lr``, ``w_momentum``, ``w_weight_decay``, ``grad_clip``, ``a_lr``.
        seed: Seeds the joint training.
    """

    def __init__(
        self,
        *,
        name: str = "petridish",
        start: str = "minimal",
        rounds: int = 3,
        parents_per_round: int = 2,
        children_per_parent: int = 2,
        moves_per_child: int = 1,
        epochs: int = 2,
        limit_train_batches: float | int = 24,
        l1: float = 1e-3,
        optim: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.name = str(name)
        if str(start) not in STARTS:
            raise ConfigError(f"unknown value {start!r}", key="search.strategy.start", choices=list(STARTS))
        self.start = str(start)
        counts = {"rounds": rounds, "parents_per_round": parents_per_round,
                  "children_per_parent": children_per_parent, "moves_per_child": moves_per_child,
                  "epochs": epochs}  # fmt: skip
        for key, value in counts.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"must be a positive integer, got {value!r}", key=f"search.strategy.{key}")
        self.rounds, self.parents_per_round = int(rounds), int(parents_per_round)
        self.children_per_parent, self.moves_per_child = int(children_per_parent), int(moves_per_child)
        self.epochs, self.limit_train_batches, self.l1 = int(epochs), limit_train_batches, float(l1)
        self.optim = dict(
            OmegaConf.to_container(optim, resolve=True) if OmegaConf.is_config(optim) else optim or {}
        )
        unknown = sorted(set(self.optim) - set(OPTIM_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown settings {unknown}", key="search.strategy.optim", choices=list(OPTIM_KEYS)
            )
        self.seed = int(seed)

    # ----- the strategy contract ---------------------------------------------------------------------
    def check(self, *, space: SearchSpace, evaluator: Any, cfg: DictConfig) -> None:
        """Refuse, before any training, a space that cannot grow, a parallel launch or no images."""
        if not callable(getattr(space, "growth_moves", None)):
            raise ConfigError(
                f"search_space={space.name} defines no growth moves for Petridish",
                key="search",
                fix="use search_space=hourglass or darts_cell with search=petridish, or another strategy for this space",
            )
        super().check(space=space, evaluator=evaluator, cfg=cfg)

    def describe(self) -> str:
        return (
            f"{self.name} (start {self.start}, {self.rounds} rounds × {self.parents_per_round} parents × "
            f"{self.children_per_parent} children of {self.moves_per_child}+ moves, {self.epochs} epochs per parent)"
        )

    def planned(self) -> int:
        """Architectures this search proposes at most."""
        return (self.start != "front") + self.rounds * self.parents_per_round * self.children_per_parent

    def recipe(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def proposal_rounds(self, ctx: SearchContext) -> Iterator[list[Proposal]]:
        """Proposals round by round; the caller evaluates each round before asking for the next. Every
        round's proposals are written to ``<run>/petridish/round-<r>.json`` before they are handed out, so a
        resumed run re-offers a recorded round (stored trials are skipped) and grows nothing twice."""
        space, evaluator, cfg, run_dir, study = ctx.space, ctx.evaluator, ctx.cfg, ctx.run_dir, ctx.study
        objectives = ctx.objectives
        recipe = self._recipe(space)
        if self.start != "front":
            spec = space.growth_seed() if self.start == "minimal" else space.baseline()
            yield [Proposal(spec=spec, attrs=self._attrs(0, None, []))]
        elif not _ranked(study, objectives, space):
            raise ConfigError(
                "search.strategy.start=front grows the study's front, but the study has no completed trial",
                key="search.strategy.start",
                fix="run another search first and resume it (search.resume=<run dir>), or start=minimal",
            )
        expanded = {
            t.user_attrs["petridish_parent"]
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get("petridish_parent") and t.user_attrs.get("strategy") == self.name
        }
        for r in range(1, self.rounds + 1):
            path = run_dir / RUN_SUBDIR / f"round-{r}.json"
            record = read_json(path)
            if record and record.get("recipe") == recipe:
                yield [Proposal(space.make(p["params"]), dict(p["attrs"])) for p in record["proposals"]]
                continue
            parents = self._parents(study, objectives, space, expanded)
            if not parents:
                log.info("%s round %d: every front model is expanded or fully grown: done", self.name, r)
                return
            proposals = []
            for parent in parents:
                expanded.add(parent.key)
                ranking = self._grow(parent, space, evaluator, cfg, run_dir, recipe)
                moves = {m.name: m for m in space.growth_moves(parent)}
                compatible = compatible_moves([name for name, _ in ranking], moves)
                for j in range(1, self.children_per_parent + 1):
                    chosen = compatible[: j * self.moves_per_child]
                    if j > 1 and len(chosen) <= (j - 1) * self.moves_per_child:
                        break  # no more moves to add
                    params = dict(parent.values)
                    for name in chosen:
                        params |= dict(moves[name].params)
                    proposals.append(Proposal(space.make(params), self._attrs(r, parent.key, chosen)))
            log.info("%s round %d: %d children of %d parents", self.name, r, len(proposals), len(parents))
            write_json(
                path,
                {
                    "recipe": recipe,
                    "proposals": [{"params": p.spec.values, "attrs": p.attrs} for p in proposals],
                },
            )
            yield proposals

    def _recipe(self, space: SearchSpace) -> dict[str, Any]:
        return json.loads(
            json.dumps({**self.recipe(), "space": space.name, "version": PETRIDISH_VERSION}, default=str)
        )

    # ----- parts -------------------------------------------------------------------------------------
    def _attrs(self, r: int, parent: str | None, moves: Sequence[str]) -> dict[str, Any]:
        return {
            "strategy": self.name,
            "petridish_round": r,
            "petridish_parent": parent,
            "petridish_moves": ",".join(moves) if moves else None,
        }

    def _parents(
        self, study: optuna.Study, objectives: Sequence[Objective], space: SearchSpace, expanded: set[str]
    ) -> list[ArchSpec]:
        """Up to ``parents_per_round`` unexpanded, growable models of the best non-dominated rank that
        still has one, spread across latency.

        Ranks are computed over *every* completed feasible trial, expanded ones included, so a model the
        front dominates is never a parent while an unexpanded front member is left. Once the whole front
        has been expanded (its children all dominated by it), the next rank is grown: the models closest
        to the front, as Petridish grows models near the front rather than stopping with budget left.
        """
        for rank, members in enumerate(_ranked(study, objectives, space)):
            growable = [
                (lat, spec) for lat, spec in members if spec.key not in expanded and space.growth_moves(spec)
            ]
            if not growable:
                continue
            if rank:
                log.info(
                    "%s: every growable front member is expanded; growing non-dominated rank %d",
                    self.name,
                    rank,
                )
            growable.sort(key=lambda p: p[0])
            idx = sorted({int(round(i)) for i in np.linspace(0, len(growable) - 1, self.parents_per_round)})
            return [growable[i][1] for i in idx]
        return []

    def _grow(
        self,
        parent: ArchSpec,
        space: SearchSpace,
        evaluator: Any,
        cfg: DictConfig,
        run_dir: Path,
        recipe: dict,
    ) -> list:
        """The parent's moves by decreasing selector strength (a run dir's earlier result is reused)."""
        path = run_dir / RUN_SUBDIR / f"grow-{parent.stem}.json"
        cached = read_json(path)
        if cached and cached.get("recipe") == recipe:
            return [tuple(r) for r in cached["ranking"]]
        dm = evaluator.train_datamodule
        moves = space.growth_moves(parent)
        torch.manual_seed(self.seed)
        model = space.build(parent, num_classes=int(dm.num_classes), in_channels=int(dm.in_channels))
        init = _load_trained(model, getattr(evaluator, "weights_dir", None), parent)
        net = GrowingNetwork(model, moves)
        arch = ArchParameters({"moves": (len(moves),)}, init_scale=0.0)
        module = GrowthModule(
            net,
            arch,
            l1=self.l1,
            label_smoothing=float(cfg.tricks.get("label_smoothing") or 0.0),
            channels_last=channels_last_of(cfg.tricks),
            **self.optim,
        )
        resume = self._resume(cfg, recipe, parent, getattr(evaluator, "weights_dir", None))
        run = fit_growth(
            module,
            train_loader=dm.train_dataloader(),
            trainer_cfg=cfg.trainer,
            max_epochs=self.epochs,
            limit_train_batches=self.limit_train_batches,
            run_dir=run_dir / "lightning",
            precision=cfg.tricks.get("precision", "auto"),
            seed=self.seed,
            resume=resume,
        )
        top = ", ".join(f"{n} {a:.3f}" for n, a in run.ranking[:4])
        log.info(
            "%s: grew %s (%s): %d moves in %.0fs, strongest %s",
            self.name,
            parent.key,
            "from its trained weights" if init == "trained" else "from scratch: no trained weights kept",
            len(moves),
            run.seconds,
            top,
        )
        write_json(
            path,
            {"recipe": recipe, "parent": parent.to_dict(), "parent_init": init, "ranking": run.ranking,
             "ce": run.ce, "seconds": round(run.seconds, 2)},
        )  # fmt: skip
        resume.done()  # the ranking is stored: the growth's checkpoints are spent
        return run.ranking

    def _resume(self, cfg: DictConfig, recipe: dict, parent: ArchSpec, weights_dir: Path | None) -> Resume:
        """Checkpoints of one growth under ``paths.cache_dir/checkpoints``, keyed by everything that decides
        it (the parent's trained weights included): the same command resumes it."""
        weights = Path(weights_dir) / f"{parent.stem}.pt" if weights_dir else None
        init = (
            hashlib.sha256(weights.read_bytes()).hexdigest() if weights and weights.is_file() else "scratch"
        )
        keys = ("search_space", "dataset", "tricks", "trainer", "evaluator", "seed")
        blob = json.dumps({"recipe": recipe, "parent": parent.key, "init": init, **config_recipe(cfg, keys)},
                          sort_keys=True, default=str)  # fmt: skip
        fp = hashlib.sha256(blob.encode()).hexdigest()[:16]
        folder = Path(cfg.paths.cache_dir) / "checkpoints" / self.name / f"grow-{parent.stem}-{fp}"
        return resume_for(cfg, folder, fp, f"{self.name} growth of {parent.key}")


def _load_trained(model: torch.nn.Module, weights_dir: Path | None, parent: ArchSpec) -> str:
    """Start the joint training from the parent's trained weights when the evaluator kept them (the paper
    grows a trained parent); ``"trained"`` or ``"scratch"``."""
    path = Path(weights_dir) / f"{parent.stem}.pt" if weights_dir is not None else None
    if path is None or not path.is_file():
        return "scratch"
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError) as exc:
        log.warning(
            "petridish: weights of %s at %s not usable (%s); training from scratch", parent.key, path, exc
        )
        return "scratch"
    return "trained"


def compatible_moves(ranking: Sequence[str], moves: Mapping[str, Any]) -> list[str]:
    """The moves of ``ranking`` (strongest first) that a child can hold together: a move that sets a
    parameter a stronger move already set is left out (two upgrades of one DARTS edge: the strongest wins,
    never the weaker by overwriting it), so the top ``k`` are ``k`` real, distinct changes."""
    taken: set[str] = set()
    out = []
    for name in ranking:
        params = set(dict(moves[name].params))
        if params & taken:
            continue
        taken |= params
        out.append(name)
    return out


def _ranked(
    study: optuna.Study, objectives: Sequence[Objective], space: SearchSpace
) -> list[list[tuple[float, ArchSpec]]]:
    """``(latency, spec)`` of the completed feasible trials (one per architecture), grouped by
    non-dominated rank over all of them: ``[front, next rank, ...]``."""
    lat_i = next((i for i, o in enumerate(objectives) if "latency" in o.name), len(objectives) - 1)
    rows: dict[str, tuple[list[float], Any]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        key = t.user_attrs.get(KEY_ATTR)
        if key is None or key in rows or t.values is None or t.user_attrs.get(ARCH_ATTR) is None:
            continue
        if trial_attrs(t).get("feasible") is False:
            continue
        rows[key] = (list(t.values), t.user_attrs[ARCH_ATTR])
    if not rows:
        return []
    keys = list(rows)
    ranks = non_dominated_ranks(
        np.array([rows[k][0] for k in keys], dtype=float), [o.direction for o in objectives]
    )
    out: list[list[tuple[float, ArchSpec]]] = [[] for _ in range(int(ranks.max()) + 1)]
    for k, rank in zip(keys, ranks, strict=True):
        out[int(rank)].append((float(rows[k][0][lat_i]), space.parse(rows[k][1])))
    return [members for members in out if members]

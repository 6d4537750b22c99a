"""Petridish's choices on a hand-made study (no training: the selector's ranking is given): parents come
from the best non-dominated rank over *all* trials, expanded ones included; a child never holds two moves
on one parameter, so the strongest move on a DARTS edge is the one applied and nested children differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf

from hwnas.search.objectives import Objective
from hwnas.search.strategies.base import SearchContext
from hwnas.search.strategies.petridish import PetridishSearch
from hwnas.search_space.base import ArchSpec
from hwnas.search_space.darts_cell import DartsCellSpace
from hwnas.search_space.hourglass import HourglassSpace
from hwnas.utils.io import write_json

OBJECTIVES = [Objective("val/miou", "maximize"), Objective("hw/latency_ms", "minimize")]


def _hourglass() -> HourglassSpace:
    return HourglassSpace(
        num_levels=2, base_channels=[8, 16], layers=[1, 2, 3], kernels=[3, 5], expand=[1.0, 2.0],
        skip_layers=[0, 1], max_channels=32, gradient_widths={"base_channels": 8, "expand": 2.0},
    )  # fmt: skip


def _study() -> optuna.Study:
    return optuna.create_study(directions=[o.direction for o in OBJECTIVES])


def _add(study: optuna.Study, spec: ArchSpec, acc: float, ms: float, **attrs: Any) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            values=[acc, ms], params={}, distributions={},
            user_attrs={"arch_key": spec.key, "arch": spec.to_json(), **attrs},
        )
    )  # fmt: skip


def _rounds(search: PetridishSearch, space: Any, study: optuna.Study, tmp_path: Path, ranking: Any):
    """``proposal_rounds`` with the joint training replaced by a fixed selector ranking (parent -> moves)."""
    search._grow = lambda parent, *a, **k: ranking(parent)  # type: ignore[method-assign]
    cfg = OmegaConf.create({"seed": 0})
    ctx = SearchContext(cfg=cfg, study=study, space=space, evaluator=None, objectives=OBJECTIVES, constraints=[],
                        run_dir=tmp_path)  # fmt: skip
    return search.proposal_rounds(ctx)


def _specs(space: HourglassSpace) -> dict[str, ArchSpec]:
    seed = space.growth_seed()
    grow = {m.name: m for m in space.growth_moves(seed)}
    return {
        name: space.make(seed.values | dict(grow[move].params))
        for name, move in (("A", "down1+layer"), ("B", "down2+layer"), ("C", "up1+layer"), ("D", "up2+layer"))
    }


def test_parents_are_never_dominated_by_an_unexpanded_front_member(tmp_path: Path) -> None:
    """Front {A (fast), B (slow)}; C is dominated by A only. With A expanded, B is the parent, never C (the
    old rule dropped A before the dominance test, so C became a 'front' member and a parent)."""
    space = _hourglass()
    s = _specs(space)
    study = _study()
    _add(study, s["A"], 0.50, 1.0)
    _add(study, s["B"], 0.80, 3.0)
    _add(study, s["C"], 0.45, 1.5)  # dominated by A, not by B
    _add(study, s["D"], 0.10, 5.0)  # dominated by everything
    _add(study, space.growth_seed(), 0.0, 9.0, petridish_parent=s["A"].key, strategy="petridish")  # A grown
    search = PetridishSearch(start="front", rounds=1, parents_per_round=2, children_per_parent=1)
    parents: list[str] = []

    def ranking(parent: ArchSpec) -> list[tuple[str, float]]:
        parents.append(parent.key)
        return [(m.name, 1.0) for m in space.growth_moves(parent)]

    (proposals,) = list(_rounds(search, space, study, tmp_path, ranking))
    assert parents == [s["B"].key], "a dominated model was grown while a front member was unexpanded"
    assert {p.attrs["petridish_parent"] for p in proposals} == {s["B"].key}


def test_a_fully_expanded_front_grows_the_next_rank(tmp_path: Path) -> None:
    space = _hourglass()
    s = _specs(space)
    study = _study()
    _add(study, s["A"], 0.50, 1.0)
    _add(study, s["B"], 0.80, 3.0)
    _add(study, s["C"], 0.45, 1.5)  # rank 1
    _add(study, s["D"], 0.10, 5.0)  # rank 2
    for parent in ("A", "B"):
        _add(study, space.growth_seed(), 0.0, 9.0, petridish_parent=s[parent].key, strategy="petridish")
    search = PetridishSearch(start="front", rounds=1, parents_per_round=2, children_per_parent=1)
    grown: list[str] = []
    ranking = lambda parent: grown.append(parent.key) or [(m.name, 1.0) for m in space.growth_moves(parent)]  # noqa: E731
    list(_rounds(search, space, study, tmp_path, ranking))
    assert grown == [s["C"].key]


@pytest.mark.parametrize("moves_per_child", [1, 2])
def test_children_apply_the_strongest_move_of_each_parameter(tmp_path: Path, moves_per_child: int) -> None:
    """Two upgrades of one DARTS edge (skip -> sep_conv_3x3, skip -> dil_conv_3x3) set the same parameter:
    the child holds the stronger one, and the nested children are distinct, each adding real changes."""
    space = DartsCellSpace(channels=4, layers=3)
    seed = space.growth_seed()
    study = _study()
    _add(study, seed, 0.5, 1.0)
    ranking = [("normal_n0_op0:sep_conv_3x3", 0.9), ("normal_n0_op0:dil_conv_3x3", 0.8),
               ("normal_n1_op1:dil_conv_3x3", 0.7), ("normal_n1_op1:sep_conv_3x3", 0.6),
               ("reduce_n2_op0:sep_conv_3x3", 0.5), ("reduce_n3_op1:dil_conv_3x3", 0.4)]  # fmt: skip
    search = PetridishSearch(start="front", rounds=1, parents_per_round=1, children_per_parent=2,
                             moves_per_child=moves_per_child)  # fmt: skip
    (proposals,) = list(_rounds(search, space, study, tmp_path, lambda _p: ranking))
    assert len(proposals) == 2
    first, second = (p.spec.values for p in proposals)
    assert first["normal_n0_op0"] == second["normal_n0_op0"] == "sep_conv_3x3"  # the stronger move
    assert proposals[0].spec.key != proposals[1].spec.key
    changed = [sum(v[k] != seed.values[k] for k in seed.values) for v in (first, second)]
    assert changed == [moves_per_child, 2 * moves_per_child]  # every chosen move is a real change
    if moves_per_child == 1:
        assert second["normal_n1_op1"] == "dil_conv_3x3"  # the next *compatible* move
        assert (
            proposals[1].attrs["petridish_moves"] == "normal_n0_op0:sep_conv_3x3,normal_n1_op1:dil_conv_3x3"
        )


def test_round_files_of_earlier_code_are_not_replayed(tmp_path: Path) -> None:
    """A resumed run re-offers a round recorded by this code, but never one chosen by earlier code (its
    recipe lacks this code's version): that round is grown again."""
    space = _hourglass()
    seed = space.growth_seed()
    study = _study()
    _add(study, seed, 0.5, 1.0)
    search = PetridishSearch(start="front", rounds=1, parents_per_round=1, children_per_parent=1)
    old_recipe = json.loads(json.dumps({**search.recipe(), "space": space.name}, default=str))
    stale = space.make(seed.values | {"down1_layers": 3})
    write_json(
        tmp_path / "petridish" / "round-1.json",
        {"recipe": old_recipe, "proposals": [{"params": stale.values, "attrs": {"strategy": "petridish"}}]},
    )
    grown: list[str] = []

    def ranking(parent: ArchSpec) -> list[tuple[str, float]]:
        grown.append(parent.key)
        return [(m.name, 1.0) for m in space.growth_moves(parent)]

    (proposals,) = list(_rounds(search, space, study, tmp_path, ranking))
    assert grown == [seed.key] and stale.key not in {p.spec.key for p in proposals}
    (again,) = list(_rounds(search, space, study, tmp_path, ranking))  # this code's record: replayed
    assert grown == [seed.key] and [p.spec.key for p in again] == [p.spec.key for p in proposals]


def test_gradient_points_and_supernets_are_keyed_by_the_codes_version() -> None:
    from types import SimpleNamespace

    from hwnas.evaluators.supernet import SupernetEvaluator
    from hwnas.lit.dnas import DNAS_VERSION
    from hwnas.lit.supernet import SUPERNET_VERSION
    from hwnas.search.strategies.dnas import GradientSearch

    cfg = OmegaConf.create(
        {"seed": 0, "dataset": {}, "tricks": {}, "trainer": {}, "optim": {"weight_decay": 0}}
    )
    recipe = GradientSearch().run_recipe(_hourglass(), cfg)
    assert recipe["version"] == DNAS_VERSION >= 2
    fake = SimpleNamespace(
        space=_hourglass(), train_datamodule=SimpleNamespace(num_classes=3, in_channels=3), train_size=(32, 32),
        max_epochs=1, limit_train_batches=1, n_random=2, distill=1.0, kernel_mode="shared", lr=1e-3,
    )  # fmt: skip
    assert SupernetEvaluator._recipe(fake, cfg)["version"] == SUPERNET_VERSION >= 2


def test_a_parent_grows_from_its_trained_weights_when_they_were_kept(tmp_path: Path) -> None:
    import torch

    from hwnas.search.strategies.petridish import _load_trained

    space = _hourglass()
    parent = space.growth_seed()
    trained = space.build(parent, num_classes=3)
    (tmp_path / "weights").mkdir()
    torch.save(trained.state_dict(), tmp_path / "weights" / f"{parent.stem}.pt")
    fresh = space.build(parent, num_classes=3)
    assert _load_trained(fresh, tmp_path / "weights", parent) == "trained"
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.state_dict().values(), trained.state_dict().values(), strict=True)
    )
    assert _load_trained(space.build(parent, num_classes=3), tmp_path / "none", parent) == "scratch"
    assert _load_trained(space.build(parent, num_classes=3), None, parent) == "scratch"

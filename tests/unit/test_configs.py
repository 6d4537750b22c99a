"""Every option file of every config group composes, and every ``_target_`` node instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, compose_cfg

GROUPS = [
    "search_space",
    "search",
    "dataset",
    "tricks",
    "hardware",
    "evaluator",
    "trainer",
    "logger",
    "callbacks",
    "experiment",
    "debug",
]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_every_option_file_starts_with_a_comment() -> None:
    for path in CONF.rglob("*.yaml"):
        first = path.read_text().lstrip().splitlines()[0]
        if first.startswith("# @package"):
            first = path.read_text().lstrip().splitlines()[1]
        assert first.startswith("#"), f"{path} must start with a one-line comment saying what it is"


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in GROUPS for o in _options(g)], ids=lambda v: str(v)
)
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if group == "dataset" and option == "face_synthetics":
        overrides.append(f"dataset.root={tmp_path}")
    cfg = compose_cfg("train" if group == "callbacks" else "search", overrides, tmp_path)
    node = cfg.get(group) if group not in ("experiment", "debug") else None
    OmegaConf.resolve(cfg)
    if group == "search":  # every option is a strategy (its one strategy: node); no other node names a class
        from hwnas.search.strategies.base import Strategy

        assert isinstance(instantiate(cfg.search.strategy), Strategy)
        assert sorted(k for k, v in cfg.search.items() if OmegaConf.is_dict(v) and "_target_" in v) == sorted(
            ["strategy", "sampler"] if "sampler" in cfg.search else ["strategy"]
        )
    elif group in ("logger", "callbacks"):
        for sub in (node or {}).values():
            if "_target_" in sub and "Wandb" not in sub["_target_"]:
                instantiate(sub)
    elif group == "tricks":
        for a in cfg.tricks.augment:
            instantiate(a)
        instantiate(cfg.tricks.schedule)
        for cb in cfg.tricks.callbacks.values():
            instantiate(cb)
    elif group == "dataset" and option in ("face_synthetics", "cifar10"):
        pass  # instantiating needs real files; the loaders have their own tests
    elif group == "hardware":
        from hwnas.hardware.build import build_profiler

        build_profiler(cfg.hardware)
    elif group == "trainer":
        instantiate(cfg.trainer, logger=False)
    elif node is not None and "_target_" in node:
        instantiate(node)


@pytest.mark.parametrize("name", ["search", "train", "profile", "final"])
def test_main_configs_compose(name: str, tmp_path: Path) -> None:
    cfg = compose_cfg(name, [], tmp_path)
    assert cfg.task_name == name
    assert cfg.seed == 0


def test_run_dirs_do_not_collide_within_a_second() -> None:
    text = (CONF / "hydra" / "default.yaml").read_text()
    assert "%f" in text, "run dirs must include microseconds so two runs in one second do not collide"


@pytest.mark.parametrize("option", _options("final"))
def test_final_stage_options_parse(option: str, tmp_path: Path) -> None:
    """Every ``final=`` option is a valid final stage for the search (checked like the search checks it)."""
    from hwnas.final.gallery import FinalSettings

    cfg = compose_cfg("search", [f"final={option}"], tmp_path)
    settings = FinalSettings.from_cfg(cfg.final)
    assert settings.top_k >= 1 and settings.trainer["max_epochs"] >= 1 and settings.optim["lr"] > 0


def test_supernet_evaluator_brings_its_budget_and_final_init(tmp_path: Path) -> None:
    cfg = compose_cfg("search", ["evaluator=supernet"], tmp_path)
    assert cfg.search.n_trials == 500 and cfg.final.init == "inherit"
    assert cfg.final.inherit.max_epochs < cfg.final.trainer.max_epochs
    cfg = compose_cfg("search", ["evaluator=supernet", "search.n_trials=40", "final.init=both"], tmp_path)
    assert cfg.search.n_trials == 40 and cfg.final.init == "both"  # the command line still wins
    plain = compose_cfg("search", [], tmp_path)
    assert plain.final.init == "scratch" and plain.final.inherit.max_epochs == plain.final.trainer.max_epochs


@pytest.mark.parametrize("strategy", ["darts", "gdas", "xnas", "petridish"])
def test_gradient_mini_mode_defers_the_final_stage_and_the_command_line_still_wins(
    strategy: str, tmp_path: Path
) -> None:
    """Mini mode of a gradient strategy is the search alone (a ~2.5-minute command); the final stage keeps
    final=default's recipe for ``src/final.py run=<dir>``; final=default or final.enabled=true runs it at
    once, and the CIFAR-10 presets keep their evaluation protocol."""
    default = compose_cfg("search", [], tmp_path).final
    mini = compose_cfg("search", [f"search={strategy}"], tmp_path).final
    assert mini.enabled is False and default.enabled is True
    assert {**mini, "enabled": True} == {**default}  # only the switch differs
    assert compose_cfg("search", [f"search={strategy}", "final=default"], tmp_path).final.enabled is True
    assert compose_cfg("search", [f"search={strategy}", "final.enabled=true"], tmp_path).final.enabled is True
    assert compose_cfg("search", ["search=evolution_pareto"], tmp_path).final.enabled is True
    preset = {"darts": "darts_cifar10", "xnas": "xnas_cifar10", "petridish": "petridish_cifar10"}.get(
        strategy
    )
    if preset:
        evaluation = compose_cfg("search", [f"experiment={preset}"], tmp_path).final
        assert evaluation.enabled is True and evaluation.trainer.max_epochs == 600

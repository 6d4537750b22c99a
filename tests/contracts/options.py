"""The project's own plug-ins for the contract suites: found in ``conf/`` (no hand lists of names) and
composed as a search composes them, at tiny sizes.

Rules, not names, decide what an option is given:

* every option file of a group is an implementation (``options``);
* every size or time knob a composed config has is capped (``CAPS``): an int at or under its cap stays,
  anything else becomes the cap (``limit_train_batches: 1.0``, a fraction, becomes 2 batches); a sweep
  (``latency_targets``) keeps its first point. Keys an option lacks are never added (``debug=fast`` adds
  training keys, which ``evaluator=table`` refuses);
* an option is paired with the space and data of the first ``conf/experiment`` that selects it and whose
  data is here, else with ``search.yaml``'s defaults (``pairing``);
* a dataset whose ``root`` is unset needs files on disk and is skipped with that reason (``needs_files``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from tests.conftest import CONF, compose_cfg

#: Size and time knobs, capped where a composed config has them.
CAPS: dict[str, int] = {
    "dataset.batch_size": 8,
    "dataset.image_size": 32,
    "dataset.num_workers": 0,
    "dataset.dataset.num_train": 32,
    "dataset.dataset.num_val": 16,
    "dataset.dataset.num_test": 16,
    "dataset.dataset.max_samples": 48,
    "evaluator.max_epochs": 1,
    "evaluator.limit_train_batches": 2,
    "evaluator.limit_val_batches": 1,
    "evaluator.n_random": 0,
    "evaluator.calibration_batches": 1,
    "evaluator.calibration_batch_size": 4,
    "evaluator.image_size": 32,
    "hardware.warmup": 1,
    "hardware.repeats": 5,
    "hardware.loops": 1,
    "hardware.retries": 0,
    "hardware.loop_gap_s": 0,
    "hardware.calibration_batches": 1,
    "trainer.max_epochs": 1,
    "trainer.limit_train_batches": 2,
    "trainer.limit_val_batches": 1,
    "search.n_trials": 3,
    "search.strategy.warmup_epochs": 1,
    "search.strategy.epochs": 1,
    "search.strategy.limit_train_batches": 2,
    "search.strategy.rounds": 1,
    "search.strategy.parents_per_round": 1,
    "search.strategy.children_per_parent": 1,
    "search.strategy.moves_per_child": 1,
}
#: Sweeps cut to their first point.
SWEEPS = ("search.latency_targets", "search.latency_lambda")


def options(group: str) -> list[str]:
    """Every option file of ``conf/<group>``."""
    found = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert found, f"no options under {CONF / group}"
    return found


def pairing(group: str, option: str, run_dir: Path) -> DictConfig:
    """The config of ``group=option`` with the space and data of the first ``conf/experiment`` (in name
    order) that selects it and whose data is here, else with ``search.yaml``'s defaults; tiny."""
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        selects = yaml.safe_load(path.read_text()).get("defaults", [])
        if any(isinstance(e, dict) and e.get(f"override /{group}") == option for e in selects):
            cfg = compose([f"experiment={path.stem}", f"{group}={option}"], run_dir)
            if cfg.evaluator.get("path") or not needs_files(cfg):  # a table search reads no images
                return cfg
    return compose([f"{group}={option}"], run_dir)


def _cap(value: Any, cap: int) -> int:
    small = isinstance(value, int) and not isinstance(value, bool) and value <= cap
    return value if small else cap


def shrink(cfg: DictConfig) -> DictConfig:
    """Cap every size and time knob ``cfg`` has (``CAPS``) and cut sweeps to their first point."""
    with open_dict(cfg):
        for key, cap in CAPS.items():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(cfg, parent)
            if isinstance(node, DictConfig) and leaf in node and not OmegaConf.is_missing(node, leaf):
                node[leaf] = _cap(node[leaf], cap)
        for key in SWEEPS:
            value = OmegaConf.select(cfg, key)
            if OmegaConf.is_list(value) and len(value) > 1:
                OmegaConf.update(cfg, key, [value[0]])
    return cfg


def compose(overrides: list[str], run_dir: Path) -> DictConfig:
    """The search config of ``overrides`` at smoke-test size, its caches under ``run_dir``."""
    cfg = compose_cfg("search", overrides, run_dir)
    with open_dict(cfg):
        cfg.paths.cache_dir = str(run_dir / "cache")
    return shrink(cfg)


def needs_files(cfg: DictConfig) -> str | None:
    """Why the dataset of ``cfg`` cannot be built here (its ``root`` is unset), or ``None``."""
    node = cfg.dataset
    has_root = "root" in set(node.keys())  # ``"root" in node`` is False for a mandatory ``???`` value
    if has_root and (OmegaConf.is_missing(node, "root") or node.root is None):
        return (
            f"{node.dataset.get('_target_', 'its dataset')} reads files from disk and dataset.root is unset"
        )
    return None


def expect_known_break(request: Any, option: str, known: dict[tuple[str, str], str]) -> None:
    """Mark the running test ``xfail(strict=True)`` when ``(option, rule)`` is a rule the option breaks today
    (reported, not fixed by the contract work): the suite stays green, and the mark fails once it is fixed."""
    rule = request.node.originalname if hasattr(request.node, "originalname") else request.node.name
    reason = known.get((option, rule))
    if reason:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))

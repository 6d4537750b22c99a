"""Shared fixtures: compose the real Hydra configs (as the CLI would) with a tmp run dir."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NB201 = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"

os.environ.setdefault("WANDB_MODE", "disabled")

# Settings that make a real search finish in seconds (tiny data, one short epoch, few timing repeats).
TINY_SEARCH = [
    "dataset.dataset.num_train=64",
    "dataset.dataset.num_val=32",
    "dataset.batch_size=16",
    "evaluator.max_epochs=1",
    "evaluator.limit_train_batches=2",
    "evaluator.limit_val_batches=1",
    "evaluator.image_size=null",  # the proxy at the data size (its own 32x32 default: test_deploy_resolution)
    "hardware.repeats=3",
    "hardware.warmup=1",
    "search_space.base_channels=[8,12]",
    "search_space.max_channels=32",
    "search_space.layers=[1,2]",
    "search_space.kernels=[3,5]",
    "final.enabled=false",
]

# A final stage that finishes in seconds: two front models + the baseline, tiny data, short training.
TINY_FINAL = [
    "dataset.dataset.num_test=24",
    "final.enabled=true",
    "final.top_k=2",
    "final.trainer.max_epochs=2",
    "final.int8.calibration_batches=4",
    "final.eval_batch_size=8",
    "search_space.baseline.base_channels=12",  # the baseline inside TINY_SEARCH's narrowed ranges
]


def compose_cfg(config_name: str, overrides: list[str], run_dir: Path) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with overrides, outside ``@hydra.main``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides)
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(run_dir / "outputs")
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def _make(config_name: str = "search", overrides: list[str] | None = None) -> DictConfig:
        return compose_cfg(config_name, list(overrides or []), tmp_path / "run")

    return _make


@pytest.fixture
def nb201_path() -> Path:
    if not NB201.is_file():
        pytest.skip(f"NB201 ground truth not found at {NB201} (it lives in ../shared/data/nb201/)")
    return NB201

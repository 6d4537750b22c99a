"""Fixtures shared by integration modules: one tiny search logged to every backend, read by several tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hwnas.tasks import search
from tests.conftest import compose_cfg

N_TRIALS = 2
# debug=fast, two candidates narrowed to small nets, a final stage on one front model for two batches.
LOGGED_SEARCH = [
    "debug=fast",
    f"search.n_trials={N_TRIALS}",
    "logger=[tensorboard,wandb]",
    "hardware.repeats=3",
    "hardware.warmup=1",
    "search_space.base_channels=[8,12]",
    "search_space.max_channels=32",
    "search_space.layers=[1,2]",
    "final.jobs=1",
]


@pytest.fixture(scope="session")
def logged_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One search + final stage logged to TensorBoard and W&B (offline, W&B's dirs under the test's tmp)."""
    tmp = tmp_path_factory.mktemp("logged")
    cfg = compose_cfg("search", LOGGED_SEARCH, tmp / "run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")  # CI exports WANDB_MODE=disabled: this test needs W&B for real
        mp.setenv("WANDB_SILENT", "true")
        for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
            mp.setenv(var, str(tmp / "wandb-home"))
        mp.delenv("WANDB_API_KEY", raising=False)
        summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    return {
        "cfg": cfg,
        "run_dir": run_dir,
        "summary": summary,
        "trials": pd.read_csv(run_dir / "trials.csv"),
        "pareto": pd.read_csv(run_dir / "pareto.csv"),
        "final": pd.read_csv(run_dir / "final" / "final.csv"),
    }

"""Shared fixtures: compose the real Hydra configs (as the CLI would) with a tmp run dir."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
NB201 = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"
SERVICES = "make services && source /tmp/hwnas-services/env (tests/services.sh: Debian packages, root)"

os.environ.setdefault("WANDB_MODE", "disabled")

# Tiny data, one short epoch, few timing repeats: for any search space.
TINY_RUN = [
    "dataset.dataset.num_train=64",
    "dataset.dataset.num_val=32",
    "dataset.batch_size=16",
    "evaluator.max_epochs=1",
    "evaluator.limit_train_batches=2",
    "evaluator.limit_val_batches=1",
    "evaluator.image_size=null",  # the proxy at the data size (its own 32x32 default: test_deploy_resolution)
    "hardware.repeats=3",
    "hardware.warmup=1",
    "hardware.loop_gap_s=0",  # the 3 loops per figure stay; their 0.2 s gaps would add minutes to the suite
]
# Settings that make a real search of the default space finish in seconds.
TINY_SEARCH = [
    *TINY_RUN,
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
    "final.baseline_seeds=2",  # the baseline's spread from 2 trainings (the default 3 costs another one)
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


def device_data_or_skip() -> Path:
    """The installed ``qai-hub-models`` folder, or a module-level skip (``make install`` installs it):
    call it at the top of a test module that needs the device data."""
    from hwnas.hardware.device_data import package_dir
    from hwnas.utils.errors import DataError

    try:
        return package_dir()
    except DataError:  # pragma: no cover - the wheel is installed by `make install`
        pytest.skip("qai-hub-models device data not installed", allow_module_level=True)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny convolutions on a shared 2-core machine: OpenMP spin-waits cost seconds, one thread costs ms.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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


@pytest.fixture(scope="session")
def nb201_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A made-up table of all 15,625 NB201 cells (``benchmark.path=...``): for tests that need a fast,
    training-free search but not the real numbers, so they run where ``../shared`` does not exist."""
    import numpy as np
    import pandas as pd

    from hwnas.models.nb201 import OPS
    from hwnas.search_space.nb201 import arch_string

    cells = list(itertools.product(OPS, repeat=6))
    cost = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.5, "nor_conv_1x1": 1.0, "nor_conv_3x3": 2.5}
    work = np.array([sum(cost[op] for op in cell) for cell in cells])
    noise = np.random.default_rng(0).random((len(cells), 2))
    path = tmp_path_factory.mktemp("nb201") / "synthetic_nb201.csv"
    pd.DataFrame(
        {
            "arch": [arch_string(cell) for cell in cells],
            "cifar10_test_acc": np.round(60 + 2 * work + 5 * noise[:, 0], 4),
            "pixel3_latency_ms": np.round(2 + 1.5 * work + noise[:, 1], 4),
        }
    ).to_csv(path, index=False)
    return path


def service_missing(require_env: str, why: str) -> NoReturn:
    """Skip a test whose real service is absent, or fail it where ``$require_env=1`` (CI sets it:
    there, a missing service is a broken set-up, never a reason to skip)."""
    if os.environ.get(require_env) == "1":
        pytest.fail(f"{why} ({require_env}=1: this run must have it)", pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class PgDatabase:
    """A fresh database on the test PostgreSQL server. ``url`` names the user but no password, as a
    config should (``search.storage=...``); ``env`` hands the password over as users do
    (``HWNAS_STORAGE_PASSWORD``); ``full_url`` is for the test's own reads."""

    url: str
    full_url: str
    password: str

    @property
    def env(self) -> dict[str, str]:
        return {"HWNAS_STORAGE_PASSWORD": self.password}


@pytest.fixture
def pg_database() -> Iterator[PgDatabase]:
    """A new, empty database on the server ``$HWNAS_TEST_PG_URL`` names (its role may create databases),
    dropped after the test. Skipped where there is none; failed instead under ``HWNAS_REQUIRE_POSTGRES=1``."""
    base = os.environ.get("HWNAS_TEST_PG_URL")
    if not base:
        service_missing(
            "HWNAS_REQUIRE_POSTGRES", f"no PostgreSQL test server (HWNAS_TEST_PG_URL): {SERVICES}"
        )
    from sqlalchemy import create_engine, make_url, text

    from hwnas.utils.secrets import scrub

    server = make_url(base)
    try:
        server.get_dialect().import_dbapi()
    except ImportError as exc:
        service_missing(
            "HWNAS_REQUIRE_POSTGRES", f"no PostgreSQL driver ({exc}): pip install -e '.[postgres]'"
        )
    name = f"hwnas_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any driver error: the server is not usable
        admin.dispose()
        why = f"PostgreSQL test server {scrub(base)} unusable: {scrub(str(exc).splitlines()[0])}"
        service_missing("HWNAS_REQUIRE_POSTGRES", why)
    db = server.set(database=name)
    try:
        yield PgDatabase(
            url=db.set(password=None).render_as_string(hide_password=False),
            full_url=db.render_as_string(hide_password=False),
            password=str(server.password or ""),
        )
    finally:
        with admin.connect() as conn:  # FORCE: a killed worker's connection may linger
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_db(request: pytest.FixtureRequest) -> PgDatabase | None:
    """Runs a test on both storages: ``None`` for SQLite files, a fresh :class:`PgDatabase` for PostgreSQL."""
    return request.getfixturevalue("pg_database") if request.param == "postgresql" else None

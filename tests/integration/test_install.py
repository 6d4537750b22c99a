"""A real install: the wheel carries the configs, ``python -m hwnas`` runs from any directory, and a user's
own project adds its classes and configs through Hydra's search path.

The wheel is built from the checkout offline (``--no-build-isolation``) and installed with ``--no-deps``
into a fresh venv that sees the project's venv for its dependencies (torch is not installed again); the
commands run from a directory outside the checkout, so nothing can come from the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from hwnas.search_space.base import SearchSpace
from hwnas.testing import SearchSpaceContract
from hwnas.utils.config import build_space
from tests.conftest import TINY_RUN, compose_cfg

ROOT = Path(__file__).resolve().parents[2]
USER_PROJECT = ROOT / "tests" / "user_project"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("install")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT), "-w",
          str(tmp / "dist")], cwd=tmp)  # fmt: skip
    (wheel,) = (tmp / "dist").glob("hwnas-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp
        ).stdout.strip()
    )
    (purelib / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # the dependencies
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
          str(wheel)], cwd=tmp)  # fmt: skip
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"wheel": wheel, "python": python, "venv": venv, "cwd": elsewhere}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QAI_HUB_API_TOKEN")}
    return {**env, "WANDB_MODE": "disabled", **extra}


@pytest.mark.integration
def test_the_wheel_carries_every_config(installed: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    shipped = {
        n.removeprefix("hwnas/conf/") for n in names if n.startswith("hwnas/conf/") and n.endswith(".yaml")
    }
    source = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == source and "search.yaml" in shipped


@pytest.mark.integration
def test_python_m_hwnas_searches_from_outside_the_checkout(installed: dict[str, Path]) -> None:
    python, cwd = str(installed["python"]), installed["cwd"]
    where = _run([python, "-c", "import hwnas; print(hwnas.__file__)"], cwd, _env()).stdout.strip()
    assert where.startswith(str(installed["venv"])), where  # the wheel's copy, not the checkout
    run_dir = cwd / "run"
    _run([python, "-m", "hwnas", "search", "search.n_trials=2", "final.enabled=false", *TINY_RUN,
          f"hydra.run.dir={run_dir}"], cwd, _env())  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["unique_evaluated"] == 2 and (run_dir / "search.log").is_file()
    usage = _run([str(installed["venv"] / "bin" / "hwnas"), "--help"], cwd, _env()).stdout
    assert "search,final,train,profile" in usage
    bad = subprocess.run(
        [python, "-m", "hwnas", "serch"], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    assert bad.returncode == 2 and "[command]" in bad.stderr and "search" in bad.stderr


@pytest.mark.integration
def test_a_users_own_space_and_config_through_the_search_path(installed: dict[str, Path]) -> None:
    python, cwd = str(installed["python"]), installed["cwd"]
    run_dir = cwd / "user_run"
    _run([python, "-m", "hwnas", "search", f"hydra.searchpath=[file://{USER_PROJECT / 'conf'}]",
          "search_space=tiny_seg", "search.n_trials=3", "final.enabled=false", *TINY_RUN, f"hydra.run.dir={run_dir}"],
         cwd, _env(PYTHONPATH=str(USER_PROJECT)))  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["search_space"] == "tiny_seg" and summary["unique_evaluated"] == 3


class TestAUsersSpaceFoundThroughTheSearchPath(SearchSpaceContract):
    """The user's space, selected by its own YAML through ``hydra.searchpath``, keeps the space contract."""

    @pytest.fixture
    def space(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SearchSpace:
        monkeypatch.syspath_prepend(str(USER_PROJECT))
        overrides = [f"hydra.searchpath=[file://{USER_PROJECT / 'conf'}]", "search_space=tiny_seg"]
        space = build_space(compose_cfg("search", overrides, tmp_path))
        assert type(space).__module__ == "my_project.spaces"
        return space

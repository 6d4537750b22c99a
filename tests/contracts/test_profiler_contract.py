"""The profiler contract (:class:`hwnas.testing.ProfilerContract`), run on every ``conf/hardware`` option as
a search builds it (no device, no network).

The profilers come from the option files themselves: each ``conf/hardware/<name>.yaml`` is composed into
the search config and built with ``build_profiler`` (as ``tests/unit/test_configs.py`` does), once plain
and once behind the latency cache a search puts in front of it. A new option file is covered without
editing this test. Each must turn a model into an honest ``LatencyReport`` whose fields say where the
number came from. Rules, not names, decide what an option is given:

* no remote credentials: the AI Hub token and the SNPE SDK are unset, so nothing can reach the network
  (``backend: auto`` then resolves offline); a profiler whose ``check()`` still says it cannot run here
  (``ProfilerUnavailable``: a remote service, an SDK, a device) is skipped with its reason;
* an option that reads a latency table (``path`` + ``column`` keys) reads a small table of the test's own,
  with its configured column names, holding the test's architecture key;
* timing settings an option has (``warmup``, ``repeats``, ``loops``, ``loop_gap_s``, ...) are cut to the
  minimum (``tests/contracts/options.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from hwnas.hardware.base import Profiler
from hwnas.hardware.build import build_profiler
from hwnas.hardware.qai_hub import TOKEN_ENV
from hwnas.testing import ProfilerContract
from hwnas.utils.errors import ProfilerUnavailable
from tests.contracts.options import compose, options

KEY = "toy-arch"
OPTIONS = options("hardware")


def _own_table(node: dict, tmp: Path) -> Path:
    """A latency table with the option's own key and latency column names, holding ``KEY``."""
    key_column, column = node.get("key_column", "arch"), node["column"]
    path = tmp / "latency_table.csv"
    path.write_text(f"{key_column},{column}\n{KEY},1.25\nother,2.5\n")
    return path


def build_option(option: str, tmp: Path, *, cached: bool) -> Profiler:
    """``conf/hardware/<option>.yaml`` composed into the search config and built as a search builds it."""
    cfg = compose([f"hardware={option}"], tmp / "run")
    node = OmegaConf.to_container(cfg.hardware)
    if "path" in node and "column" in node:
        cfg.hardware.path = str(_own_table(node, tmp))
    return build_profiler(cfg.hardware, cache_dir=tmp / "latency" if cached else None)


def test_the_options_are_found() -> None:
    assert "cpu" in OPTIONS and len(OPTIONS) >= 4, f"too few conf/hardware options: {OPTIONS}"


class TestConfiguredProfilers(ProfilerContract):
    @pytest.fixture(
        params=[(o, cached) for o in OPTIONS for cached in (False, True)],
        ids=lambda p: f"{p[0]}+cache" if p[1] else p[0],
    )
    def profiler(self, request, tmp_path, monkeypatch) -> Profiler:
        monkeypatch.delenv(TOKEN_ENV, raising=False)
        monkeypatch.delenv("SNPE_ROOT", raising=False)
        monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "no-client.ini"))
        option, cached = request.param
        prof = build_option(option, tmp_path, cached=cached)
        try:
            prof.check()  # part of the contract: anything but ProfilerUnavailable fails every test
        except ProfilerUnavailable as exc:
            pytest.skip(f"hardware={option} cannot run here: {exc}")
        return prof

    @pytest.fixture
    def arch_key(self) -> str:
        return KEY

"""The profiler contract, run on every ``conf/hardware`` option as a search builds it (no device, no network).

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
* timing settings an option has (``warmup``, ``repeats``, ``loop_gap_s``) are cut to the minimum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict
from torch import nn

from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.build import build_profiler
from hwnas.hardware.qai_hub import TOKEN_ENV
from hwnas.utils.errors import ProfilerUnavailable
from tests.conftest import CONF, compose_cfg

SHAPE = (1, 3, 16, 16)
KEY = "toy-arch"
OPTIONS = sorted(p.stem for p in (CONF / "hardware").glob("*.yaml"))
#: Timing settings cut to the minimum where an option has them.
FAST = {"warmup": 1, "repeats": 5, "loop_gap_s": 0}


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).train()


def _own_table(node: dict, tmp: Path) -> Path:
    """A latency table with the option's own key and latency column names, holding ``KEY``."""
    key_column, column = node.get("key_column", "arch"), node["column"]
    path = tmp / "latency_table.csv"
    path.write_text(f"{key_column},{column}\n{KEY},1.25\nother,2.5\n")
    return path


def build_option(option: str, tmp: Path, *, cached: bool) -> Profiler:
    """``conf/hardware/<option>.yaml`` composed into the search config and built as a search builds it."""
    cfg = compose_cfg("search", [f"hardware={option}"], tmp / "run")
    with open_dict(cfg):
        node = OmegaConf.to_container(cfg.hardware)
        for key, value in FAST.items():
            if key in node:
                cfg.hardware[key] = value
        if "path" in node and "column" in node:
            cfg.hardware.path = str(_own_table(node, tmp))
    return build_profiler(cfg.hardware, cache_dir=tmp / "latency" if cached else None)


def test_the_options_are_found() -> None:
    assert "cpu" in OPTIONS and len(OPTIONS) >= 4, f"no conf/hardware options found under {CONF}"


@pytest.fixture(
    params=[(o, cached) for o in OPTIONS for cached in (False, True)],
    ids=lambda p: f"{p[0]}+cache" if p[1] else p[0],
)
def profiler(request, tmp_path, monkeypatch) -> Profiler:
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


def _calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((2, *SHAPE[1:]), dtype=np.float32) for _ in range(2)]


def test_report_is_honest_and_consistent(profiler):
    model = tiny_net()
    report = profiler.profile(model, SHAPE, calibration=_calibration(), arch_key=KEY)
    assert isinstance(report, LatencyReport)
    assert report.median_ms > 0
    assert report.p10_ms <= report.median_ms <= report.p90_ms
    assert report.backend == profiler.backend
    assert report.precision == profiler.precision
    assert report.source in {"measured", "estimated", "cached", "predicted"}
    assert report.device
    if report.source == "measured" and report.backend != "table":
        assert report.n_samples >= 1 and report.toolchain
    if report.source == "estimated":
        assert report.n_samples == 0 and report.p10_ms == report.p90_ms
    if report.source == "predicted":  # an interval, never timed runs of this model
        assert report.n_samples == 0 and report.p10_ms < report.p90_ms
    assert model.training  # the caller's model is left as it was


def test_report_round_trips_through_json(profiler, tmp_path):
    report = profiler.profile(tiny_net(), SHAPE, calibration=_calibration(), arch_key=KEY)
    back = LatencyReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back == report
    assert back.as_metrics()["hw/latency_ms"] == report.median_ms


def test_identity_and_description(profiler):
    json.dumps(profiler.cache_identity())
    assert profiler.target in profiler.describe()
    size = tuple(profiler.input_size) if profiler.input_size is not None else (32, 24)
    assert profiler.resolve_input_shape((3, 32, 24)) == (profiler.batch_size, 3, *size)


def test_profile_reuses_a_given_onnx_file(profiler, tmp_path):
    from hwnas.hardware.export import export_onnx

    path = export_onnx(tiny_net(), SHAPE, tmp_path / "given.onnx")
    report = profiler.profile(tiny_net(), SHAPE, onnx_path=path, calibration=_calibration(), arch_key=KEY)
    assert report.median_ms > 0

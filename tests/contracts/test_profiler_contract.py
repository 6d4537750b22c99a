"""The profiler contract, reused by every profiler that can run on this machine (no device, no network).

To add a profiler: add a factory to ``PROFILERS``. Each must turn a model into an honest
``LatencyReport`` whose fields say where the number came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.cache import CachedProfiler, LatencyCache
from hwnas.hardware.estimate import EstimateProfiler
from hwnas.hardware.onnxruntime import OnnxRuntimeProfiler
from hwnas.hardware.predictor.profiler import PredictorProfiler
from hwnas.hardware.table import TableProfiler

SHAPE = (1, 3, 16, 16)
KEY = "toy-arch"


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).train()


_HOST = {"_target_": "hwnas.hardware.onnxruntime.OnnxRuntimeProfiler", "warmup": 1, "repeats": 5}


def _table(tmp: Path) -> Profiler:
    path = tmp / "lat.csv"
    path.write_text(f"arch,dev_ms\n{KEY},1.25\nother,2.5\n")
    return TableProfiler(path, "dev_ms")


PROFILERS: dict[str, Callable[[Path], Profiler]] = {
    "cpu_fp32": lambda tmp: OnnxRuntimeProfiler(warmup=1, repeats=5, workdir=tmp / "onnx"),
    "cpu_int8": lambda tmp: OnnxRuntimeProfiler(
        target="cpu_int8", precision="int8", warmup=1, repeats=5, workdir=tmp / "onnx"
    ),
    "estimate": lambda tmp: EstimateProfiler(workdir=tmp / "onnx"),
    "table": _table,
    "cached_estimate": lambda tmp: CachedProfiler(
        EstimateProfiler(workdir=tmp / "onnx"), LatencyCache(tmp / "c")
    ),
    "predictor": lambda tmp: PredictorProfiler(
        settings={"measure": {**_HOST, "workdir": str(tmp / "onnx")}, "store_dir": str(tmp / "store")}
    ),
}


@pytest.fixture(params=sorted(PROFILERS))
def profiler(request, tmp_path) -> Profiler:
    return PROFILERS[request.param](tmp_path)


def _calibration() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((2, *SHAPE[1:]), dtype=np.float32) for _ in range(2)]


def test_check_passes_here(profiler):
    profiler.check()


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
    assert profiler.resolve_input_shape((3, 32, 24)) == (profiler.batch_size, 3, 32, 24)


def test_profile_reuses_a_given_onnx_file(profiler, tmp_path):
    from hwnas.hardware.export import export_onnx

    path = export_onnx(tiny_net(), SHAPE, tmp_path / "given.onnx")
    report = profiler.profile(tiny_net(), SHAPE, onnx_path=path, calibration=_calibration(), arch_key=KEY)
    assert report.median_ms > 0

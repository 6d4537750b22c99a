"""The profiler contract suite (:class:`~hwnas.hardware.base.Profiler`).

Subclass :class:`ProfilerContract` and provide ``profiler`` (yours, built; call ``check()`` in the fixture
and skip on ``ProfilerUnavailable`` where it cannot run)::

    class TestMyProfiler(ProfilerContract):
        @pytest.fixture
        def profiler(self):
            return MyProfiler(repeats=5)

The suite profiles a tiny convolutional network at :data:`SHAPE` under the architecture key of the
``arch_key`` fixture (``"toy-arch"``; a look-up profiler's table must hold it).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from torch import nn

from hwnas.hardware.base import LatencyReport, Profiler

SHAPE = (1, 3, 16, 16)
SOURCES = ("measured", "estimated", "cached", "predicted")


def tiny_net() -> nn.Module:
    """The network every rule profiles (left in training mode: the profiler must not change that)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).train()


def calibration() -> list[np.ndarray]:
    """Two batches of real-looking inputs, for int8 targets."""
    rng = np.random.default_rng(0)
    return [rng.random((2, *SHAPE[1:]), dtype=np.float32) for _ in range(2)]


class ProfilerContract:
    """Rules every profiler keeps: an honest ``LatencyReport`` saying where the number came from.

    Fixtures: ``profiler`` (yours, required); ``arch_key`` (default ``"toy-arch"``).
    """

    @pytest.fixture
    def arch_key(self) -> str:
        return "toy-arch"

    def _profile(self, profiler: Profiler, arch_key: str, **kwargs) -> LatencyReport:
        return profiler.profile(tiny_net(), SHAPE, calibration=calibration(), arch_key=arch_key, **kwargs)

    def test_report_is_honest_and_consistent(self, profiler: Profiler, arch_key: str) -> None:
        model = tiny_net()
        report = profiler.profile(model, SHAPE, calibration=calibration(), arch_key=arch_key)
        assert isinstance(report, LatencyReport)
        assert report.median_ms > 0, f"median {report.median_ms} ms"
        assert report.p10_ms <= report.median_ms <= report.p90_ms, (
            report.p10_ms,
            report.median_ms,
            report.p90_ms,
        )
        assert report.backend == profiler.backend
        assert report.precision == profiler.precision
        assert report.source in SOURCES, f"source {report.source!r} not in {SOURCES}"
        assert report.device, "say which device the number is for"
        if report.source == "measured" and report.backend != "table":
            assert report.n_samples >= 1 and report.toolchain, (
                "a measurement names its runs and its toolchain"
            )
        if report.source == "estimated":
            assert report.n_samples == 0 and report.p10_ms == report.p90_ms
        if report.source == "predicted":  # an interval, never timed runs of this model
            assert report.n_samples == 0 and report.p10_ms < report.p90_ms
        assert model.training, "the caller's model is left as it was"

    def test_report_round_trips_through_json(self, profiler: Profiler, arch_key: str) -> None:
        """Reports are cached and stored as JSON and logged as flat ``hw/*`` metrics."""
        report = self._profile(profiler, arch_key)
        back = LatencyReport.from_dict(json.loads(json.dumps(report.to_dict())))
        assert back == report
        assert back.as_metrics()["hw/latency_ms"] == report.median_ms

    def test_identity_and_description(self, profiler: Profiler) -> None:
        """The cache key part is JSON; the start-up line names the target; the input shape follows the
        profiler's batch size and input size."""
        json.dumps(profiler.cache_identity())
        assert profiler.target in profiler.describe()
        size = tuple(profiler.input_size) if profiler.input_size is not None else (32, 24)
        assert profiler.resolve_input_shape((3, 32, 24)) == (profiler.batch_size, 3, *size)

    def test_profile_reuses_a_given_onnx_file(self, profiler: Profiler, arch_key: str, tmp_path) -> None:
        from hwnas.hardware.export import export_onnx

        path = export_onnx(tiny_net(), SHAPE, tmp_path / "given.onnx")
        report = self._profile(profiler, arch_key, onnx_path=path)
        assert report.median_ms > 0

"""The profiler contract: a model (or its ONNX file) and an input shape in, a ``LatencyReport`` out.

A profiler is a plain object. The search calls it directly before training (so over-budget candidates
cost nothing); ``hwnas.callbacks.latency.LatencyCallback`` is a thin Lightning adapter that logs the
same report as ``hw/*``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Source = Literal["measured", "estimated", "cached", "predicted"]
Precision = Literal["fp32", "fp16", "int8"]


@dataclass(frozen=True)
class LatencyReport:
    """Where a latency number came from, and how much to trust it.

    Attributes:
        median_ms: Median latency of one inference, milliseconds.
        p10_ms: 10th percentile (equal to the median for a single-valued estimate).
        p90_ms: 90th percentile.
        n_samples: Number of timed runs behind the figures (0 for a pure estimate).
        backend: ``onnxruntime``, ``qai_hub``, ``snpe``, ``estimate``, ``table``.
        device: Human-readable device, e.g. ``"Samsung Galaxy S21 (Snapdragon 888) Hexagon NPU"``.
        precision: ``fp32`` / ``fp16`` / ``int8``.
        source: ``measured`` | ``estimated`` | ``cached`` (a cache hit of a measured/estimated report
            keeps the original in ``extra["original_source"]``) | ``predicted`` (``hardware=predictor``:
            a model fitted to measurements of other architectures; ``p10_ms``/``p90_ms`` are quantiles of
            its predictive distribution and ``extra["predictor"]`` holds the stated interval).
        toolchain: Versions of everything that affects the number (onnxruntime, qai-hub, SNPE, ...).
        extra: Backend-specific details (per-layer info, non-NPU layers, job ids, ...).
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    n_samples: int
    backend: str
    device: str
    precision: str
    source: str
    toolchain: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def spread_ms(self) -> float:
        return self.p90_ms - self.p10_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyReport:
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def as_metrics(self, prefix: str = "hw/") -> dict[str, float | str]:
        """Flat metrics for loggers and CSV rows."""
        return {
            f"{prefix}latency_ms": self.median_ms,
            f"{prefix}latency_p10_ms": self.p10_ms,
            f"{prefix}latency_p90_ms": self.p90_ms,
            f"{prefix}latency_samples": self.n_samples,
            f"{prefix}backend": self.backend,
            f"{prefix}device": self.device,
            f"{prefix}precision": self.precision,
            f"{prefix}source": self.source,
            **self._predictor_metrics(prefix),
        }

    def _predictor_metrics(self, prefix: str) -> dict[str, float | str]:
        """``hardware=predictor``'s provenance: why it was measured, or the interval it was predicted with."""
        info = self.extra.get("predictor")
        if not isinstance(info, dict):
            return {}
        out: dict[str, float | str] = {f"{prefix}predictor_purpose": str(info.get("purpose", ""))}
        if "interval_ms" in info:
            lo, hi = info["interval_ms"]
            out.update({f"{prefix}interval_lo_ms": float(lo), f"{prefix}interval_hi_ms": float(hi)})
            out[f"{prefix}interval_level"] = float(info.get("level", 0.0))
        if "n_measurements" in info:
            out[f"{prefix}predictor_measurements"] = int(info["n_measurements"])
        return out


class Profiler(ABC):
    """Turns a model into a ``LatencyReport``.

    Subclasses must not touch the network or external tools in ``__init__``; ``check()`` verifies
    preconditions (tokens, SDKs, devices) up front and raises ``ProfilerUnavailable`` with the fix.
    """

    #: Name of the hardware target (``cpu``, ``cpu_int8``, ``snapdragon888``, ...).
    target: str = "base"
    backend: str = "base"
    precision: str = "fp32"
    #: Spatial size ``(H, W)`` to profile at; ``None`` = the dataset's image size.
    input_size: tuple[int, int] | None = None
    #: Batch size of the profiled input (1 = single-image latency).
    batch_size: int = 1
    #: How many real input batches the caller should pass as ``calibration`` (0 = none needed).
    calibration_batches: int = 0

    def resolve_input_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The full input shape to profile, from the dataset's ``(C, H, W)`` (or ``(B, C, H, W)``).

        ``input_size`` (if set) overrides ``H, W``; ``batch_size`` replaces the batch dimension.
        """
        dims = tuple(int(d) for d in data_shape)
        if len(dims) == 4:
            dims = dims[1:]
        if len(dims) != 3:
            raise ValueError(f"expected an input shape (C, H, W) or (B, C, H, W), got {data_shape}")
        c, h, w = dims
        if self.input_size is not None:
            h, w = (int(v) for v in self.input_size)
        return (int(self.batch_size), c, h, w)

    def check(self) -> None:  # noqa: B027 - optional hook
        """Raise ``ProfilerUnavailable`` if this profiler cannot run here. Default: always can."""

    @abstractmethod
    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        """Profile ``model`` (an ``nn.Module``; ``onnx_path`` may point at its export already on disk).

        Args:
            model: The torch model in eval mode.
            input_shape: Full input shape including batch, e.g. ``(1, 3, 256, 256)``.
            onnx_path: An existing ONNX export of ``model`` to reuse (optional).
            calibration: Batches of real inputs (``list[np.ndarray]``) for int8 calibration.
            arch_key: The architecture's stable key (``ArchSpec.key``). Needed by look-up profilers
                (``TableProfiler``) and the latency cache; others may use it to name files.
        """

    def profile_many(
        self,
        models: list[tuple[Any, str | Path | None, str | None]],
        input_shape: tuple[int, ...],
        *,
        calibration: Any | None = None,
    ) -> list[LatencyReport]:
        """Profile several ``(model, onnx_path, arch_key)`` for a side-by-side comparison (the final stage's
        gallery and its baseline). Default: one after another, right for estimates, tables and remote
        devices. A profiler timing on this machine interleaves them (A B C A B C ...) so that drift of the
        machine's speed cannot decide a latency ratio; it then reports ``extra["rounds_ms"]``, each model's
        figure per round, from which :func:`latency_ratios` takes ratios round by round."""
        return [
            self.profile(m, input_shape, onnx_path=p, calibration=calibration, arch_key=k)
            for m, p, k in models
        ]

    def cache_identity(self) -> dict[str, Any]:
        """Everything besides the architecture and input shape that changes the number."""
        return {"target": self.target, "backend": self.backend, "precision": self.precision}

    def describe(self) -> str:
        """One line for start-up logs: which target/backend and what it needs."""
        return f"{self.target} via {self.backend} ({self.precision})"


def latency_ratios(reports: list[LatencyReport], reference: int) -> list[tuple[float, float, float]]:
    """``(median, p25, p75)`` of each report's latency over ``reports[reference]``'s: round by round when
    both were timed in one interleaved pass (``extra["rounds_ms"]``), else the ratio of the medians."""
    import numpy as np

    ref = reports[reference]
    out = []
    for r in reports:
        a, b = r.extra.get("rounds_ms"), ref.extra.get("rounds_ms")
        if a and b and len(a) == len(b):
            q = np.asarray(a, float) / np.asarray(b, float)
            out.append((float(np.median(q)), float(np.percentile(q, 25)), float(np.percentile(q, 75))))
        else:
            q = r.median_ms / ref.median_ms
            out.append((q, q, q))
    return out

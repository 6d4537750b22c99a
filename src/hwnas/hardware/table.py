"""``hardware=table``: latency looked up in a measured table (e.g. NAS-Bench-201's hardware columns).

Tables are how a search reuses measurements made once on a device the search cannot reach (the
HW-NAS-Bench Pixel 3, Raspberry Pi, FPGA and GPU columns of ``nb201_hw.csv.gz``), and how a user who
built their own table with ``src/profile.py`` can search against it without the device.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas.hardware._common import parse_input_size
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.utils.errors import CandidateFailed, ConfigError, DataError


class TableProfiler(Profiler):
    """Latency of an architecture read from one column of a CSV table, by architecture key.

    The table is read lazily on first use (never in ``__init__``), then kept in memory.

    Args:
        path: CSV file (``.csv`` or ``.csv.gz``).
        column: Column holding latencies in milliseconds, e.g. ``pixel3_latency_ms``.
        key_column: Column holding the architecture keys (``ArchSpec.key``), e.g. ``arch``.
        target: Target name for logs and cache keys (defaults to ``table:<column>``).
        device: Human-readable device the column was measured on (defaults to the column name).
        precision: Precision the column was measured at.
        input_size: Kept for config symmetry; a table has one fixed input size.
        batch_size: Kept for config symmetry.
    """

    backend = "table"

    def __init__(
        self,
        path: str | Path,
        column: str,
        key_column: str = "arch",
        *,
        target: str | None = None,
        device: str | None = None,
        precision: str = "fp32",
        input_size: Any = None,
        batch_size: int = 1,
    ) -> None:
        self.path = Path(path)
        self.column = column
        self.key_column = key_column
        self.target = target or f"table:{column}"
        self.device = device or column
        self.precision = precision
        self.input_size = parse_input_size(input_size)
        self.batch_size = int(batch_size)
        self._table: dict[str, float] | None = None

    def _load(self) -> dict[str, float]:
        if self._table is not None:
            return self._table
        import pandas as pd

        if not self.path.is_file():
            raise DataError(
                f"latency table not found: {self.path}",
                key="hardware.path",
                fix="point hardware.path at an existing CSV, e.g. ${paths.shared_dir}/data/nb201/nb201_hw.csv.gz",
            )
        header = pd.read_csv(self.path, nrows=0)
        columns = list(header.columns)
        for key, name in (("hardware.key_column", self.key_column), ("hardware.column", self.column)):
            if name not in columns:
                raise ConfigError(f"column {name!r} is not in {self.path.name}", key=key, choices=columns)
        df = pd.read_csv(self.path, usecols=[self.key_column, self.column])
        df = df.dropna(subset=[self.column])
        self._table = dict(zip(df[self.key_column].astype(str), df[self.column].astype(float), strict=True))
        return self._table

    def check(self) -> None:
        self._load()

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "table": str(self.path), "column": self.column}

    def profile_key(self, arch_key: str) -> LatencyReport:
        """The table's latency for ``arch_key``; ``CandidateFailed`` if the table lacks it."""
        table = self._load()
        if arch_key not in table:
            raise CandidateFailed(
                f"architecture {arch_key!r} is not in table {self.path.name} ({self.column})"
            )
        ms = float(table[arch_key])
        return LatencyReport(
            median_ms=ms,
            p10_ms=ms,
            p90_ms=ms,
            n_samples=1,
            backend=self.backend,
            device=self.device,
            precision=self.precision,
            source="measured",
            toolchain={},
            extra={"table": str(self.path), "column": self.column, "key": arch_key},
        )

    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        if arch_key is None:
            raise CandidateFailed(
                "a table profiler needs the architecture key: call profile(..., arch_key=spec.key)"
            )
        return self.profile_key(arch_key)

    def describe(self) -> str:
        return f"{self.target} via table {self.path.name}[{self.column}]"

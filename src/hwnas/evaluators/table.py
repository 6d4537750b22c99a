"""``evaluator=table``: every objective is a look-up in a measured table (NAS-Bench-201 × hardware).

No training: the search's quality can be scored against the table's exact Pareto front in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hwnas.benchmark.table import load_table
from hwnas.evaluators.base import Evaluator
from hwnas.hardware._common import check_choice
from hwnas.hardware.base import Profiler
from hwnas.hardware.build import build_profiler
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import CandidateFailed, ConfigError

log = logging.getLogger("hwnas.search")

LATENCY_FROM = ("table", "hardware")


class TableEvaluator(Evaluator):
    """Looks ``accuracy`` and ``latency_ms`` up by architecture key (the NB201 arch string).

    Args:
        path: CSV (optionally gzipped) with a ``key_column`` and the two columns below.
        accuracy: Column used as the ``accuracy`` objective (e.g. ``cifar10_test_acc``).
        latency: Column used as the ``latency_ms`` objective (e.g. ``pixel3_latency_ms``).
        key_column: Column holding the architecture key.
        latency_from: ``table`` (look ``latency`` up) or ``hardware``: ask the ``hardware=`` profiler by
            architecture key (no model is built), e.g. ``hardware=predictor`` measuring a table column
            for a few architectures and predicting the rest (``experiment=nb201_predictor``).
    """

    cheap_metrics = ("latency_ms", "params", "flops_m")
    expensive_metrics = ("accuracy",)
    latency_metrics = ("latency_ms", "hw/latency_ms")

    def __init__(
        self, *, path: str, accuracy: str, latency: str, key_column: str = "arch", latency_from: str = "table"
    ) -> None:
        self.path = str(path)
        self.accuracy = accuracy
        self.latency = latency
        self.key_column = key_column
        self.latency_from = check_choice(latency_from, LATENCY_FROM, key="evaluator.latency_from")
        self.profiler: Profiler | None = None

    def setup(self, *, cfg: DictConfig, space: SearchSpace, run_dir: Path) -> None:
        df = load_table(self.path, accuracy=self.accuracy, latency=self.latency)
        cols = [c for c in (self.accuracy, self.latency, "params", "flops_m") if c in df.columns]
        sub = df.set_index(self.key_column)[cols]
        self.rows: dict[str, dict[str, float]] = {str(k): v for k, v in sub.to_dict(orient="index").items()}
        if self.latency_from == "hardware":  # latency from the hardware= profiler, by key
            self.profiler = build_profiler(cfg.hardware, cache_dir=Path(cfg.paths.cache_dir) / "latency")
            _check_by_key(self.profiler)
            self.profiler.check()
            self.input_shape = self.profiler.resolve_input_shape((3, 32, 32))  # NB201's CIFAR input
        log.info(
            "table: %s (%d architectures), accuracy=%s, latency=%s",
            self.path,
            len(self.rows),
            self.accuracy,
            self.latency,
        )

    def _row(self, spec: ArchSpec) -> dict[str, float]:
        row = self.rows.get(spec.key)
        if row is None:
            raise CandidateFailed(f"architecture {spec.key} is not in the table {self.path}")
        return row

    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        row = self._row(spec)
        out: dict[str, Any] = {"latency_ms": float(row[self.latency]), "hw/source": "measured (table)"}
        if self.profiler is not None:
            report = self.profiler.profile(None, self.input_shape, arch_key=spec.key)
            out.update(report.as_metrics())
            out["latency_ms"] = report.median_ms
            out["hw/source"] = report.extra.get("original_source", report.source)
        for k in ("params", "flops_m"):
            if k in row:
                out[k] = float(row[k])
        return out

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        return {"accuracy": float(self._row(spec)[self.accuracy])}

    @property
    def confirms_near_front(self) -> bool:
        return bool(getattr(self.profiler, "measure_near_front", False))

    def confirm(self, spec: ArchSpec) -> dict[str, Any] | None:
        """Measure ``spec``'s predicted latency by key with the predictor's measuring profiler (its budget)."""
        report = self.profiler.confirm(None, self.input_shape, arch_key=spec.key)  # type: ignore[union-attr]
        if report is None:
            return None
        out = {**report.as_metrics(), "latency_ms": report.median_ms}
        out["hw/source"] = report.extra.get("original_source", report.source)
        return out

    def sizes(self) -> dict[str, Any]:
        return {"latency_input_shape": list(self.input_shape)} if self.profiler is not None else {}

    def describe(self) -> str:
        if self.profiler is not None:
            return f"table look-up of {self.accuracy} in {self.path}; latency from {self.profiler.describe()}"
        return f"table look-up of {self.accuracy} and {self.latency} in {self.path}"


def _check_by_key(profiler: Profiler) -> None:
    """No model is built here: the profiler must answer by architecture key (a table, or a predictor
    measuring a table with NB201 features)."""
    from hwnas.hardware.predictor.profiler import PredictorProfiler
    from hwnas.hardware.table import TableProfiler

    ok = isinstance(profiler, TableProfiler) or (
        isinstance(profiler, PredictorProfiler)
        and profiler.features != "onnx"
        and isinstance(profiler.measurer, TableProfiler)
    )
    if not ok:
        raise ConfigError(
            f"evaluator=table builds no model, and {profiler.describe()} needs one",
            key="evaluator.latency_from",
            choices=LATENCY_FROM,
            fix="use hardware=table, or hardware=predictor predictor.measure=table (experiment=nb201_predictor), "
            "or evaluator.latency_from=table",
        )

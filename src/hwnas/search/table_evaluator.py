"""``evaluator=table``: every objective is a look-up in a measured table (NAS-Bench-201 × hardware).

No training: the search's quality can be scored against the table's exact Pareto front in seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hwnas.benchmark.table import load_table
from hwnas.search.evaluator import Evaluator
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import CandidateFailed

log = logging.getLogger("hwnas.search")


class TableEvaluator(Evaluator):
    """Looks ``accuracy`` and ``latency_ms`` up by architecture key (the NB201 arch string).

    Args:
        path: CSV (optionally gzipped) with a ``key_column`` and the two columns below.
        accuracy: Column used as the ``accuracy`` objective (e.g. ``cifar10_test_acc``).
        latency: Column used as the ``latency_ms`` objective (e.g. ``pixel3_latency_ms``).
        key_column: Column holding the architecture key.
    """

    cheap_metrics = ("latency_ms", "params", "flops_m")
    expensive_metrics = ("accuracy",)

    def __init__(self, *, path: str, accuracy: str, latency: str, key_column: str = "arch") -> None:
        self.path = str(path)
        self.accuracy = accuracy
        self.latency = latency
        self.key_column = key_column

    def setup(self, *, cfg: DictConfig, space: SearchSpace, run_dir: Path) -> None:
        df = load_table(self.path, accuracy=self.accuracy, latency=self.latency)
        cols = [c for c in (self.accuracy, self.latency, "params", "flops_m") if c in df.columns]
        sub = df.set_index(self.key_column)[cols]
        self.rows: dict[str, dict[str, float]] = {str(k): v for k, v in sub.to_dict(orient="index").items()}
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
        for k in ("params", "flops_m"):
            if k in row:
                out[k] = float(row[k])
        return out

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        return {"accuracy": float(self._row(spec)[self.accuracy])}

    def describe(self) -> str:
        return f"table look-up of {self.accuracy} and {self.latency} in {self.path}"

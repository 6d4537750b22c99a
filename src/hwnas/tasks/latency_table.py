"""Build a latency table for your own device: profile many architectures, write one CSV.

``python src/profile.py hardware=<target> table.n=200`` (random architectures of the space, seeded) or
``table.archs=<folder of arch JSONs | trials.csv>`` writes ``<run dir>/latency_table.csv``. Feed it back
with ``hardware=table hardware.path=<csv> hardware.column=latency_ms`` to search offline against the
numbers measured on your device (e.g. a phone through SNPE or AI Hub).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from hwnas.hardware.build import build_profiler, calibration_for, input_shape_for
from hwnas.hardware.cheap import cheap_metrics
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.config import build_datamodule, build_space, run_dir_of
from hwnas.utils.errors import CandidateFailed, ConfigError

log = logging.getLogger("hwnas.profile")

COLUMNS = [
    "arch",
    "latency_ms",
    "latency_p10_ms",
    "latency_p90_ms",
    "n_samples",
    "source",
    "backend",
    "device",
    "precision",
    "params",
    "macs",
    "peak_act_mb",
    "input_shape",
    "error",
    "arch_json",
]


def architectures(table: DictConfig, space: SearchSpace, seed: int) -> list[ArchSpec]:
    """The architectures to profile: ``table.archs`` (folder of JSONs or a trials.csv) or ``table.n`` random."""
    source = table.get("archs")
    if source:
        path = Path(str(source))
        if path.is_dir():
            specs = [space.load(p) for p in sorted(path.glob("*.json"))]
        elif path.suffix == ".csv" and path.is_file():
            rows = pd.read_csv(path)
            if "arch" not in rows.columns:
                raise ConfigError(
                    f"{path} has no 'arch' column",
                    key="table.archs",
                    fix="pass a trials.csv/pareto.csv written by a search, or a folder of arch JSONs",
                )
            specs = [space.parse(a) for a in rows["arch"].dropna().unique()]
        else:
            raise ConfigError(
                f"{path} is neither a folder of JSONs nor a CSV",
                key="table.archs",
                fix="pass a folder of architecture JSONs or a trials.csv from a search",
            )
        if not specs:
            raise ConfigError(f"no architectures found in {path}", key="table.archs")
        return specs
    n = int(table.get("n") or 0)
    if n < 1:
        raise ConfigError(
            f"must be >= 1, got {n}", key="table.n", fix="e.g. table.n=100, or set table.archs=<dir>"
        )
    rng = np.random.default_rng(seed)
    seen: dict[str, ArchSpec] = {}
    for _ in range(n * 20):
        spec = space.sample(rng)
        seen.setdefault(spec.key, spec)
        if len(seen) == n:
            break
    return list(seen.values())


def run(cfg: DictConfig) -> dict[str, Any]:
    """Profile every architecture and write ``latency_table.csv``; a failing one gets an ``error`` row."""
    run_dir = run_dir_of(cfg)
    profiler = build_profiler(
        cfg.hardware, cache_dir=cfg.get("latency_cache_dir") if cfg.get("use_cache") else None
    )
    profiler.check()
    space = build_space(cfg)
    datamodule = build_datamodule(cfg)
    shape = input_shape_for(profiler, datamodule)
    calibration = calibration_for(profiler, datamodule)
    specs = architectures(cfg.table, space, int(cfg.seed))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        row: dict[str, Any] = {
            "arch": spec.key,
            "arch_json": spec.to_json(),
            "input_shape": "x".join(map(str, shape)),
        }
        try:
            space.validate(spec, input_size=(shape[2], shape[3]))
            model = space.build(
                spec, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels
            ).eval()
            torch.manual_seed(0)
            report = profiler.profile(model, shape, calibration=calibration, arch_key=spec.key)
            row.update(
                latency_ms=report.median_ms,
                latency_p10_ms=report.p10_ms,
                latency_p90_ms=report.p90_ms,
                n_samples=report.n_samples,
                backend=report.backend,
                device=report.device,
                precision=report.precision,
                source=report.extra.get("original_source", report.source),
            )
            row.update({k: v for k, v in cheap_metrics(model, shape).items() if k in COLUMNS})
        except (CandidateFailed, ConfigError) as exc:
            row["error"] = str(getattr(exc, "reason", exc))
        rows.append(row)
        log.info(
            "[%d/%d] %s %s",
            i,
            len(specs),
            spec.key,
            f"{row['latency_ms']:.3f} ms" if "latency_ms" in row else f"failed: {row.get('error')}",
        )
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out = run_dir / "latency_table.csv"
    df.to_csv(out, index=False)
    summary = {
        "rows": len(df),
        "failed": int(df["error"].notna().sum()),
        "path": str(out),
        "target": profiler.target,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    (run_dir / "latency_table.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        "latency table of %d architectures (%d failed) in %.1fs -> %s",
        summary["rows"],
        summary["failed"],
        summary["seconds"],
        out,
    )
    log.info("search against it: hardware=table hardware.path=%s hardware.column=latency_ms", out)
    return summary

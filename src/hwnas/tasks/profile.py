"""``profile.run(cfg)``: measure one architecture on one hardware target and write ``latency.json``."""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from omegaconf import DictConfig

from hwnas.hardware.build import build_profiler, calibration_for, input_shape_for
from hwnas.hardware.cheap import cheap_metrics
from hwnas.hardware.export import export_onnx
from hwnas.utils.config import build_datamodule, build_space, resolve_arch, run_dir_of
from hwnas.utils.errors import CandidateFailed, HwnasError

log = logging.getLogger("hwnas.profile")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Profile ``cfg.arch`` (or the space's baseline) on ``cfg.hardware``.

    Writes ``<run dir>/latency.json``: the ``LatencyReport`` fields, ``cheap`` (params, MACs, FLOPs,
    peak activation MB), ``arch`` and ``input_shape``; the ONNX export is kept next to it.

    Returns:
        The dict written to ``latency.json``.
    """
    run_dir = run_dir_of(cfg)
    torch.manual_seed(int(cfg.get("seed", 0)))
    cache_dir = cfg.get("latency_cache_dir") if cfg.get("use_cache", False) else None
    profiler = build_profiler(cfg.hardware, cache_dir=cache_dir)
    profiler.check()  # a missing token/SDK/device fails here, before any work
    space = build_space(cfg)
    datamodule = build_datamodule(cfg)
    shape = input_shape_for(profiler, datamodule)
    spec = resolve_arch(cfg, space, input_size=(shape[2], shape[3]))
    model = space.build(spec, num_classes=datamodule.num_classes, in_channels=datamodule.in_channels).eval()
    try:
        onnx_path = export_onnx(model, shape, run_dir / f"{spec.stem}.onnx")
        report = profiler.profile(
            model,
            shape,
            onnx_path=onnx_path,
            calibration=calibration_for(profiler, datamodule),
            arch_key=spec.key,
        )
    except CandidateFailed as exc:
        raise HwnasError(f"profiling {spec.key} failed: {exc.reason}") from exc
    result = {
        **report.to_dict(),
        "spread_ms": report.spread_ms,
        "arch": spec.to_dict(),
        "input_shape": list(shape),
        "onnx_path": str(onnx_path),
        "cheap": cheap_metrics(model, shape, onnx_path=onnx_path),
    }
    path = run_dir / "latency.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    log.info(
        "%s on %s: median %.3f ms (p10 %.3f, p90 %.3f, n=%d, %s/%s) -> %s",
        spec.key, profiler.target, report.median_ms, report.p10_ms, report.p90_ms,
        report.n_samples, report.backend, report.source, path,
    )  # fmt: skip
    return result

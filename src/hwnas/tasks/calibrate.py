"""``calibrate.run(cfg)``: fit the Snapdragon 888 roofline's constants to measured latencies.

``python src/profile.py hardware=snapdragon888 estimate.calibrate=<measurements.csv> [estimate.out=<yaml>]``;
see ``hwnas.hardware.calibrate`` for the model, the inputs and what is written. Given a folder of AI Hub
profiles kept by ``hardware.qai_hub.profile_dir`` instead, the fit is per layer (``hwnas.hardware.layer_fit``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from hwnas.hardware import calibrate
from hwnas.hardware._common import onnx_file, parse_input_size
from hwnas.utils.config import build_datamodule, build_space, run_dir_of
from hwnas.utils.errors import DataError, HwnasError

log = logging.getLogger("hwnas.profile")


def _shape(text: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    """A row's ``input_shape`` (``1x3x256x256``) or the target's default."""
    if isinstance(text, str) and text.count("x") == 3:
        return tuple(int(v) for v in text.split("x"))
    return default


def run(cfg: DictConfig) -> dict[str, Any]:
    """Rebuild and export each measured architecture, refit the constants, write the option file."""
    calibrate.check_target(cfg)
    run_dir = run_dir_of(cfg)
    source = str(cfg.estimate.calibrate)
    if Path(source).is_dir():
        return _run_profiles(cfg, Path(source), run_dir)
    data = calibrate.read_measurements(source)
    base = calibrate.base_constants(cfg)
    space = build_space(cfg)
    dm = build_datamodule(cfg)
    c, h, w = (int(d) for d in dm.input_shape()[-3:])
    size = parse_input_size(cfg.hardware.get("input_size")) or (h, w)
    default = (int(cfg.hardware.get("batch_size", 1)), c, *size)
    workdir = cfg.hardware.get("workdir")
    graphs, latencies, t0 = [], [], time.perf_counter()
    for i, row in data.iterrows():
        try:
            spec = space.parse(str(row["arch"]))
        except HwnasError as exc:
            raise DataError(
                f"row {i} of {source}: not an architecture of search_space={space.name} ({exc.message})",
                key="estimate.calibrate",
                fix="calibrate with the search_space= the measurements were made on",
            ) from exc
        shape = _shape(row.get("input_shape"), default)
        torch.manual_seed(0)
        model = space.build(spec, num_classes=dm.num_classes, in_channels=dm.in_channels).eval()
        with onnx_file(model, shape, onnx_path=None, arch_key=spec.key, workdir=workdir) as path:
            graphs.append(calibrate.graph_terms(path, base))
        latencies.append(float(row["latency_ms"]))
    constants, report = calibrate.fit_constants(graphs, latencies, base=base)
    files = calibrate.write_outputs(
        run_dir, cfg.estimate.get("out"), constants=constants, report=report, source=source
    )
    return _done(report, files, t0)


def _run_profiles(cfg: DictConfig, folder: Path, run_dir: Path) -> dict[str, Any]:
    """``estimate.calibrate=<folder>`` of kept AI Hub profiles: the per-layer fit (``layer_fit``)."""
    import onnx

    from hwnas.hardware import layer_fit
    from hwnas.hardware.profile_files import read_profile

    t0, base = time.perf_counter(), calibrate.base_constants(cfg)
    files = sorted(folder.glob("*.json"))
    records = [read_profile(f) for f in files]
    missing = [str(f) for f, r in zip(files, records, strict=True) if not Path(str(r.get("onnx"))).is_file()]
    if missing or not records:
        raise DataError(
            f"{folder}: {len(records)} profiles, {len(missing)} without their ONNX graph: {missing[:5]}",
            key="estimate.calibrate",
            fix="profile with hardware.backend=qai_hub and hardware.qai_hub.profile_dir=<folder> (it records "
            "each graph's export; keep hardware.workdir's exports)",
        )
    matched = [
        layer_fit.match_profile(str(r.get("name")), onnx.load(str(r["onnx"])), r["profile"]) for r in records
    ]
    constants, fit = layer_fit.fit_layers(matched, base=base)
    meas = [g.total_us / 1000.0 for g in matched]
    before = [layer_fit.predict_us(g, base) / 1000.0 for g in matched]
    after = [layer_fit.predict_us(g, constants) / 1000.0 for g in matched]
    report = {**calibrate.error_report(before, after, meas), **fit, "per_layer": True}
    files_out = calibrate.write_outputs(
        run_dir, cfg.estimate.get("out"), constants=constants, report=report, source=f"{folder} (per layer)"
    )
    log.info("per-layer fit on %d layers of %d profiles; %.0f%% of device layer time paired with a roofline "
             "row; layer MdAPE %.1f%%", fit["n_layers"], fit["n_models"], 100 * fit["matched_share"],
             100 * fit["layer_mdape"])  # fmt: skip
    return _done(report, files_out, t0)


def _done(report: dict[str, Any], files: dict[str, str], t0: float) -> dict[str, Any]:
    fitted = ", ".join(f"{k}: {v:.4g}" for k, v in report["constants_after"].items())
    log.info(
        "calibrated on %d measurements in %.1fs: median error %.1f%% -> %.1f%%, Spearman %.3f -> %.3f",
        report["n"],
        time.perf_counter() - t0,
        100 * report["before"]["median_abs_error"],
        100 * report["after"]["median_abs_error"],
        report["before"]["spearman"],
        report["after"]["spearman"],
    )
    log.info("constants: %s", fitted)
    log.info(
        "keep them: cp %s conf/hardware/snapdragon888_calibrated.yaml, then hardware=snapdragon888_calibrated "
        "(or hardware=snapdragon888 hardware.backend=estimate 'hardware.estimate.constants={%s}')",
        files["option"],
        fitted,
    )
    return {**report, **files}

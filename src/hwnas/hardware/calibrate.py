"""Fit the Snapdragon 888 roofline's documented constants to latencies measured on the phone.

``python src/profile.py hardware=snapdragon888 estimate.calibrate=<measurements.csv>`` rebuilds every
measured architecture, exports it at the measured input shape, and refits the constants that set the
roofline's rates and overheads (``FITTED``) by least squares on ``log(estimate) - log(measured)``,
pulled gently towards the documented values (so a handful of measurements cannot send a constant to an
absurd value that happens to fit them). The structural constants (peak TOPS, channel padding, on-chip
size, bytes per element) stay as documented.

The measurements CSV needs a latency column (``latency_ms`` or ``measured_ms``) and an architecture
column (``arch_json`` or ``arch``: JSON, or an NB201 string): a latency table from ``src/profile.py
hardware=snapdragon888 hardware.backend=qai_hub table.n=30`` or ``predictor_measurements.csv`` from a
``hardware=predictor`` search. Writes ``snapdragon888_calibrated.yaml`` (a complete ``hardware=`` option
to keep in ``conf/hardware/``) and ``calibration.json`` (the fit, per-architecture errors before/after).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hwnas.hardware.estimate import HexagonConstants, layer_terms, output_map
from hwnas.utils.errors import ConfigError, DataError

log = logging.getLogger("hwnas.profile")

#: The constants refitted, with the bounds a fit may move them within.
FITTED: dict[str, tuple[float, float]] = {
    "efficiency": (0.005, 1.0),
    "depthwise_penalty": (1.0, 64.0),
    "dram_efficiency": (0.05, 1.0),
    "onchip_gbps": (5.0, 1000.0),
    "resize_penalty": (1.0, 32.0),
    "per_layer_us": (0.1, 200.0),
    "per_inference_us": (1.0, 5000.0),
}
LATENCY_COLUMNS = ("latency_ms", "measured_ms")
ARCH_COLUMNS = ("arch_json", "arch")


def read_measurements(path: str | Path) -> pd.DataFrame:
    """``arch`` (text a space can parse), ``latency_ms`` and, when given, ``input_shape`` of each row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"measurements file not found: {path}",
            key="estimate.calibrate",
            fix="pass a latency_table.csv (src/profile.py ... table.n=30) or a predictor_measurements.csv",
        )
    df = pd.read_csv(path)
    lat = next((c for c in LATENCY_COLUMNS if c in df.columns), None)
    arch = next((c for c in ARCH_COLUMNS if c in df.columns), None)
    if lat is None or arch is None:
        raise DataError(
            f"{path.name} needs a latency column {LATENCY_COLUMNS} and an architecture column {ARCH_COLUMNS}",
            key="estimate.calibrate",
            choices=list(df.columns),
        )
    out = pd.DataFrame({"arch": df[arch], "latency_ms": pd.to_numeric(df[lat], errors="coerce")})
    if "input_shape" in df.columns:
        out["input_shape"] = df["input_shape"]
    if "error" in df.columns:
        out = out[df["error"].isna()]
    out = out.dropna(subset=["arch", "latency_ms"])
    out = out[out["latency_ms"] > 0].reset_index(drop=True)
    if len(out) < 3:
        raise DataError(
            f"{path.name} has {len(out)} usable measurements; a fit needs at least 3",
            key="estimate.calibrate",
        )
    return out


def _arrays(terms: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {
        "macs": np.array([t["macs"] for t in terms], dtype=np.float64),
        "depthwise": np.array([t["depthwise"] for t in terms], dtype=bool),
        "resize": np.array([t["resize"] for t in terms], dtype=bool),
        "elems": np.array([t["elems"] for t in terms], dtype=np.float64),
        "fits": np.array([t["fits"] for t in terms], dtype=bool),
        "op": np.array([t.get("op", "") for t in terms], dtype=object),
    }


def op_factor(a: dict[str, np.ndarray], c: HexagonConstants) -> np.ndarray | float:
    """Each row's ``op_factors`` entry (1 for the rest), or 1 when the constants have none."""
    if not c.op_factors:
        return 1.0
    table = dict(c.op_factors)
    return np.array([table.get(op, 1.0) for op in a["op"]])


def row_us(a: dict[str, np.ndarray], c: HexagonConstants) -> np.ndarray:
    """Each row's roofline microseconds under ``c`` (``estimate.layer_time_us``, vectorised)."""
    rate = np.where(a["depthwise"], c.mac_rate / c.depthwise_penalty, c.mac_rate)
    moved = a["elems"] * c.bytes_per_element * np.where(a["resize"], c.resize_penalty, 1.0)
    bw = np.where(a["fits"], c.onchip_gbps, c.dram_gbps * c.dram_efficiency) * 1e9
    return np.maximum(a["macs"] / rate, moved / bw) * op_factor(a, c) * 1e6 + c.per_layer_us


def predict_ms(a: dict[str, np.ndarray], c: HexagonConstants) -> float:
    """The roofline estimate (ms) of one graph's ``layer_terms`` arrays under constants ``c``
    (the same formula as ``estimate.layer_time_us``, vectorised)."""
    us = row_us(a, c)
    return output_map(float((us.sum() + c.per_inference_us) / 1000.0), c)


def fit_constants(
    graphs: list[list[dict[str, Any]]],
    latencies_ms: np.ndarray,
    *,
    base: HexagonConstants | None = None,
    prior_weight: float = 0.05,
    loss: str = "linear",
    f_scale: float = 1.0,
) -> tuple[HexagonConstants, dict[str, Any]]:
    """Refit ``FITTED`` to measured latencies of graphs given as ``layer_terms`` rows.

    Least squares in log space over the measurements, plus ``prior_weight`` times the log-distance of
    each constant from its documented value (a weak pull that settles constants the data cannot see).
    ``loss``/``f_scale`` are ``scipy.optimize.least_squares``'s: ``"soft_l1"`` with a scale near the
    error band that matters keeps a few outlying models from dragging the constants. Returns the
    constants and a report (errors before/after, constants before/after).
    """
    from scipy.optimize import least_squares

    base = base or HexagonConstants()
    y = np.log(np.asarray(latencies_ms, dtype=np.float64))
    arrays = [_arrays(g) for g in graphs]
    names = list(FITTED)
    x0 = np.log([getattr(base, n) for n in names])
    lo = np.log([FITTED[n][0] for n in names])
    hi = np.log([FITTED[n][1] for n in names])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def consts(x: np.ndarray) -> HexagonConstants:
        return replace(base, **{n: float(np.exp(v)) for n, v in zip(names, x, strict=True)})

    def residuals(x: np.ndarray) -> np.ndarray:
        c = consts(x)
        pred = np.log([predict_ms(a, c) for a in arrays])
        return np.r_[pred - y, np.sqrt(prior_weight) * (x - x0)]

    result = least_squares(
        residuals, x0, bounds=(lo, hi), method="trf", x_scale="jac", loss=loss, f_scale=f_scale
    )
    fitted = consts(result.x)
    before = [predict_ms(a, base) for a in arrays]
    after = [predict_ms(a, fitted) for a in arrays]
    report = {
        **error_report(before, after, np.exp(y)),
        "constants_before": {n: getattr(base, n) for n in names},
        "constants_after": {n: getattr(fitted, n) for n in names},
        "optimizer": {"status": int(result.status), "cost": float(result.cost), "nfev": int(result.nfev)},
    }
    return fitted, report


def error_report(before: Any, after: Any, measured: Any) -> dict[str, Any]:
    """``n``, ``before``/``after`` (median and max absolute error, Spearman) and ``per_architecture``."""
    from scipy.stats import spearmanr

    meas = np.asarray(measured, dtype=np.float64)

    def err(pred: np.ndarray) -> dict[str, float]:
        rel = np.abs(pred / meas - 1.0)
        rho = float(spearmanr(pred, meas)[0]) if len(meas) > 2 else float("nan")
        return {"median_abs_error": float(np.median(rel)), "max_abs_error": float(rel.max()), "spearman": rho}

    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    return {
        "n": len(meas),
        "before": err(b),
        "after": err(a),
        "per_architecture": [
            {"measured_ms": float(m), "before_ms": float(x), "after_ms": float(z)}
            for m, x, z in zip(meas, b, a, strict=True)
        ],
    }


def calibrated_option(constants: HexagonConstants, *, source: str, report: dict[str, Any]) -> str:
    """A complete ``conf/hardware`` option (the shipped ``snapdragon888.yaml`` with ``backend: estimate``
    and the fitted constants), with a header saying where the constants came from."""
    from omegaconf import OmegaConf

    from hwnas.utils.config import CONF_DIR

    node = OmegaConf.load(CONF_DIR / "hardware" / "snapdragon888.yaml")
    node.backend = "estimate"
    fitted = {n: round(float(getattr(constants, n)), 6) for n in FITTED}
    for n in ("out_scale", "out_power"):  # a base's fitted output map (the V68 one) is kept, not refitted
        if getattr(constants, n) != 1.0:
            fitted[n] = round(float(getattr(constants, n)), 6)
    if constants.op_factors:  # learned by a per-layer fit (hwnas.hardware.layer_fit)
        fitted["op_factors"] = {k: round(v, 4) for k, v in constants.op_factors}
    node.estimate = {"constants": fitted}
    head = (
        f"# Snapdragon 888 roofline estimate with constants fitted to {report['n']} measurements ({source})\n"
        f"# by `src/profile.py hardware=snapdragon888 estimate.calibrate=...`: median error "
        f"{report['before']['median_abs_error']:.1%} -> {report['after']['median_abs_error']:.1%}.\n"
        f"# Keep it as conf/hardware/snapdragon888_calibrated.yaml and pick it with hardware=snapdragon888_calibrated.\n"
    )
    return head + OmegaConf.to_yaml(node)


def check_target(cfg: Any) -> None:
    """Calibration fits the Snapdragon 888 roofline: refuse another ``hardware=`` with the fix."""
    target = str(cfg.hardware.get("_target_", ""))
    if not target.endswith("snapdragon888.snapdragon888"):
        raise ConfigError(
            f"estimate.calibrate fits the Snapdragon 888 roofline, not {target or 'this hardware option'}",
            key="hardware",
            fix="run it as: python src/profile.py hardware=snapdragon888 estimate.calibrate=<measurements.csv>",
        )


def base_constants(cfg: Any) -> HexagonConstants:
    """The constants the run starts from: documented defaults with ``hardware.estimate.constants`` on top."""
    from omegaconf import OmegaConf

    given = OmegaConf.select(cfg, "hardware.estimate.constants") or {}
    given = OmegaConf.to_container(given, resolve=True) if OmegaConf.is_config(given) else dict(given)
    unknown = sorted(set(given) - set(asdict(HexagonConstants())))
    if unknown:
        raise ConfigError(
            f"unknown estimate constants {unknown}",
            key="hardware.estimate.constants",
            choices=sorted(asdict(HexagonConstants())),
        )
    return replace(HexagonConstants(), **given)


def graph_terms(onnx_path: str | Path, constants: HexagonConstants) -> list[dict[str, Any]]:
    import onnx

    return layer_terms(onnx.load(str(onnx_path)), constants)


def write_outputs(
    run_dir: Path, out: str | None, *, constants: HexagonConstants, report: dict[str, Any], source: str
) -> dict[str, str]:
    """``calibration.json`` in the run dir, the option file there (or at ``out``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    option = Path(out) if out else run_dir / "snapdragon888_calibrated.yaml"
    option.parent.mkdir(parents=True, exist_ok=True)
    option.write_text(calibrated_option(constants, source=source, report=report))
    details = run_dir / "calibration.json"
    details.write_text(json.dumps({"source": source, **report}, indent=2) + "\n")
    return {"option": str(option), "details": str(details)}

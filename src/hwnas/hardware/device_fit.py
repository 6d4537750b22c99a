"""Fit the Hexagon roofline to one device's published latencies, and judge it with whole families held out.

Why: ``hardware/estimate.py`` is a hand-set roofline; Qualcomm's published measurements
(``hardware/device_data.py``) on the graphs of ``hardware/zoo.py`` say how far it is from each chip.
Per (device, runtime, precision) this module

* refits the roofline's rate and overhead constants (``hardware.calibrate.fit_constants``, the same
  least squares in log space the ``estimate.calibrate`` task uses) on the measured models, and
* scores the fit from **pooled out-of-fold predictions**: the models of one family (ResNet 18/50/101
  together, see ``ZooModel.family``) are predicted by constants fitted without any of them
  (``sklearn.model_selection.LeaveOneGroupOut``), so a score says how the estimate does on an
  architecture family it has never seen — the situation of a search.

The fit has two stages, both by robust least squares in log space (``soft_l1`` at the ±20 % band,
``ROBUST_SCALE``) and with nothing chosen on held-out data:
the roofline's rates and overheads first, then the **output map** ``ms = out_scale * roofline_ms **
out_power`` on the first stage's own predictions of the training models (``fit_output_map``; the power
is kept within ``OUT_POWER``). The map corrects what a chip's rates cannot: on the phones' NPUs the
roofline under-estimates small graphs and over-estimates large ones alike. It never changes a ranking.

Baselines, scored the same way: the uncalibrated estimate (today's ``snapdragon888`` constants), and
parameters and FLOPs mapped to milliseconds by a power law fitted on the training folds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from hwnas.hardware.calibrate import FITTED, _arrays, fit_constants, predict_ms
from hwnas.hardware.estimate import HexagonConstants
from hwnas.utils.errors import DataError

METHODS = ("calibrated", "uncalibrated", "params", "flops")
#: Bounds of the fitted output map's power (fixed beforehand; a guard against few, clustered models).
OUT_POWER = (0.5, 1.5)
#: Both stages fit with a robust loss (``soft_l1``) whose scale is the bar's error band in log space,
#: log(1.2): a family the roofline cannot describe (ViT's attention, DDRNet's int8 graph) then pulls the
#: constants less than the many it can.
ROBUST_SCALE = float(np.log(1.2))


@dataclass(frozen=True)
class Graph:
    """What the fits need of one model's ONNX graph: its ``layer_terms`` rows, parameters and MACs."""

    model: str
    family: str
    task: str
    terms: tuple[dict[str, Any], ...]
    params: float
    macs: float


def graph_of(
    model: str, family: str, task: str, onnx_path: Any, terms: Sequence[dict[str, Any]] | None = None
) -> Graph:
    """Read one exported graph into a ``Graph`` (layer terms at the documented constants; ``terms``: its
    ``layer_terms`` rows when the caller has them already)."""
    import onnx

    from hwnas.hardware.estimate import layer_terms

    proto = onnx.load(str(onnx_path))
    terms = tuple(terms) if terms is not None else tuple(layer_terms(proto, HexagonConstants()))
    params = float(sum(int(np.prod(t.dims)) for t in proto.graph.initializer))
    macs = float(sum(t["macs_raw"] for t in terms))
    return Graph(model=model, family=family, task=task, terms=terms, params=params, macs=macs)


def _power_law(x_train: np.ndarray, y_train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``y = a * x**b`` fitted in log space (least squares): the params/FLOPs baselines."""
    b, log_a = np.polyfit(np.log(x_train), np.log(y_train), 1)
    return lambda x: np.exp(log_a) * np.power(x, b)


def fit_output_map(
    graphs: Sequence[Graph], measured_ms: np.ndarray, constants: HexagonConstants
) -> HexagonConstants:
    """``constants`` with ``out_scale``/``out_power`` fitted (robust log-space least squares) to
    ``measured_ms`` on the roofline's predictions under ``constants`` without a map."""
    from scipy.optimize import least_squares

    plain = replace(constants, out_scale=1.0, out_power=1.0)
    x = np.log([predict_ms(_arrays(list(g.terms)), plain) for g in graphs])
    y = np.log(np.asarray(measured_ms, dtype=np.float64))
    fit = least_squares(
        lambda v: v[0] + v[1] * x - y, [0.0, 1.0], bounds=([-50.0, OUT_POWER[0]], [50.0, OUT_POWER[1]]),
        loss="soft_l1", f_scale=ROBUST_SCALE,
    )  # fmt: skip
    return replace(plain, out_power=float(fit.x[1]), out_scale=float(np.exp(fit.x[0])))


def fit_device(
    graphs: Sequence[Graph], measured_ms: np.ndarray, *, base: HexagonConstants | None = None
) -> tuple[HexagonConstants, dict[str, Any]]:
    """The roofline constants and output map fitted to every given measurement (what a ``hardware=``
    option ships)."""
    if len(graphs) < 3:
        raise DataError(f"{len(graphs)} measured models; a fit needs at least 3", key="device")
    base = replace(base or HexagonConstants(), out_scale=1.0, out_power=1.0)
    y = np.asarray(measured_ms, float)
    constants, report = fit_constants(
        [list(g.terms) for g in graphs], y, base=base, loss="soft_l1", f_scale=ROBUST_SCALE
    )
    return fit_output_map(graphs, y, constants), report


def out_of_fold(
    graphs: Sequence[Graph], measured_ms: np.ndarray, *, base: HexagonConstants | None = None
) -> pd.DataFrame:
    """Pooled out-of-fold predictions (one row per model) of every method in ``METHODS``.

    Each family is predicted by fits made on the other families only; the uncalibrated estimate needs
    no fit. Needs at least three families.
    """
    from sklearn.model_selection import LeaveOneGroupOut

    base = base or HexagonConstants()
    y = np.asarray(measured_ms, dtype=np.float64)
    families = np.array([g.family for g in graphs])
    if len(set(families)) < 3:
        raise DataError(
            f"{len(set(families))} model families; cross-validation needs at least 3", key="device"
        )
    arrays = [_arrays(list(g.terms)) for g in graphs]
    params = np.array([g.params for g in graphs])
    macs = np.array([max(g.macs, 1.0) for g in graphs])
    pred = {m: np.full(len(graphs), np.nan) for m in METHODS}
    pred["uncalibrated"] = np.array([predict_ms(a, base) for a in arrays])
    for train, test in LeaveOneGroupOut().split(np.zeros(len(y)), y, groups=families):
        constants, _ = fit_device([graphs[i] for i in train], y[train], base=base)
        pred["calibrated"][test] = [predict_ms(arrays[i], constants) for i in test]
        pred["params"][test] = _power_law(params[train], y[train])(params[test])
        pred["flops"][test] = _power_law(macs[train], y[train])(macs[test])
    return pd.DataFrame(
        {
            "model": [g.model for g in graphs],
            "family": families,
            "task": [g.task for g in graphs],
            "measured_ms": y,
            **{f"{m}_ms": pred[m] for m in METHODS},
        }
    )


def _metrics(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    rel = np.abs(pred / meas - 1.0)
    return {
        "spearman": float(spearmanr(pred, meas)[0]),
        "kendall": float(kendalltau(pred, meas)[0]),
        "mdape": float(np.median(rel)),
        "within10": float(np.mean(rel <= 0.10)),
        "within20": float(np.mean(rel <= 0.20)),
        "within30": float(np.mean(rel <= 0.30)),
    }


def scale_free(pred: np.ndarray, meas: np.ndarray) -> np.ndarray:
    """``pred`` scaled by its median ratio to ``meas``: the rank-only view the issue's check used."""
    return pred * float(np.median(meas / pred))


def score(
    oof: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, dict[str, Any]]:
    """Per method: the metrics of its out-of-fold predictions with percentile bootstrap intervals
    (models resampled with replacement, ``scipy.stats.bootstrap``), and for ``calibrated`` the paired
    interval of its median-absolute-error gain over ``uncalibrated``."""
    from scipy.stats import bootstrap

    meas = oof["measured_ms"].to_numpy()
    idx = np.arange(len(oof))
    out: dict[str, dict[str, Any]] = {}
    rng = np.random.default_rng(seed)
    for m in METHODS:
        pred = oof[f"{m}_ms"].to_numpy()
        point = _metrics(pred, meas)
        row: dict[str, Any] = dict(point)
        for key in point:

            def stat(i: np.ndarray, key: str = key, pred: np.ndarray = pred) -> float:
                i = i.astype(int)
                return _metrics(pred[i], meas[i])[key] if len(set(i)) > 2 else np.nan

            ci = bootstrap(
                (idx,), stat, n_resamples=n_boot, vectorized=False, confidence_level=level,
                method="percentile", random_state=rng,
            ).confidence_interval  # fmt: skip
            row[f"{key}_ci"] = (float(ci.low), float(ci.high))
        out[m] = row
    cal, unc = oof["calibrated_ms"].to_numpy(), oof["uncalibrated_ms"].to_numpy()

    def gain(i: np.ndarray) -> float:
        i = i.astype(int)
        return float(np.median(np.abs(unc[i] / meas[i] - 1)) - np.median(np.abs(cal[i] / meas[i] - 1)))

    ci = bootstrap((idx,), gain, n_resamples=n_boot, vectorized=False, confidence_level=level,
                   method="percentile", random_state=rng).confidence_interval  # fmt: skip
    out["calibrated"]["mdape_gain_ci"] = (float(ci.low), float(ci.high))
    out["calibrated"]["beats_uncalibrated"] = bool(ci.low > 0)
    return out


def constants_dict(c: HexagonConstants) -> dict[str, float]:
    """The fitted constants only (what a ``hardware=`` option writes under ``estimate.constants``)."""
    return {n: round(float(getattr(c, n)), 6) for n in (*FITTED, "out_scale", "out_power")}


def merge_constants(given: Mapping[str, Any] | None) -> HexagonConstants:
    """``HexagonConstants`` with ``given`` on top (unknown names are the caller's to reject)."""
    return replace(HexagonConstants(), **dict(given or {}))


def fitted_options() -> list[str]:
    """The ``conf/hardware`` options whose estimate carries fitted constants and their provenance."""
    from omegaconf import OmegaConf

    from hwnas.utils.config import CONF_DIR

    return sorted(
        p.stem for p in (CONF_DIR / "hardware").glob("*.yaml") if OmegaConf.load(p).get("calibration")
    )


def option_constants(name: str) -> HexagonConstants:
    """The ``HexagonConstants`` of fitted ``conf/hardware/<name>.yaml`` (e.g. for the predictor's prior).

    Raises:
        ConfigError: ``name`` is not a fitted option; lists those that are.
    """
    from omegaconf import OmegaConf

    from hwnas.utils.config import CONF_DIR
    from hwnas.utils.errors import ConfigError

    choices = fitted_options()
    if name not in choices:
        raise ConfigError(
            f"{name!r} is not a hardware option with fitted estimate constants",
            key="predictor.features.prior",
            choices=choices,
            fix="pick one of them, or null for the documented Snapdragon 888 constants",
        )
    node = OmegaConf.load(CONF_DIR / "hardware" / f"{name}.yaml")
    return merge_constants(OmegaConf.to_container(node.constants))

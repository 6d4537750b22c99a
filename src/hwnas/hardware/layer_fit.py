"""Fit the Hexagon roofline to the per-layer times of AI Hub profiles, not only to whole-model latencies.

Why: fitted to whole-model latencies (``hardware/device_fit.py``), the roofline's seven constants see one
number per model; with whole families held out, about half the models land within ±20 % (see
``docs/results.md``), and even fitted to the very models it is scored on it reaches no more than 60 %.
Predictors that reach ±10 % (nn-Meter) learn from per-kernel times measured on the device. An AI Hub
profile job returns such times: ``download_profile()["execution_detail"]`` lists every layer the device
ran, each with its ``name``, ``type``, ``compute_unit`` and ``execution_time`` (microseconds; format of
the ``qai-hub`` client, ``qai_hub/client.py``). This module pairs those layers with the roofline's
``layer_terms`` rows of the same ONNX graph and refits the constants on thousands of layers instead of
tens of models.

Pairing: QNN names its ops after the ONNX nodes (``/layer1/layer1.0/conv1/Conv`` becomes
``_layer1_layer1_0_conv1_Conv``), so names are compared after ``normalise`` (lower case, every run of
other characters one ``_``); a device layer whose name extends a node's (QNN suffixes) goes to the
longest such node. A device layer named after a node the roofline fuses (a ReLU after its convolution)
or leaves free (a reshape) is charged to the costed layer that owns it, or to ``free_us``. Layers QNN
inserts (requantisation, layout conversions) match no node: their time is ``unmatched_us``, reported,
and carried by the per-inference overhead of the fit.

Everything here works on profiles already downloaded (``hardware.qai_hub.profile_dir`` keeps them; see
``bench/collect_profiles.py``); nothing calls the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from hwnas.hardware.calibrate import FITTED, _arrays, predict_ms, row_us
from hwnas.hardware.device_fit import ROBUST_SCALE  # the ±20 % band in log space, as the whole-model fits
from hwnas.hardware.estimate import _FREE, HexagonConstants, node_name
from hwnas.utils.errors import DataError

#: Constants refitted on per-layer times (the per-inference overhead is set afterwards from the totals).
LAYER_FITTED = tuple(n for n in FITTED if n != "per_inference_us")
#: The op types whose layers set the rates (the roofline was built for them); the others get factors.
REFERENCE_OPS = frozenset({"Conv", "ConvTranspose"})
#: An op type gets its own factor from this many informative layers (in at least two graphs), within these bounds.
MIN_OP_LAYERS = 5
OP_FACTOR = (0.1, 20.0)


def normalise(name: str) -> str:
    """A layer or node name compared across ONNX and QNN: lower case, other runs of characters as ``_``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def profile_layers(profile: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The timed layers of an AI Hub profile dict: ``name``, ``type``, ``unit`` and ``us``."""
    rows = []
    for layer in profile.get("execution_detail") or []:
        us = layer.get("execution_time")
        if us is None:
            continue
        rows.append(
            {
                "name": str(layer.get("name", "")),
                "type": str(layer.get("type", "")),
                "unit": str(layer.get("compute_unit", "?")),
                "us": float(us),
            }
        )
    return rows


def profile_total_us(profile: Mapping[str, Any]) -> float:
    """The profile's inference time (µs): the median of every iteration, else the estimated time."""
    summary = profile.get("execution_summary") or {}
    times = summary.get("all_inference_times") or []
    if times:
        return float(np.median(times))
    if summary.get("estimated_inference_time") is None:
        raise DataError("AI Hub profile has no inference time (execution_summary is empty)", key="profile")
    return float(summary["estimated_inference_time"])


@dataclass(frozen=True)
class MatchedGraph:
    """One graph's roofline rows with the device time of each (0 where the device reported none)."""

    model: str
    terms: tuple[dict[str, Any], ...]
    layer_us: tuple[float, ...]  # per row of ``terms``
    total_us: float  # the whole inference, as measured
    unmatched_us: float  # device layers that match no ONNX node (inserted by the compiler)
    free_us: float  # device layers named after nodes the roofline counts as free (reshapes, ...)
    off_npu_us: float  # time of layers not on the NPU

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """``terms`` as the vectorised arrays of ``calibrate`` (built once: every fit and fold reads them)."""
        return _arrays(list(self.terms))

    @property
    def matched_share(self) -> float:
        """Share of the summed layer time that landed on a roofline row."""
        timed = sum(self.layer_us) + self.unmatched_us + self.free_us
        return float(sum(self.layer_us) / timed) if timed > 0 else 0.0


def _owners(model: Any, terms: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Normalised name of every graph node -> the name of the costed row that owns it ('' = free)."""
    costed = {t["name"] for t in terms}
    producers: dict[str, str] = {}
    owner: dict[str, str] = {}
    for i, node in enumerate(model.graph.node):
        name = node_name(node, i)
        if name in costed:
            mine = name
        elif node.op_type in _FREE or not node.input:
            mine = ""
        else:  # fused into the layer producing its first input
            mine = producers.get(node.input[0], "")
        owner[normalise(name)] = mine
        for out in node.output:
            producers[out] = mine
    return owner


def match_profile(model_name: str, onnx_model: Any, profile: Mapping[str, Any]) -> MatchedGraph:
    """Pair a downloaded AI Hub profile with the roofline rows of the ONNX graph it was compiled from."""
    from hwnas.hardware.estimate import layer_terms
    from hwnas.hardware.onnx_fold import fold_constants

    folded = fold_constants(onnx_model)
    terms = layer_terms(folded, HexagonConstants(), folded=True)
    owner = _owners(folded, terms)
    keys = sorted(owner, key=len, reverse=True)  # longest first: the most specific node wins
    index = {t["name"]: i for i, t in enumerate(terms)}
    times = np.zeros(len(terms))
    unmatched = free = off_npu = 0.0
    for layer in profile_layers(profile):
        if layer["unit"] != "NPU":
            off_npu += layer["us"]
        key = normalise(layer["name"])
        hit = key if key in owner else next((k for k in keys if k and key.startswith(k + "_")), None)
        if hit is None:
            unmatched += layer["us"]
        elif owner[hit]:
            times[index[owner[hit]]] += layer["us"]
        else:
            free += layer["us"]
    return MatchedGraph(
        model=model_name,
        terms=tuple(terms),
        layer_us=tuple(float(t) for t in times),
        total_us=profile_total_us(profile),
        unmatched_us=unmatched,
        free_us=free,
        off_npu_us=off_npu,
    )


def predict_us(g: MatchedGraph, c: HexagonConstants) -> float:
    """The whole-inference estimate (µs) of a matched graph under ``c``, as ``estimate.estimate_onnx``
    computes it (rows, per-inference overhead, output map)."""
    return 1000.0 * predict_ms(g.arrays, c)


@dataclass(frozen=True)
class _Rows:
    """The rows with a device time, pooled over graphs: their arrays, times and weights."""

    arrays: list[dict[str, np.ndarray]]  # per graph, the rows kept
    us: np.ndarray  # measured µs, pooled
    weight: np.ndarray  # share of its graph's matched time, pooled


def _rows(graphs: Sequence[MatchedGraph], only: frozenset[str] | None = None) -> _Rows:
    arrays, us, weight = [], [], []
    for g in graphs:
        a, t = g.arrays, np.asarray(g.layer_us)
        keep = (t > 0) & (np.isin(a["op"], list(only)) if only else True)
        if not keep.any():
            continue
        arrays.append({k: v[keep] for k, v in a.items()})
        us.append(t[keep])
        weight.append(t[keep] / t[keep].sum())
    return _Rows(arrays, np.concatenate(us), np.concatenate(weight))


def _fit_rates(rows: _Rows, base: HexagonConstants, prior_weight: float) -> tuple[HexagonConstants, Any]:
    """Stage 1: ``LAYER_FITTED`` by robust weighted least squares in log space over every timed row."""
    from scipy.optimize import least_squares

    y, w = np.log(rows.us), np.sqrt(rows.weight)
    names = list(LAYER_FITTED)
    lo, hi = np.log([FITTED[n][0] for n in names]), np.log([FITTED[n][1] for n in names])
    x0 = np.clip(np.log([getattr(base, n) for n in names]), lo + 1e-9, hi - 1e-9)

    def consts(x: np.ndarray) -> HexagonConstants:
        return replace(base, **{n: float(np.exp(v)) for n, v in zip(names, x, strict=True)})

    def residuals(x: np.ndarray) -> np.ndarray:
        pred = np.log(np.concatenate([row_us(a, consts(x)) for a in rows.arrays]))
        return np.r_[w * (pred - y), np.sqrt(prior_weight) * (x - x0)]

    result = least_squares(
        residuals, x0, bounds=(lo, hi), method="trf", x_scale="jac", loss="soft_l1", f_scale=ROBUST_SCALE
    )
    return consts(result.x), result


def _fit_op_factors(rows: _Rows, c: HexagonConstants) -> dict[str, float]:
    """Stage 1b: per op type (convolutions, ``REFERENCE_OPS``, set the rates), the median ratio of measured
    to roofline time of its layers, per-layer overhead set aside, each layer weighted by its roofline
    time. A layer whose roofline time is below the per-layer overhead says nothing about its op's rate
    and is left out; a type needs ``MIN_OP_LAYERS`` such layers in at least two graphs. Within
    ``OP_FACTOR``."""
    plain = replace(c, op_factors=())
    ops = np.concatenate([a["op"] for a in rows.arrays])
    graph = np.concatenate([np.full(len(a["op"]), i) for i, a in enumerate(rows.arrays)])
    core = np.concatenate([row_us(a, plain) for a in rows.arrays]) - c.per_layer_us
    ratio = (rows.us - c.per_layer_us) / np.maximum(core, 1e-9)
    factors = {}
    for op in sorted(set(ops) - REFERENCE_OPS):
        sel = (ops == op) & (core >= c.per_layer_us)  # the informative layers
        if sel.sum() < MIN_OP_LAYERS or len(set(graph[sel])) < 2:
            continue
        order = np.argsort(ratio[sel])
        cum = np.cumsum(core[sel][order])
        median = ratio[sel][order][np.searchsorted(cum, cum[-1] / 2.0)]
        factors[str(op)] = float(np.clip(median, *OP_FACTOR))
    return factors


def _fit_totals(graphs: Sequence[MatchedGraph], c: HexagonConstants) -> HexagonConstants:
    """Stage 2: ``total = out_scale * (sum(rows) + per_inference_us)``, robust, in log space."""
    from scipy.optimize import least_squares

    summed = np.array([row_us(g.arrays, c).sum() for g in graphs])
    totals = np.array([g.total_us for g in graphs])
    lo_i, hi_i = FITTED["per_inference_us"]
    fit = least_squares(
        lambda v: np.log(np.exp(v[0]) * (summed + np.exp(v[1]))) - np.log(totals),
        [0.0, np.log(np.clip(np.median(totals - summed), lo_i, hi_i))],
        bounds=([np.log(0.5), np.log(lo_i)], [np.log(2.0), np.log(hi_i)]),
        loss="soft_l1", f_scale=ROBUST_SCALE,
    )  # fmt: skip
    return replace(c, out_scale=float(np.exp(fit.x[0])), per_inference_us=float(np.exp(fit.x[1])))


def fit_layers(
    graphs: Sequence[MatchedGraph],
    *,
    base: HexagonConstants | None = None,
    prior_weight: float = 0.05,
    op_factors: bool = True,
) -> tuple[HexagonConstants, dict[str, Any]]:
    """Refit the roofline on per-layer device times, then on the totals.

    Stage 1: the rates, by robust least squares (``soft_l1`` at ±20 %) in log space over the convolution
    rows with a device time (every row when ``op_factors`` is off or convolutions are few), each weighted
    by its share of its model's matched time (the layers that cost the time steer the fit; every model
    weighs the same), plus the weak pull towards ``base`` of ``fit_constants``. Stage 1b (``op_factors``): a factor per op type other than convolutions
    (``HexagonConstants.op_factors``; attention, normalisation, concatenation: what whole-model fits
    could not separate). Stage 2: the totals, ``total = out_scale * (sum(rows) + per_inference_us)``:
    stage 1 fits each layer's median time, a sum needs their means, and the compiler's inserted layers
    (``unmatched_us``) scale with the graph. ``out_scale`` stays within [0.5, 2].
    """
    usable = [g for g in graphs if sum(g.layer_us) > 0]
    if len(usable) < 3:
        raise DataError(
            f"{len(usable)} profiles with matched layers; a per-layer fit needs at least 3",
            key="profiles",
            fix="profile more graphs (bench/collect_profiles.py) and check their layer names match",
        )
    base = replace(base or HexagonConstants(), out_scale=1.0, out_power=1.0, op_factors=())
    rows = _rows(usable)
    reference = _rows(usable, only=REFERENCE_OPS) if op_factors else rows
    if len(reference.us) < MIN_OP_LAYERS:  # too few convolutions to set the rates alone
        reference = rows
    fitted, result = _fit_rates(reference, base, prior_weight)
    if op_factors:
        fitted = replace(fitted, op_factors=_fit_op_factors(rows, fitted))
    fitted = _fit_totals(usable, fitted)
    layer_err = np.abs(np.concatenate([row_us(a, fitted) for a in rows.arrays]) / rows.us - 1)
    report = {
        "n_models": len(usable),
        "n_layers": int(len(rows.us)),
        "matched_share": float(np.median([g.matched_share for g in usable])),
        "layer_mdape": float(np.median(layer_err)),
        "constants_before": {n: getattr(base, n) for n in FITTED},
        "constants_after": {n: getattr(fitted, n) for n in FITTED},
        "op_factors": dict(fitted.op_factors),
        "optimizer": {"status": int(result.status), "cost": float(result.cost), "nfev": int(result.nfev)},
    }
    return fitted, report


def out_of_fold(
    graphs: Sequence[MatchedGraph], families: Sequence[str], *, base: HexagonConstants | None = None
) -> np.ndarray:
    """Whole-inference predictions (ms), each family's from a per-layer fit on the other families."""
    fam = np.asarray(families)
    if len(set(fam)) < 3:
        raise DataError(f"{len(set(fam))} model families; cross-validation needs at least 3", key="profiles")
    pred = np.full(len(graphs), np.nan)
    for f in sorted(set(fam)):
        constants, _ = fit_layers([g for g, h in zip(graphs, fam, strict=True) if h != f], base=base)
        for i in np.flatnonzero(fam == f):
            pred[i] = predict_us(graphs[i], constants) / 1000.0
    return pred


def synthetic_profile(
    onnx_model: Any, constants: HexagonConstants, *, noise: float = 0.0, seed: int = 0
) -> dict[str, Any]:
    """A profile in AI Hub's format of a device that runs each layer as the roofline under ``constants``
    says, times a log-normal factor of spread ``noise``, with QNN-style layer names and one inserted
    requantisation. Only for checking the pairing and fitting pipeline (tests, ``bench_layers
    --synthetic``): it measures nothing."""
    from hwnas.hardware.estimate import layer_terms, layer_time_us

    rng = np.random.default_rng(seed)
    detail = []
    for term in layer_terms(onnx_model, constants):
        us = layer_time_us(term, constants)[0] * float(np.exp(noise * rng.standard_normal()))
        detail.append({"name": "_" + normalise(term["name"]), "type": term["op"], "compute_unit": "NPU",
                       "execution_time": us})  # fmt: skip
    detail.append({"name": "input_converted_UFIXED_POINT_8", "type": "Convert", "compute_unit": "NPU",
                   "execution_time": constants.per_layer_us})  # fmt: skip
    total = sum(d["execution_time"] for d in detail) + constants.per_inference_us - constants.per_layer_us
    return {
        "execution_summary": {"estimated_inference_time": total, "all_inference_times": [total]},
        "execution_detail": detail,
    }

"""Offline analytical latency model of the Snapdragon 888's Hexagon 780 NPU running int8.

Why: the real device (AI Hub, SNPE over adb) is not always reachable, yet the search needs a number
that ranks architectures the way the NPU would. This is a roofline model over the exported ONNX
graph, deterministic and free; it is an *estimate* (``source="estimated"``), never a measurement.

Per layer (ONNX node, after shape inference)::

    t = max(MACs / mac_rate, bytes_moved / bandwidth) * op_factor + per_layer_overhead

and per inference ``t_total = sum(t) + per_inference_overhead``.

Public figures used, and why (defaults of ``HexagonConstants``):

* **Peak**: Qualcomm quotes 26 TOPS for the whole Snapdragon 888 "AI Engine" (Hexagon 780 + Adreno 660
  + Kryo 680). One MAC = 2 ops, so at most 13 T MAC/s; the Hexagon's fused scalar/vector/tensor
  accelerator holds most of it. Batch-1 convolutions on small feature maps reach only a fraction of
  peak (tiling, padding to the tensor unit's 32-channel granularity, vector-unit epilogues): we use an
  efficiency of 0.15, i.e. ~1.95 T MAC/s effective for dense convolutions.
* **Depthwise convolutions** do not map onto the tensor (matrix) unit and run on the HVX vector units;
  we divide their MAC rate by ``depthwise_penalty`` = 8.
* **Channel padding**: the tensor unit works on 32-channel slices, so MACs are counted with input
  and output channels rounded up to multiples of ``channel_align`` = 32 (small widths are not cheaper).
* **Memory**: LPDDR5-6400 on a 64-bit bus gives 51.2 GB/s peak; with ~50 % achievable for one
  engine we use 25.6 GB/s for tensors that do not fit on chip. Hexagon 780 has a large on-chip
  shared memory (VTCM; Qualcomm cites 16x the previous generation's): tensors of a layer that fit in
  ``onchip_bytes`` = 4 MiB move at an effective 100 GB/s instead.
* **Bilinear resize** is a gather-heavy vector op: its bytes are charged ``resize_penalty`` = 4 times.
* **Output map** (fitted per chip, neutral here): the summed estimate ``t`` (ms) is reported as
  ``out_scale * t ** out_power``. Both are 1 in the documented Snapdragon 888 model; a fit to published
  latencies (``hardware/device_fit.py``) sets them by least squares in log space after the rates, which
  corrects the roofline's systematic over/under-estimate of large vs small graphs on a chip without
  changing any ranking.
* **Overheads**: ~5 µs per (non-fused) op for dispatch/synchronisation, and ~150 µs per inference for
  the FastRPC call into the DSP and graph launch.
* **Op-type factors** (``op_factors``, none by default): a layer's roofline time times its op type's
  factor. Whole-model latencies cannot tell them apart from the rates; per-layer device times can
  (``hardware/layer_fit.py`` learns them from AI Hub profiles).
* **Fusion**: activations and BatchNorm that follow a Conv/Gemm (sole consumer) are fused and free;
  shape-only ops (Reshape, Flatten, Identity, Constant, ...) cost nothing.

All tensors are counted at 1 byte per element (int8/uint8). These constants are deliberately exposed
(``hardware.constants`` in ``conf/hardware/snapdragon888.yaml``) so that they can be re-fitted to a
few AI Hub measurements.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware._common import onnx_file, parse_input_size, versions
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.utils.errors import CandidateFailed, ConfigError

DEVICE = "Snapdragon 888 Hexagon 780 NPU (estimated)"
#: The estimate's version, in every report and cache key (v2: constant subgraphs folded, ``onnx_fold``).
ESTIMATE_MODEL = "hexagon780-roofline-v2"

_FUSABLE = {"Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "PRelu", "BatchNormalization"}
_FREE = {"Reshape", "Flatten", "Identity", "Constant", "Shape", "Squeeze", "Unsqueeze", "Dropout", "Cast"}


@dataclass(frozen=True)
class HexagonConstants:
    """The documented constants of the model (see the module docstring for their sources)."""

    peak_tops: float = 26.0
    efficiency: float = 0.15
    depthwise_penalty: float = 8.0
    channel_align: int = 32
    dram_gbps: float = 51.2
    dram_efficiency: float = 0.5
    onchip_gbps: float = 100.0
    onchip_bytes: int = 4 * 1024 * 1024
    resize_penalty: float = 4.0
    per_layer_us: float = 5.0
    per_inference_us: float = 150.0
    bytes_per_element: float = 1.0
    out_scale: float = 1.0
    out_power: float = 1.0
    #: Per-op-type factors on a layer's roofline time (``{"Concat": 2.0}``; none by default): learned from
    #: per-layer device times (``hwnas.hardware.layer_fit``), which whole-model latencies cannot separate.
    op_factors: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:  # a mapping from a config becomes a sorted, hashable tuple
        items = self.op_factors.items() if isinstance(self.op_factors, Mapping) else self.op_factors
        object.__setattr__(self, "op_factors", tuple(sorted((str(k), float(v)) for k, v in items)))

    def plain(self) -> dict[str, Any]:
        """The constants as a dict for reports and cache keys (``op_factors`` only when there are any)."""
        out = asdict(self)
        out["op_factors"] = dict(self.op_factors)
        if not out["op_factors"]:
            del out["op_factors"]
        return out

    @property
    def mac_rate(self) -> float:
        """Effective dense int8 MACs per second."""
        return self.peak_tops * 1e12 / 2.0 * self.efficiency


def _align(c: int, a: int) -> int:
    return int(-(-c // a) * a) if a > 1 else c


def _shapes(inferred: Any) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape in a shape-inferred model (``onnx_fold.fold_constants``'s); 0 = unknown dim."""
    g = inferred.graph
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = tuple(int(d.dim_value) for d in dims)
    for init in g.initializer:
        out[init.name] = tuple(int(d) for d in init.dims)
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_name(node: Any, index: int) -> str:
    """A node's name, or ``<op>_<index in the graph>`` for an unnamed one: how ``layer_terms`` rows name it."""
    return node.name or f"{node.op_type}_{index}"


def layer_terms(model: Any, c: HexagonConstants, *, folded: bool = False) -> list[dict[str, Any]]:
    """The structural quantities of every costed ONNX node, before any rate or bandwidth is applied.

    Per node: ``name``, ``op``, ``macs`` (channels padded to ``channel_align``), ``macs_raw`` (unpadded),
    ``depthwise``, ``resize``, ``elems`` (activation and weight elements moved) and ``fits`` (its
    activations fit on chip). Fused and shape-only nodes are left out. ``layer_time_us`` turns a row
    into microseconds; calibration (``hwnas.hardware.calibrate``) refits the rates on these rows.
    """
    from hwnas.hardware.onnx_fold import fold_constants

    if not folded:  # ``folded``: the caller passes ``fold_constants``' output already
        model = fold_constants(model)  # explicit pads compute their sizes; see onnx_fold (also shape-infers)
    shapes = _shapes(model)
    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    weights = {i.name for i in graph.initializer}

    def numel(name: str) -> int:
        return int(np.prod(shapes.get(name, ()), dtype=np.int64)) if name in shapes else 0

    rows: list[dict[str, Any]] = []
    for index, node in enumerate(graph.node):
        op = node.op_type
        if op in _FREE:
            continue
        src = producers.get(node.input[0]) if node.input else None
        if (
            op in _FUSABLE
            and src is not None
            and src.op_type in {"Conv", "Gemm", "MatMul", *_FUSABLE}
            and consumers.get(node.input[0], 0) == 1
        ):
            continue  # fused into the producing layer's epilogue
        act_in = sum(numel(i) for i in node.input if i and i not in weights)
        w_elems = sum(numel(i) for i in node.input if i in weights)
        act_out = sum(numel(o) for o in node.output)
        macs, macs_raw, depthwise = 0, 0, False
        if op in {"Conv", "ConvTranspose"}:
            w_shape = shapes.get(node.input[1], ())
            group = int(_attr(node, "group", 1))
            out_shape = shapes.get(node.output[0], ())
            if len(w_shape) >= 3 and out_shape:
                k = int(np.prod(w_shape[2:]))
                cin_g = w_shape[1]
                cout = out_shape[1]
                spatial = int(np.prod(out_shape[2:])) * out_shape[0]
                macs_raw = spatial * cout * cin_g * k
                if group > 1 and group == cout:  # depthwise
                    macs = spatial * _align(cout, c.channel_align) * k
                    depthwise = True
                else:
                    macs = (
                        spatial * _align(cout, c.channel_align) * _align(cin_g * group, c.channel_align) * k
                    )
                    macs //= group
        elif op in {"Gemm", "MatMul"}:
            a, b = shapes.get(node.input[0], ()), shapes.get(node.input[1], ())
            if a and b:
                macs = int(np.prod(a)) * int(
                    b[-1] if op == "MatMul" or not _attr(node, "transB", 0) else b[0]
                )
                macs_raw = macs
        rows.append(
            {
                "name": node_name(node, index),
                "op": op,
                "macs": int(macs),
                "macs_raw": int(macs_raw),
                "depthwise": depthwise,
                "resize": op in {"Resize", "Upsample"},
                "elems": int(act_in + act_out + w_elems),
                "fits": (act_in + act_out) * c.bytes_per_element <= c.onchip_bytes,
            }
        )
    return rows


def layer_time_us(term: dict[str, Any], c: HexagonConstants) -> tuple[float, str, float]:
    """``(microseconds, bound, bytes moved)`` of one ``layer_terms`` row under constants ``c``."""
    rate = c.mac_rate / c.depthwise_penalty if term["depthwise"] else c.mac_rate
    moved = term["elems"] * c.bytes_per_element * (c.resize_penalty if term["resize"] else 1.0)
    bw = (c.onchip_gbps if term["fits"] else c.dram_gbps * c.dram_efficiency) * 1e9
    t_compute = term["macs"] / rate if term["macs"] else 0.0
    t_memory = moved / bw
    bound = "compute" if t_compute >= t_memory else "memory"
    factor = dict(c.op_factors).get(term["op"], 1.0) if c.op_factors else 1.0
    return max(t_compute, t_memory) * factor * 1e6 + c.per_layer_us, bound, moved


def layer_costs(model: Any, c: HexagonConstants) -> list[dict[str, Any]]:
    """Per-node estimated cost (µs) and its inputs (MACs, bytes, bound) for an ONNX ``ModelProto``."""
    rows = []
    for term in layer_terms(model, c):
        us, bound, moved = layer_time_us(term, c)
        rows.append(
            {
                "name": term["name"],
                "op": term["op"],
                "macs": term["macs"],
                "bytes": int(moved),
                "bound": bound,
                "us": us,
            }
        )
    return rows


def estimate_onnx(
    model: Any, constants: HexagonConstants | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Estimated latency (ms) of an ONNX ``ModelProto`` on the Hexagon 780, and the per-layer rows."""
    c = constants or HexagonConstants()
    rows = layer_costs(model, c)
    total_us = sum(r["us"] for r in rows) + c.per_inference_us
    return output_map(total_us / 1000.0, c), rows


def output_map(ms: float, c: HexagonConstants) -> float:
    """The summed roofline ``ms`` through the chip's fitted output map (identity by default)."""
    if c.out_scale == 1.0 and c.out_power == 1.0:
        return ms
    return float(c.out_scale * ms**c.out_power)


class EstimateProfiler(Profiler):
    """``backend=estimate``: the analytical Hexagon 780 int8 model (no device, no network).

    Args:
        target: Target name for logs and cache keys.
        input_size: ``(H, W)`` to profile at, or ``None`` for the dataset's size.
        batch_size: Batch size of the profiled input.
        constants: Overrides of ``HexagonConstants`` fields (e.g. ``{"efficiency": 0.2}``).
        workdir: Where exports are cached (default ``outputs/cache/onnx``).
        top_layers: How many of the most expensive layers to list in ``extra``.
        device: The device the report names (default: the Snapdragon 888's Hexagon 780).
        calibration: Where the constants came from (device, runtime, precision, data set, held-out
            scores; see ``bench/bench_device.py``), copied into every report's ``extra`` and named by
            the search's ``summary.json``.
    """

    backend = "estimate"
    precision = "int8"

    def __init__(
        self,
        *,
        target: str = "snapdragon888",
        input_size: Any = None,
        batch_size: int = 1,
        constants: dict[str, Any] | None = None,
        workdir: str | Path | None = None,
        top_layers: int = 5,
        device: str | None = None,
        calibration: Mapping[str, Any] | None = None,
    ) -> None:
        self.target = target
        self.device = str(device or DEVICE)
        self.calibration = _plain(calibration)
        self.input_size = parse_input_size(input_size)
        self.batch_size = int(batch_size)
        fields = set(HexagonConstants.__dataclass_fields__)
        unknown = sorted(set(constants or {}) - fields)
        if unknown:
            raise ConfigError(
                f"unknown estimate constants {unknown}", key="hardware.constants", choices=sorted(fields)
            )
        self.constants = replace(HexagonConstants(), **dict(constants or {}))
        self.workdir = workdir
        self.top_layers = int(top_layers)

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "constants": self.constants.plain(), "model": ESTIMATE_MODEL}

    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        import onnx

        t0 = time.perf_counter()
        input_shape = tuple(int(d) for d in input_shape)
        with onnx_file(model, input_shape, onnx_path=onnx_path, arch_key=arch_key, workdir=self.workdir) as p:
            try:
                ms, rows = estimate_onnx(onnx.load(str(p)), self.constants)
            except Exception as exc:
                raise CandidateFailed(f"latency estimate failed: {type(exc).__name__}: {exc}") from exc
        top = sorted(rows, key=lambda r: -r["us"])[: self.top_layers]
        return LatencyReport(
            median_ms=ms,
            p10_ms=ms,
            p90_ms=ms,
            n_samples=0,
            backend=self.backend,
            device=self.device,
            precision="int8",
            source="estimated",
            toolchain={"estimate_model": ESTIMATE_MODEL, **versions("onnx")},
            extra={
                "assumptions": self.constants.plain(),
                "model": "sum over layers of max(MACs/mac_rate, bytes/bandwidth) + overheads",
                "input_shape": list(input_shape),
                "layers": len(rows),
                "macs": int(sum(r["macs"] for r in rows)),
                "memory_bound_layers": sum(r["bound"] == "memory" for r in rows),
                "top_layers": [{k: r[k] for k in ("name", "op", "us", "bound")} for r in top],
                "profile_wall_s": round(time.perf_counter() - t0, 4),
                **({"calibration": self.calibration} if self.calibration else {}),
            },
        )

    def describe(self) -> str:
        fit = self.calibration.get("label") if self.calibration else None
        return f"{self.target} via estimate (analytical Hexagon int8 roofline, no device; {fit or 'uncalibrated'})"


def _plain(node: Mapping[str, Any] | None) -> dict[str, Any]:
    """A config node (OmegaConf or dict) as a plain dict, for reports and JSON."""
    from omegaconf import OmegaConf

    if node is None:
        return {}
    return dict(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)

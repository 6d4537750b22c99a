"""Cheap features a latency model learns from: one small contract, two extractors, and the default choice.

* ``OnnxGraphFeatures``: the exported graph a deployment runs (op kinds and counts after the fusions a
  compiler makes, MACs, bytes moved, parameters, input pixels) and the Snapdragon 888 roofline estimate
  of that graph as a prior. Works for every search space: it reads the ONNX file, not the spec.
* ``NB201Features``: a NAS-Bench-201 cell from its arch string alone (no model, no export), for the
  benchmark's hardware table and table-driven searches: op counts over all six edges (what an eager
  implementation runs), over the live edges only (what a graph compiler keeps after removing branches
  that never reach the output), additions, and the MACs of both.

* ``AutoFeatures`` (the default): the ONNX graph when there is a model, the NB201 arch string when there
  is none (a table-driven search builds no model).

Every feature is *additive* over the layers (a count, a sum of MACs, a latency), which is what the
model's linear backbone assumes.

``predictor.features`` picks one by import path: ``conf/predictor/features/<name>.yaml`` is a ``_partial_``
node of one of these classes (``predictor/features=onnx``), completed with the measuring profiler's
``workdir``; every class here with ``select`` is a valid choice (:func:`feature_classes`).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hwnas.utils.errors import CandidateFailed


class FeatureExtractor(ABC):
    """Turns one candidate into a fixed, named vector of additive features.

    Attributes:
        name: Identifies the extractor in stores and reports (features of two extractors never mix).
        names: Feature names, in vector order.
        priors: Features the model may take as its prior (e.g. ``roofline_ms``, ``mmacs``); it keeps
            the one that fits the measurements best.
        needs_model: Whether ``extract`` needs the model or its ONNX file (else the key suffices).

    Args:
        workdir: Where exports are kept, for extractors that read the ONNX graph (shared with the
            measuring profiler, so a candidate is exported once); default ``outputs/cache/onnx``.
    """

    name: str = "base"
    names: tuple[str, ...] = ()
    priors: tuple[str, ...] = ()
    needs_model: bool = True

    def __init__(self, workdir: str | Path | None = None) -> None:
        self.workdir = workdir

    def select(self, model: Any) -> FeatureExtractor:
        """The extractor for a candidate with a model (or ``None``, by key only): always this one."""
        return self

    @abstractmethod
    def extract(
        self,
        *,
        model: Any = None,
        input_shape: tuple[int, ...] = (),
        onnx_path: str | Path | None = None,
        arch_key: str | None = None,
    ) -> dict[str, float]:
        """The features of one candidate (``CandidateFailed`` when they cannot be computed)."""

    def vector(self, features: Mapping[str, float]) -> np.ndarray:
        """``features`` in ``names`` order (``KeyError`` if one is missing)."""
        return np.array([float(features[n]) for n in self.names], dtype=np.float64)

    def prior_index(self) -> tuple[int, ...]:
        """Positions of ``priors`` in the feature vector."""
        return tuple(self.names.index(p) for p in self.priors)


# --- NAS-Bench-201 arch strings ---------------------------------------------------------------------

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1x1", "nor_conv_3x3": "conv3x3"}
_SHORT["avg_pool_3x3"] = "pool"
#: MACs of one cell edge summed over the network's 15 cells (C=16, N=5 at 32x32: every stage has
#: H*W*C^2 = 262,144), in millions; the fixed skeleton (stem, reductions, classifier) is left out.
_EDGE_MMACS = {"nor_conv_1x1": 15 * 262_144 / 1e6, "nor_conv_3x3": 15 * 9 * 262_144 / 1e6}


def nb201_ops(arch: str) -> list[str]:
    """The six edge ops of an NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, in edge order."""
    ops = [tok.split("~")[0] for part in str(arch).split("+") for tok in part.strip("|").split("|") if tok]
    if len(ops) != len(NB201_EDGES) or any(o not in NB201_OPS for o in ops):
        raise CandidateFailed(f"not an NB201 arch string: {arch!r}")
    return ops


def _fed_and_live(ops: Sequence[str]) -> tuple[list[int], list[int]]:
    """Edges whose input carries data (an implementation that skips ``none`` runs them), and the subset
    also on a path to the cell output (all a graph compiler keeps after dead-branch removal)."""
    fed = {0: True}
    for node in (1, 2, 3):
        fed[node] = any(ops[k] != "none" and fed[s] for k, (d, s) in enumerate(NB201_EDGES) if d == node)
    used = {3: True}
    for node in (2, 1, 0):
        used[node] = any(ops[k] != "none" and used[d] for k, (d, s) in enumerate(NB201_EDGES) if s == node)
    run = [k for k, (d, s) in enumerate(NB201_EDGES) if ops[k] != "none" and fed[s]]
    return run, [k for k in run if used[NB201_EDGES[k][0]]]


def nb201_features(arch: str) -> dict[str, float]:
    """Additive structural features of one NB201 cell (see the module docstring)."""
    ops = nb201_ops(arch)
    fed, live = _fed_and_live(ops)
    out: dict[str, float] = {}
    for op in NB201_OPS:
        out[f"edges_{_SHORT[op]}"] = float(sum(o == op for o in ops))
    for op in NB201_OPS[2:]:
        out[f"fed_{_SHORT[op]}"] = float(sum(ops[k] == op for k in fed))
    for op in NB201_OPS[1:]:
        out[f"live_{_SHORT[op]}"] = float(sum(ops[k] == op for k in live))
    out["output_edges"] = float(sum(ops[k] != "none" for k in (3, 4, 5)))
    inputs = [sum(1 for k in live if NB201_EDGES[k][0] == node) for node in (1, 2, 3)]
    out["live_adds"] = float(sum(max(0, n - 1) for n in inputs))
    # Ops a graph compiler runs once per source tensor: one ReLU before all convs leaving a node, one pool.
    out["live_relu_sources"] = float(len({NB201_EDGES[k][1] for k in live if "conv" in ops[k]}))
    out["live_pool_sources"] = float(len({NB201_EDGES[k][1] for k in live if ops[k] == "avg_pool_3x3"}))
    out["output_live"] = float(any(NB201_EDGES[k][0] == 3 for k in live))
    out["mmacs_edges"] = float(sum(_EDGE_MMACS.get(o, 0.0) for o in ops))
    out["mmacs_live"] = float(sum(_EDGE_MMACS.get(ops[k], 0.0) for k in live))
    return out


NB201_NAMES = tuple(nb201_features("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))


class NB201Features(FeatureExtractor):
    """Features of an NB201 cell from its arch string (the key); no model or export needed."""

    name = "nb201"
    names = NB201_NAMES
    priors = ("mmacs_edges", "mmacs_live")
    needs_model = False

    def extract(
        self,
        *,
        model: Any = None,
        input_shape: tuple[int, ...] = (),
        onnx_path: str | Path | None = None,
        arch_key: str | None = None,
    ) -> dict[str, float]:
        if not arch_key:
            raise CandidateFailed("NB201 features need the architecture key (its arch string)")
        return nb201_features(arch_key)

    def matrix(self, archs: Sequence[str]) -> np.ndarray:
        """Feature rows of many arch strings (the benchmark's 15,625 in about a second)."""
        return np.array([self.vector(nb201_features(a)) for a in archs], dtype=np.float64)


# --- exported ONNX graphs ---------------------------------------------------------------------------

#: Op families counted by ``OnnxGraphFeatures`` (after fusion: a BatchNorm or ReLU folded into its conv
#: is not a layer of its own).
_FAMILIES = {
    "Conv": "conv",
    "ConvTranspose": "conv_transpose",
    "Gemm": "gemm",
    "MatMul": "gemm",
    "AveragePool": "pool",
    "MaxPool": "pool",
    "GlobalAveragePool": "pool",
    "GlobalMaxPool": "pool",
    "Resize": "resize",
    "Upsample": "resize",
    "Add": "eltwise",
    "Mul": "eltwise",
    "Sub": "eltwise",
    "Div": "eltwise",
    "Sum": "eltwise",
    "Concat": "copy",
    "Split": "copy",
    "Slice": "copy",
    "Pad": "copy",
    "Transpose": "copy",
    "Relu": "activation",
    "Clip": "activation",
    "Sigmoid": "activation",
    "HardSigmoid": "activation",
    "HardSwish": "activation",
    "LeakyRelu": "activation",
    "PRelu": "activation",
    "BatchNormalization": "activation",
}
ONNX_FAMILIES = ("conv", "conv_depthwise", "conv_transpose", "gemm", "pool", "resize", "eltwise", "copy")
ONNX_FAMILIES += ("activation", "other")
ONNX_NAMES = (
    "roofline_ms",
    "mmacs",
    "mmacs_depthwise",
    "melems_moved",
    "mparams",
    "layers",
    "kpixels",
    *(f"n_{f}" for f in ONNX_FAMILIES),
)


def onnx_features(model: Any, constants: Any = None) -> dict[str, float]:
    """Additive features of an ONNX ``ModelProto`` (static shapes), roofline estimate included
    (under ``constants``, a ``HexagonConstants``; default the documented Snapdragon 888 ones)."""
    from hwnas.hardware.estimate import HexagonConstants, layer_terms, layer_time_us

    c = constants or HexagonConstants()
    terms = layer_terms(model, c)
    out = {name: 0.0 for name in ONNX_NAMES}
    out["roofline_ms"] = (sum(layer_time_us(t, c)[0] for t in terms) + c.per_inference_us) / 1000.0
    out["mmacs"] = sum(t["macs_raw"] for t in terms) / 1e6
    out["mmacs_depthwise"] = sum(t["macs_raw"] for t in terms if t["depthwise"]) / 1e6
    out["melems_moved"] = sum(t["elems"] for t in terms) / 1e6
    out["mparams"] = sum(float(np.prod(i.dims)) for i in model.graph.initializer) / 1e6
    out["layers"] = float(len(terms))
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    sizes = [int(d.dim_value) for d in dims]
    out["kpixels"] = float(np.prod([sizes[0], *sizes[2:]])) / 1e3 if len(sizes) >= 3 else 0.0
    for t in terms:
        family = "conv_depthwise" if t["depthwise"] else _FAMILIES.get(t["op"], "other")
        out[f"n_{family}"] += 1.0
    return out


class OnnxGraphFeatures(FeatureExtractor):
    """Features of the candidate's exported ONNX graph; the roofline estimate, MACs or bytes moved as
    the prior (whichever fits the target's measurements: the roofline on the NPU, MACs on a host CPU)."""

    name = "onnx"
    names = ONNX_NAMES
    priors = ("roofline_ms", "mmacs", "melems_moved")
    needs_model = True

    def __init__(self, workdir: str | Path | None = None, *, prior: str | None = None) -> None:
        """``prior``: a fitted ``conf/hardware`` option (``snapdragon8gen3``, ``qcs6490``, ...) whose
        constants the ``roofline_ms`` prior uses; ``None``: the documented Snapdragon 888 constants.
        Its features are kept apart from the default's (the extractor's ``name`` says which)."""
        super().__init__(workdir)
        from hwnas.hardware.device_fit import option_constants

        self.constants = option_constants(prior) if prior else None
        self.name = f"onnx@{prior}" if prior else "onnx"

    def extract(
        self,
        *,
        model: Any = None,
        input_shape: tuple[int, ...] = (),
        onnx_path: str | Path | None = None,
        arch_key: str | None = None,
    ) -> dict[str, float]:
        import onnx

        from hwnas.hardware._common import onnx_file

        if model is None and onnx_path is None:
            raise CandidateFailed("ONNX graph features need the model or its ONNX file")
        shape = tuple(int(d) for d in input_shape)
        with onnx_file(model, shape, onnx_path=onnx_path, arch_key=arch_key, workdir=self.workdir) as path:
            try:
                return onnx_features(onnx.load(str(path)), self.constants)
            except Exception as exc:
                raise CandidateFailed(f"graph features failed: {type(exc).__name__}: {exc}") from exc


# --- the choice per candidate -------------------------------------------------------------------------


@runtime_checkable
class FeatureChoice(Protocol):
    """What ``predictor.features`` builds: the extractor for each candidate (every ``FeatureExtractor`` is
    one, always choosing itself). ``name`` labels the choice (``auto``, ``onnx``, ``nb201``)."""

    name: str

    def select(self, model: Any) -> FeatureExtractor: ...


class AutoFeatures:
    """The default: the exported ONNX graph (:class:`OnnxGraphFeatures`) for a candidate with a model, its
    NB201 arch string (:class:`NB201Features`) for one without (a table-driven search builds none). The
    two keep separate measured sets: features of two extractors never mix.

    Args:
        workdir: Where the ONNX extractor keeps exports (see :class:`FeatureExtractor`).
        prior: The fitted ``conf/hardware`` option for the roofline prior (see :class:`OnnxGraphFeatures`).
    """

    name = "auto"

    def __init__(self, workdir: str | Path | None = None, *, prior: str | None = None) -> None:
        self.by_model = OnnxGraphFeatures(workdir, prior=prior)
        self.by_key = NB201Features()

    def select(self, model: Any) -> FeatureExtractor:
        return self.by_key if model is None else self.by_model


def feature_classes() -> list[str]:
    """Import paths of the feature choices this module offers (valid ``predictor.features._target_``s)."""
    return sorted(
        f"{__name__}.{name}"
        for name, obj in globals().items()
        if isinstance(obj, type)
        and obj.__module__ == __name__
        and callable(getattr(obj, "select", None))
        and not inspect.isabstract(obj)
        and obj is not FeatureChoice
    )

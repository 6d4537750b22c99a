"""Fold an ONNX graph's constant-only subgraphs into initializers before it is costed.

Why: torch's ONNX exporter writes an explicit pad (``F.pad``, ``nn.ZeroPad2d``) as a small subgraph
that *computes* the ``pads`` input (``ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose ->
Cast``). ONNX shape inference cannot see through it, so every tensor after the first such pad has an
unknown shape, and the roofline (``hardware/estimate.py``) silently counted no MACs for the layers
behind it (DeepLabV3+ MobileNet: 0.06 of its 27 GMACs) while charging each bookkeeping node as a layer.
The same happens to ``x.shape`` arithmetic in ``forward`` (``Shape -> Gather -> ... -> Reshape/Resize``):
ShuffleNet's channel split and DDRNet's resizes lost the shapes of 39 of 57 and 26 of 55 convolutions.
A device compiler folds these subgraphs away; so do we, with ONNX's own reference evaluator
(``onnx.reference``), node by node, for nodes whose inputs are all constants or static shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Constant subgraphs larger than this (elements) are left alone: bookkeeping is small, weights are not.
MAX_FOLDED_ELEMENTS = 1 << 16


def fold_constants(model: Any, *, max_rounds: int = 8) -> Any:
    """A copy of ``model`` with its constant-only nodes replaced by initializers, **shape-inferred**: its
    ``value_info`` holds every shape ONNX shape inference finds, so callers read shapes from it instead of
    inferring them again (the estimate and the peak-activation metric run per candidate).

    A node is folded when every input is an initializer, a ``Constant`` output or an already folded
    output, and its results are small (``MAX_FOLDED_ELEMENTS``); a ``Shape`` node is folded once shape
    inference knows its input's static shape (``x.shape`` arithmetic in ``forward``: ShuffleNet's channel
    split, DDRNet's resize to a branch's size). Shape inference and folding alternate until nothing new
    folds. Nodes that fail to evaluate are kept.
    """
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    for _ in range(max_rounds):
        folded = _fold_once(inferred, _static_shapes(inferred))
        if folded is inferred:
            break
        del folded.graph.value_info[:]  # stale: folded tensors are initializers now
        inferred = onnx.shape_inference.infer_shapes(folded)
    return inferred


def _static_shapes(inferred: Any) -> dict[str, tuple[int, ...]]:
    """Tensors of a shape-inferred model whose every dimension is known as a number."""
    graph = inferred.graph
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = tuple(int(d.dim_value) for d in t.shape.dim)
    return out


def _fold_once(model: Any, shapes: dict[str, tuple[int, ...]]) -> Any:
    """One pass of folding over ``model`` (see ``fold_constants``); ``model`` itself when nothing folds."""
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    folded: set[int] = set()
    opsets = list(model.opset_import)
    for idx, node in enumerate(graph.node):
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            values = [numpy_helper.to_array(node.attribute[0].t)]
        elif node.op_type == "Constant":
            values = ReferenceEvaluator(_one_node(node, [], opsets)).run(None, {})
        elif node.op_type == "Shape" and node.input[0] in shapes:
            dims = shapes[node.input[0]]
            lo, hi = _attr_int(node, "start", 0), _attr_int(node, "end", len(dims))
            values = [np.array(dims[lo:hi], dtype=np.int64)]
        elif node.input and all(i == "" or i in known for i in node.input) and node.op_type not in _KEEP:
            try:
                feeds = [(i, known[i]) for i in node.input if i]
                values = ReferenceEvaluator(_one_node(node, feeds, opsets)).run(None, dict(feeds))
            except Exception:  # an op the reference evaluator lacks: keep the node as it is
                continue
        else:
            continue
        if any(np.asarray(v).size > MAX_FOLDED_ELEMENTS for v in values) or set(node.output) & graph_outputs:
            continue
        known.update({o: np.asarray(v) for o, v in zip(node.output, values, strict=False)})
        folded.add(idx)
    if not any(graph.node[i].op_type != "Constant" for i in folded):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    used = {i for n_idx, n in enumerate(graph.node) if n_idx not in folded for i in n.input}
    have = {t.name for t in graph.initializer}
    new_inits = [
        numpy_helper.from_array(known[o], o)
        for i in sorted(folded)
        for o in graph.node[i].output
        if o in used and o not in have
    ]
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(graph.node) if i not in folded)
    out.graph.initializer.extend(new_inits)
    return out


def _attr_int(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


#: Ops never folded even with constant inputs (random or stateful results).
_KEEP = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial"}


def _one_node(node: Any, feeds: list[tuple[str, np.ndarray]], opsets: list[Any]) -> Any:
    """A model of ``node`` alone, its inputs as graph inputs (what ``ReferenceEvaluator`` runs)."""
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), None)
        for name, v in feeds
    ]
    outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    return helper.make_model(graph, opset_imports=opsets)

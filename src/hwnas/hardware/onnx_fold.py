"""Fold an ONNX graph's constant-only subgraphs into initializers before it is costed.

Why: torch's ONNX exporter writes an explicit pad (``F.pad``, ``nn.ZeroPad2d``) as a small subgraph
that *computes* the ``pads`` input (``ConstantOfShape -> Concat -> Reshape -> Slice -> Transpose ->
Cast``). ONNX shape inference cannot see through it, so every tensor after the first such pad has an
unknown shape, and the roofline (``hardware/estimate.py``) silently counted no MACs for the layers
behind it (DeepLabV3+ MobileNet: 0.06 of its 11 GMACs) while charging each bookkeeping node as a layer.
A device compiler folds these subgraphs away; so do we, with ONNX's own reference evaluator
(``onnx.reference``), node by node, for nodes whose inputs are all constants.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Constant subgraphs larger than this (elements) are left alone: bookkeeping is small, weights are not.
MAX_FOLDED_ELEMENTS = 1 << 16


def fold_constants(model: Any) -> Any:
    """A copy of ``model`` whose constant-only nodes are replaced by initializers (``model`` if none).

    A node is folded when every input is an initializer, a ``Constant`` output or an already folded
    output, and its results are small (``MAX_FOLDED_ELEMENTS``). Nodes that fail to evaluate are kept.
    """
    import onnx
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    folded: set[int] = set()
    opsets = list(model.opset_import)
    for idx, node in enumerate(graph.node):
        if node.op_type == "Constant":
            values = ReferenceEvaluator(_one_node(node, [], opsets)).run(None, {})
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
    new_inits = [
        numpy_helper.from_array(known[o], o)
        for i in sorted(folded)
        for o in graph.node[i].output
        if o in used and o not in {t.name for t in graph.initializer}
    ]
    del out.graph.node[:]
    out.graph.node.extend(n for i, n in enumerate(graph.node) if i not in folded)
    out.graph.initializer.extend(new_inits)
    return out


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

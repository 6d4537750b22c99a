"""The analytical Hexagon 780 model: documented constants, per-layer roofline, sensible orderings."""

from __future__ import annotations

import onnx
import pytest
from torch import nn

from hwnas.hardware.estimate import EstimateProfiler, HexagonConstants, estimate_onnx
from hwnas.hardware.export import export_onnx
from hwnas.utils.errors import ConfigError

SHAPE = (1, 32, 32, 32)


def _ms(model: nn.Module, tmp_path, shape=SHAPE, **consts) -> float:
    path = export_onnx(model, shape, tmp_path / f"m{id(model)}.onnx")
    ms, _ = estimate_onnx(onnx.load(str(path)), HexagonConstants(**consts))
    return ms


def test_single_conv_matches_the_roofline_formula(tmp_path):
    c = HexagonConstants()
    ms = _ms(nn.Conv2d(32, 64, 3, padding=1, bias=False), tmp_path)
    macs = 32 * 32 * 64 * 32 * 9
    t_compute = macs / c.mac_rate
    moved = (32 * 32 * 32 + 64 * 32 * 32 + 64 * 32 * 9) * 1.0
    t_mem = moved / (c.onchip_gbps * 1e9)
    expected = (max(t_compute, t_mem) * 1e6 + c.per_layer_us + c.per_inference_us) / 1000
    assert ms == pytest.approx(expected, rel=1e-9)


def test_orderings_a_user_relies_on(tmp_path):
    small = _ms(nn.Conv2d(32, 32, 3, padding=1), tmp_path)
    wide = _ms(nn.Conv2d(32, 128, 3, padding=1), tmp_path)
    deep = _ms(nn.Sequential(*[nn.Conv2d(32, 32, 3, padding=1) for _ in range(4)]), tmp_path)
    assert small < wide and small < deep
    # Depthwise: far fewer MACs, but not proportionally faster (vector units, not the tensor unit).
    dw = _ms(nn.Conv2d(32, 32, 3, padding=1, groups=32), tmp_path)
    assert dw < small
    assert dw / small > 1 / 32
    # Activations and BatchNorm after a conv are fused: free.
    fused = _ms(
        nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()).eval(), tmp_path
    )
    assert fused == pytest.approx(small)


def test_report_says_it_is_an_estimate_and_lists_assumptions(tmp_path):
    r = EstimateProfiler(workdir=tmp_path).profile(nn.Conv2d(32, 8, 1), SHAPE)
    assert (r.source, r.backend, r.precision, r.n_samples) == ("estimated", "estimate", "int8", 0)
    assert "estimated" in r.device and "Hexagon 780" in r.device
    assert r.extra["assumptions"]["peak_tops"] == 26.0
    assert r.extra["assumptions"]["dram_gbps"] == 51.2


def test_constants_can_be_overridden_and_typos_are_caught(tmp_path):
    slow = EstimateProfiler(constants={"efficiency": 0.01}).profile(nn.Conv2d(32, 64, 3), SHAPE)
    fast = EstimateProfiler().profile(nn.Conv2d(32, 64, 3), SHAPE)
    assert slow.median_ms > fast.median_ms
    with pytest.raises(ConfigError, match="efficency"):
        EstimateProfiler(constants={"efficency": 0.2})


def test_an_explicit_pad_does_not_hide_the_layers_behind_it(tmp_path):
    """torch exports ``nn.ZeroPad2d`` as a subgraph computing the pads; shape inference alone lost every
    shape after it, and the estimate counted no MACs for the convolution behind the pad."""
    from hwnas.hardware.estimate import layer_terms

    padded = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(32, 64, 3, bias=False))
    plain = nn.Conv2d(32, 64, 3, padding=1, bias=False)
    terms = {}
    for name, model in (("padded", padded), ("plain", plain)):
        path = export_onnx(model, SHAPE, tmp_path / f"{name}.onnx")
        terms[name] = layer_terms(onnx.load(str(path)), HexagonConstants())
    conv = [t for t in terms["padded"] if t["op"] == "Conv"]
    assert conv and conv[0]["macs_raw"] == 32 * 32 * 64 * 32 * 9 == terms["plain"][0]["macs_raw"]
    # the pad's bookkeeping (ConstantOfShape, Concat, Slice, ...) is folded, not charged as layers
    assert [t["op"] for t in terms["padded"]] == ["Pad", "Conv"]


def test_shape_arithmetic_does_not_hide_the_layers_behind_it():
    """``x.chunk`` / ``x.shape`` in ``forward`` (ShuffleNet's split, DDRNet's resize to a branch's size) can
    export as ``Shape -> Gather -> Div -> Slice``; shape inference alone loses the shapes after the
    slice. Once the input's shape is known the subgraph folds and the convolution keeps its MACs."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from hwnas.hardware.estimate import layer_terms

    def const(name, value):
        return numpy_helper.from_array(np.array(value, dtype=np.int64), name)

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["channels"], axis=0),
        helper.make_node("Div", ["channels", "two"], ["half"]),
        helper.make_node("Slice", ["x", "zero", "half", "one"], ["first"]),
        helper.make_node("Conv", ["first", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "split", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [const("one", [1]), const("two", [2]), const("zero", [0]),
         numpy_helper.from_array(np.zeros((16, 16, 3, 3), np.float32), "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    conv = [t for t in layer_terms(model, HexagonConstants()) if t["op"] == "Conv"]
    assert conv and conv[0]["macs_raw"] == 6 * 6 * 16 * 16 * 9

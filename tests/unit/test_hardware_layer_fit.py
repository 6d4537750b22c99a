"""Per-layer calibration from AI Hub profiles (``hwnas.hardware.layer_fit``), on profiles made in the
client's documented format (``qai_hub/client.py``: ``execution_detail`` rows with ``name``, ``type``,
``compute_unit``, ``execution_time`` in µs) from graphs exported here and known constants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from hwnas.hardware.estimate import HexagonConstants, layer_terms, layer_time_us
from hwnas.hardware.export import export_onnx
from hwnas.hardware.layer_fit import fit_layers, match_profile, normalise, out_of_fold, predict_us
from hwnas.hardware.profile_files import read_profile, write_profile
from hwnas.utils.errors import DataError

TRUTH = replace(
    HexagonConstants(),
    efficiency=0.4, depthwise_penalty=20.0, dram_efficiency=0.3, onchip_gbps=60.0,
    resize_penalty=2.5, per_layer_us=3.0, per_inference_us=400.0,
)  # fmt: skip
CONVERT_US, RESHAPE_US = 7.0, 2.0


def _net(kind: str, width: int) -> nn.Module:
    if kind == "plain":
        return nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, 8, 1), nn.Flatten(),
        )  # fmt: skip
    if kind == "depthwise":
        return nn.Sequential(
            nn.Conv2d(3, width, 1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, groups=width),
            nn.ReLU(), nn.Conv2d(width, 8, 1),
        )  # fmt: skip
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(width, 4, 3, padding=1),
    )  # fmt: skip


def synthetic_profile(proto: onnx.ModelProto, c: HexagonConstants) -> dict:
    """What AI Hub would return if the device ran each layer exactly as the roofline under ``c``: QNN-style
    names, the ReLU folded into its convolution, one inserted requantisation, a reshape's own time."""
    detail = []
    for term in layer_terms(proto, c):
        us = layer_time_us(term, c)[0]
        qnn = "_" + "_".join(p for p in term["name"].replace(".", "_").split("/") if p)
        detail.append({"name": qnn, "type": term["op"], "compute_unit": "NPU", "execution_time": us})
    detail.append({"name": "input_converted_UFIXED_POINT_8", "type": "Convert", "compute_unit": "NPU",
                   "execution_time": CONVERT_US})  # fmt: skip
    reshapes = [n.name for n in proto.graph.node if n.op_type in ("Reshape", "Flatten")]
    if reshapes:
        detail.append({"name": normalise(reshapes[0]), "type": "Reshape", "compute_unit": "NPU",
                       "execution_time": RESHAPE_US})  # fmt: skip
    total = sum(d["execution_time"] for d in detail) - CONVERT_US - RESHAPE_US * bool(reshapes)
    total += c.per_inference_us
    return {
        "execution_summary": {"estimated_inference_time": total, "all_inference_times": [total] * 5},
        "execution_detail": detail,
    }


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("layer_fit")
    out = []
    for kind in ("plain", "depthwise", "upsample"):
        for width in (16, 64):
            path = export_onnx(_net(kind, width), (1, 3, 64, 64), root / f"{kind}{width}.onnx")
            proto = onnx.load(str(path))
            out.append((f"{kind}{width}", kind, proto, synthetic_profile(proto, TRUTH)))
    return out


def test_qnn_names_meet_onnx_names():
    assert normalise("/layer1/layer1.0/conv1/Conv") == normalise("_layer1_layer1_0_conv1_Conv")
    assert normalise("/Conv") == "conv"


def test_every_device_layer_lands_on_its_row(graphs):
    name, _, proto, prof = graphs[0]  # plain16: convolutions with ReLUs, a Flatten
    m = match_profile(name, proto, prof)
    terms = layer_terms(proto, TRUTH)
    assert [t["name"] for t in m.terms] == [t["name"] for t in terms]
    assert m.layer_us == pytest.approx([layer_time_us(t, TRUTH)[0] for t in terms])
    assert m.unmatched_us == CONVERT_US and m.free_us == RESHAPE_US and m.off_npu_us == 0
    assert m.matched_share == pytest.approx(sum(m.layer_us) / (sum(m.layer_us) + CONVERT_US + RESHAPE_US))


def test_a_relu_named_layer_is_charged_to_its_convolution(graphs):
    name, _, proto, prof = graphs[0]
    relu = next(n.name for n in proto.graph.node if n.op_type == "Relu")
    conv = next(n.name for n in proto.graph.node if n.op_type == "Conv")
    detail = [dict(d) for d in prof["execution_detail"]]
    first = next(d for d in detail if normalise(d["name"]) == normalise(conv))
    detail.append({"name": relu + ":OpId_9", "type": "Relu", "compute_unit": "NPU", "execution_time": 5.0})
    m = match_profile(name, proto, {**prof, "execution_detail": detail})
    row = [t["name"] for t in m.terms].index(conv)
    assert m.layer_us[row] == pytest.approx(first["execution_time"] + 5.0)


def test_the_fit_recovers_the_device_from_its_layers(graphs):
    matched = [match_profile(n, p, prof) for n, _, p, prof in graphs]
    fitted, report = fit_layers(matched)  # with the weak pull towards the documented constants
    assert report["n_models"] == 6 and report["layer_mdape"] < 0.05
    for g in matched:
        assert predict_us(g, fitted) == pytest.approx(g.total_us, rel=0.01)
    # the rates alone (with op factors, a Resize factor would stand in for resize_penalty); DRAM is unseen
    exact, report = fit_layers(matched, prior_weight=0.0, op_factors=False)
    assert report["layer_mdape"] < 1e-6
    for name in ("efficiency", "depthwise_penalty", "onchip_gbps", "resize_penalty", "per_layer_us",
                 "per_inference_us"):  # fmt: skip
        assert getattr(exact, name) == pytest.approx(getattr(TRUTH, name), rel=1e-3), name


def test_families_held_out_predict_whole_latencies(graphs):
    matched = [match_profile(n, p, prof) for n, _, p, prof in graphs]
    pred = out_of_fold(matched, [fam for _, fam, _, _ in graphs])
    meas = np.array([g.total_us for g in matched]) / 1000.0
    assert np.all(np.abs(pred / meas - 1) < 0.05)


def test_too_few_profiles_is_a_clear_error(graphs):
    matched = [match_profile(n, p, prof) for n, _, p, prof in graphs[:2]]
    with pytest.raises(DataError, match="at least 3") as err:
        fit_layers(matched)
    assert "collect_profiles" in str(err.value)


def test_profile_files_round_trip_and_refuse_other_json(graphs, tmp_path):
    _, _, _, prof = graphs[0]
    path = write_profile(tmp_path, "hwnas-a/b", {"device": "Samsung Galaxy S24", "profile": prof})
    assert read_profile(path)["profile"] == prof
    bare = tmp_path / "bare.json"
    bare.write_text(__import__("json").dumps(prof))
    assert read_profile(bare)["profile"]["execution_detail"]
    other = tmp_path / "other.json"
    other.write_text('{"execution_summary": {}}')
    with pytest.raises(DataError, match="not an AI Hub profile"):
        read_profile(other)


def test_fitted_constants_mean_the_same_in_the_shipped_estimate(graphs):
    from hwnas.hardware.estimate import estimate_onnx

    matched = [match_profile(n, p, prof) for n, _, p, prof in graphs]
    fitted, _ = fit_layers(matched)
    for (_, _, proto, _), g in zip(graphs, matched, strict=True):
        assert estimate_onnx(proto, fitted)[0] == pytest.approx(predict_us(g, fitted) / 1000.0, rel=1e-9)


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(3))
        self.side = nn.Conv2d(width, width, 1)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)  # three Adds of two activations
        return torch.cat([x, self.side(x)], dim=1)  # one Concat


def test_per_layer_times_separate_what_an_op_type_costs(tmp_path):
    """An op type the roofline misjudges (here Add at 3x, Concat at half) is learned from its layers, and
    the shipped estimate applies it (``HexagonConstants.op_factors``)."""
    from hwnas.hardware.estimate import estimate_onnx
    from hwnas.hardware.layer_fit import synthetic_profile

    truth = replace(TRUTH, op_factors={"Add": 3.0, "Concat": 0.5})
    assert truth.op_factors == (("Add", 3.0), ("Concat", 0.5))  # a config mapping becomes a sorted tuple
    matched, protos = [], []
    for width in (8, 16, 24, 32, 64):  # five Concat layers: enough for a factor (MIN_OP_LAYERS)
        path = export_onnx(_Residual(width).eval(), (1, 3, 96, 96), tmp_path / f"r{width}.onnx")
        protos.append(onnx.load(str(path)))
        matched.append(match_profile(f"r{width}", protos[-1], synthetic_profile(protos[-1], truth)))
    fitted, report = fit_layers(matched, prior_weight=0.0)
    assert report["op_factors"]["Add"] == pytest.approx(3.0, rel=0.02)
    assert report["op_factors"]["Concat"] == pytest.approx(0.5, rel=0.02)
    for proto, g in zip(protos, matched, strict=True):
        assert estimate_onnx(proto, fitted)[0] * 1000 == pytest.approx(g.total_us, rel=0.01)
    plain, _ = fit_layers(matched, prior_weight=0.0, op_factors=False)  # rates alone cannot
    assert plain.op_factors == () and max(abs(predict_us(g, plain) / g.total_us - 1) for g in matched) > max(
        abs(predict_us(g, fitted) / g.total_us - 1) for g in matched
    )


def test_op_factors_stay_out_of_reports_and_cache_keys_when_there_are_none():
    from hwnas.hardware.estimate import EstimateProfiler

    assert "op_factors" not in HexagonConstants().plain()
    assert HexagonConstants(op_factors={"Softmax": 4}).plain()["op_factors"] == {"Softmax": 4.0}
    prof = EstimateProfiler(constants={"op_factors": {"Softmax": 4}})
    assert prof.cache_identity()["constants"]["op_factors"] == {"Softmax": 4.0}
    assert "op_factors" not in EstimateProfiler().cache_identity()["constants"]

"""Qualcomm's published latencies as a table, the family-held-out fit, and the fitted options' provenance."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from hwnas.hardware import device_data
from hwnas.hardware.device_fit import Graph, out_of_fold, score
from hwnas.hardware.estimate import EstimateProfiler, HexagonConstants
from hwnas.utils.errors import DataError


def _perf(ms: float, status: str = "Passed") -> dict:
    return {
        "inference_time_milliseconds": ms,
        "job_status": status,
        "layer_counts": {"npu": 50, "total": 52, "cpu": 2},
        "primary_compute_unit": "NPU",
        "tool_versions": {"qairt": "2.50.0"},
    }


@pytest.fixture
def data_dir(tmp_path):
    pkg = tmp_path / "qai_hub_models"
    (pkg / "models" / "netA").mkdir(parents=True)
    (pkg / "devices_and_chipsets.yaml").write_text(
        yaml.safe_dump(
            {
                "chipsets": {"qualcomm-qcs6490": {"htp_version": 68}},
                "devices": {"Dragonwing RB3 Gen 2 Vision Kit": {"chipset": "qualcomm-qcs6490"}},
            }
        )
    )
    perf = {
        "precisions": {
            "w8a8": {
                "components": {
                    "NetA": {
                        "performance_metrics": {
                            "Dragonwing RB3 Gen 2 Vision Kit": {
                                "qnn_dlc": _perf(1.5),
                                "tflite": _perf(2.0, status="Failed"),
                            },
                            "Unknown Board": {"onnx": _perf(3.0)},
                        }
                    }
                }
            }
        }
    }
    (pkg / "models" / "netA" / "perf.yaml").write_text(yaml.safe_dump(perf))
    manifest = {"technical_details": {"Input resolution": "520x520"}, "use_case": "Semantic Segmentation"}
    (pkg / "models" / "netA" / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path


def test_perf_table_reads_measurements_with_chip_and_generation(data_dir):
    df = device_data.perf_table(data_dir)
    assert list(df.columns) == list(device_data.COLUMNS)
    assert len(df) == 2  # the failed tflite job is left out
    rb3 = df[df["device"] == "Dragonwing RB3 Gen 2 Vision Kit"].iloc[0]
    assert (rb3["chipset"], int(rb3["npu_generation"]), rb3["runtime"]) == ("qualcomm-qcs6490", 68, "qnn_dlc")
    assert (rb3["measured_ms"], rb3["input_shape"], rb3["layers_cpu"]) == (1.5, "520x520", 2)
    assert pd_isna(df[df["device"] == "Unknown Board"]["npu_generation"].iloc[0])


def pd_isna(v) -> bool:
    import pandas as pd

    return bool(pd.isna(v))


def test_missing_data_names_the_variable_and_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        device_data.perf_table(tmp_path)
    assert "HWNAS_DEVICE_DATA" in str(err.value) and "make install" in str(err.value)


def _graph(i: int, family: str) -> Graph:
    """A chain of convolutions whose size grows with ``i``: compute-bound layers plus small ones."""
    terms = []
    for k in range(3 + i % 4):
        macs = (1 + i) * (k + 1) * 40_000_000
        terms.append(
            {
                "macs": macs,
                "macs_raw": macs,
                "depthwise": k == 1,
                "resize": False,
                "elems": 200_000,
                "fits": True,
            }
        )
    return Graph(model=f"m{i}", family=family, task="classification", terms=tuple(terms), params=1e6 * i + 1,
                 macs=float(sum(t["macs"] for t in terms)))  # fmt: skip


def test_held_out_fit_recovers_a_device_the_documented_constants_miss():
    from hwnas.hardware.calibrate import _arrays, predict_ms

    graphs = [_graph(i, f"fam{i % 4}") for i in range(12)]
    truth = HexagonConstants(
        efficiency=0.03, depthwise_penalty=3.0, per_layer_us=20.0, per_inference_us=400.0
    )
    measured = np.array([predict_ms(_arrays(list(g.terms)), truth) for g in graphs])
    oof = out_of_fold(graphs, measured)
    assert set(oof["family"]) == {"fam0", "fam1", "fam2", "fam3"} and oof["calibrated_ms"].notna().all()
    s = score(oof, n_boot=50)
    assert s["calibrated"]["mdape"] < 0.1 < s["uncalibrated"]["mdape"]
    assert s["calibrated"]["beats_uncalibrated"]
    lo, hi = s["calibrated"]["spearman_ci"]
    assert lo <= s["calibrated"]["spearman"] <= hi


def test_the_output_map_corrects_a_chip_whose_large_graphs_the_rates_overestimate():
    """A chip measured at ``0.4 * roofline ** 0.7`` (small graphs slower, large ones faster than any
    rates say): the fitted map bends towards the power, and the held-out error drops with it."""
    from dataclasses import replace

    from hwnas.hardware.calibrate import _arrays, predict_ms
    from hwnas.hardware.device_fit import fit_device

    graphs = [_graph(i, f"fam{i % 4}") for i in range(12)]
    plain = HexagonConstants(efficiency=0.03, per_inference_us=400.0)
    measured = np.array([0.4 * predict_ms(_arrays(list(g.terms)), plain) ** 0.7 for g in graphs])
    constants, _ = fit_device(graphs, measured)
    assert constants.out_power < 0.95  # the rates alone cannot bend the curve this far
    fitted = np.array([predict_ms(_arrays(list(g.terms)), constants) for g in graphs])
    assert np.median(np.abs(fitted / measured - 1)) < 0.05
    identity = replace(constants, out_scale=1.0, out_power=1.0)
    assert predict_ms(_arrays(list(graphs[0].terms)), identity) != pytest.approx(fitted[0])
    assert score(out_of_fold(graphs, measured), n_boot=50)["calibrated"]["within20"] >= 0.9


def test_the_estimate_reports_the_mapped_latency(tmp_path):
    import onnx
    import torch

    from hwnas.hardware.estimate import estimate_onnx
    from hwnas.hardware.export import export_onnx

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 32, 3))
    path = tmp_path / "m.onnx"
    export_onnx(model.eval(), (1, 3, 64, 64), path)
    proto = onnx.load(str(path))
    raw, _ = estimate_onnx(proto, HexagonConstants())
    mapped, _ = estimate_onnx(proto, HexagonConstants(out_scale=2.0, out_power=0.5))
    assert mapped == pytest.approx(2.0 * raw**0.5)


def test_the_image_to_image_zoo_graphs_build_at_the_profiled_shape():
    import torch

    from hwnas.hardware.zoo import build, zoo_models

    zoo = zoo_models()
    with torch.no_grad():
        assert build(zoo["quicksrnetsmall"])(torch.rand(1, 3, 32, 32)).shape == (1, 3, 128, 128)
        assert build(zoo["dncnn"])(torch.rand(1, 1, 24, 24)).shape == (1, 1, 24, 24)
        assert build(zoo["srgan"])(torch.rand(1, 3, 16, 16)).shape == (1, 3, 64, 64)
    sizes = ("quicksrnetsmall", "quicksrnetmedium", "quicksrnetlarge")
    assert {zoo[m].family for m in sizes} == {"quicksrnet"}


def test_cross_validation_needs_three_families():
    graphs = [_graph(i, f"fam{i % 2}") for i in range(6)]
    with pytest.raises(DataError, match="families"):
        out_of_fold(graphs, np.arange(1.0, 7.0))


def test_fitted_option_names_device_and_calibration_in_every_report(tmp_path):
    import torch

    node = OmegaConf.load("conf/hardware/snapdragon8gen3.yaml")
    assert node.calibration.runtime == "qnn_dlc" and node.calibration.precision == "w8a8"
    kwargs = OmegaConf.to_container(node, resolve=False)
    kwargs.pop("_target_")
    kwargs["workdir"] = str(tmp_path)
    profiler = EstimateProfiler(**kwargs)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    report = profiler.profile(model, (1, 3, 32, 32), arch_key="tiny")
    assert "Snapdragon 8 Gen 3" in report.device
    assert report.extra["calibration"]["device"] == "Samsung Galaxy S24"
    assert "Samsung Galaxy S24" in profiler.describe()


def test_summary_names_the_calibration_of_the_hardware_option():
    from hwnas.reporting.search_outputs import latency_calibration

    cfg = OmegaConf.create({"hardware": OmegaConf.load("conf/hardware/snapdragon8gen3.yaml")})
    got = latency_calibration(cfg)
    assert got["target"] == "snapdragon8gen3" and "qai-hub-models" in got["set"]
    assert latency_calibration(OmegaConf.create({"hardware": {"target": "cpu"}})) == {}
    sd888 = OmegaConf.create({"hardware": OmegaConf.load("conf/hardware/snapdragon888.yaml")})
    assert latency_calibration(sd888) == {}  # measured on a device: the estimate's fit does not apply
    assert "V68" in latency_calibration(sd888, source="estimated")["label"]


@pytest.mark.slow
def test_installed_data_has_v68_npu_measurements():
    if not (device_data.data_root() / "qai_hub_models").is_dir():
        pytest.skip("qai-hub-models data not installed (make install)")
    df = device_data.perf_table()
    v68 = df[(df["npu_generation"] == 68) & (df["precision"] == "w8a8") & (df["runtime"] == "qnn_dlc")]
    assert {"resnet18", "fcn_resnet50"} <= set(v68["model"])


def test_predictor_prior_takes_a_fitted_option_and_refuses_others(tmp_path):
    import onnx
    import torch

    from hwnas.hardware.export import export_onnx
    from hwnas.hardware.predictor.features import OnnxGraphFeatures
    from hwnas.utils.errors import ConfigError

    path = export_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3), torch.nn.ReLU()), (1, 3, 64, 64),
                       tmp_path / "m.onnx")  # fmt: skip
    default, fitted = OnnxGraphFeatures(tmp_path), OnnxGraphFeatures(tmp_path, prior="snapdragon8gen3")
    assert (default.name, fitted.name) == ("onnx", "onnx@snapdragon8gen3")  # measured sets kept apart
    a = default.extract(onnx_path=path, input_shape=(1, 3, 64, 64))
    b = fitted.extract(onnx_path=path, input_shape=(1, 3, 64, 64))
    assert b["roofline_ms"] < a["roofline_ms"] and b["mmacs"] == a["mmacs"]
    assert onnx.load(str(path)) is not None
    with pytest.raises(ConfigError) as err:
        OnnxGraphFeatures(tmp_path, prior="cpu")
    assert "predictor.features.prior" in str(err.value) and "qcs6490" in str(err.value)


def test_snapdragon888_estimate_uses_the_v68_fit():
    sd888 = OmegaConf.load("conf/hardware/snapdragon888.yaml").estimate
    assert sd888.constants == OmegaConf.load("conf/hardware/qcs6490.yaml").constants
    assert "V68" in sd888.calibration.label and "unverified" in sd888.calibration.label


def test_a_calibration_on_snapdragon888_keeps_the_v68_output_map():
    """``estimate.calibrate`` starts from snapdragon888's V68 fit: the option it writes must estimate with
    the same output map the fit was made under."""
    from hwnas.hardware.calibrate import calibrated_option

    node = OmegaConf.load("conf/hardware/snapdragon888.yaml")
    base = HexagonConstants(**OmegaConf.to_container(node.estimate.constants))
    assert base.out_power != 1.0
    err = {"median_abs_error": 0.1}
    option = yaml.safe_load(
        calibrated_option(base, source="t.csv", report={"n": 3, "before": err, "after": err})
    )
    assert option["estimate"]["constants"]["out_power"] == pytest.approx(base.out_power)
    assert option["estimate"]["constants"]["out_scale"] == pytest.approx(base.out_scale)

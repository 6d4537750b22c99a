"""Calibrating the Snapdragon 888 roofline's constants to measurements (estimate.calibrate)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from torch import nn

from hwnas.hardware.calibrate import FITTED, fit_constants, predict_ms, read_measurements
from hwnas.hardware.estimate import HexagonConstants, estimate_onnx, layer_terms
from hwnas.hardware.export import export_onnx
from hwnas.utils.errors import ConfigError, DataError

# A "phone" whose constants differ from the documented ones.
TRUE = replace(
    HexagonConstants(), efficiency=0.06, per_layer_us=12.0, per_inference_us=400.0, depthwise_penalty=4.0
)


def _graphs(tmp_path) -> list[list[dict]]:
    nets = []
    for width in (16, 48, 96):
        for depth in (1, 3):
            layers: list[nn.Module] = [nn.Conv2d(16, width, 3, padding=1)]
            layers += [nn.Conv2d(width, width, 3, padding=1, groups=width if depth == 3 else 1)] * depth
            nets.append(nn.Sequential(*layers).eval())
    nets.append(nn.Sequential(nn.Conv2d(16, 16, 1), nn.Upsample(scale_factor=2, mode="bilinear")).eval())
    graphs = []
    for i, net in enumerate(nets):
        path = export_onnx(net, (1, 16, 32, 32), tmp_path / f"n{i}.onnx")
        graphs.append(layer_terms(onnx.load(str(path)), HexagonConstants()))
    return graphs


def test_vectorised_formula_is_the_estimate(tmp_path):
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.Conv2d(32, 32, 3, padding=1, groups=32)).eval()
    path = export_onnx(net, (1, 16, 32, 32), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    from hwnas.hardware.calibrate import _arrays

    assert predict_ms(_arrays(layer_terms(model, TRUE)), TRUE) == pytest.approx(estimate_onnx(model, TRUE)[0])


def test_fit_recovers_a_phone_and_beats_the_documented_constants(tmp_path):
    graphs = _graphs(tmp_path)
    from hwnas.hardware.calibrate import _arrays

    measured = np.array([predict_ms(_arrays(g), TRUE) for g in graphs])
    fitted, report = fit_constants(graphs, measured)
    assert report["after"]["median_abs_error"] < 0.05 < report["before"]["median_abs_error"]
    assert report["after"]["median_abs_error"] < report["before"]["median_abs_error"] / 5
    assert set(report["constants_after"]) == set(FITTED)
    for name, (lo, hi) in FITTED.items():
        assert lo <= getattr(fitted, name) <= hi
    assert fitted.per_inference_us == pytest.approx(TRUE.per_inference_us, rel=0.3)


def test_measurements_file_errors_name_the_key(tmp_path):
    with pytest.raises(DataError, match=r"\[estimate.calibrate\] measurements file not found"):
        read_measurements(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,ms\na,1\n")
    with pytest.raises(DataError, match="needs a latency column"):
        read_measurements(bad)
    few = tmp_path / "few.csv"
    few.write_text('arch,latency_ms,error\n"|a|",1.0,\n"|b|",2.0,boom\n')
    with pytest.raises(DataError, match="1 usable measurements"):
        read_measurements(few)


@pytest.mark.integration
def test_profile_cli_task_writes_an_option_file_to_keep(make_cfg, tmp_path):
    from hwnas.search_space.nb201 import NB201Space
    from hwnas.tasks import calibrate

    space = NB201Space(channels=4, cells_per_stage=1)
    rng = np.random.default_rng(0)
    specs = [space.sample(rng) for _ in range(5)]
    rows = []
    for spec in specs:
        model = space.build(spec, num_classes=19).eval()
        path = export_onnx(model, (1, 3, 32, 32), tmp_path / "x.onnx")
        rows.append(f'"{spec.key}",{estimate_onnx(onnx.load(str(path)), TRUE)[0]:.6f},1x3x32x32')
    csv = tmp_path / "measured.csv"
    csv.write_text("arch,latency_ms,input_shape\n" + "\n".join(rows) + "\n")
    overrides = ["hardware=snapdragon888", "search_space=nb201", "search_space.channels=4"]
    overrides += [
        "search_space.cells_per_stage=1",
        f"estimate.calibrate={csv}",
        "dataset.dataset.num_train=8",
    ]
    overrides += ["dataset.dataset.num_val=4"]
    out = calibrate.run(make_cfg("profile", overrides))
    assert out["after"]["median_abs_error"] < out["before"]["median_abs_error"]
    option = yaml.safe_load(Path(out["option"]).read_text())
    assert option["_target_"].endswith("snapdragon888") and option["backend"] == "estimate"
    # the refitted constants, plus the output map of snapdragon888's V68 fit it started from (kept)
    assert set(option["estimate"]["constants"]) == {*FITTED, "out_scale", "out_power"}
    with pytest.raises(ConfigError, match=r"\[hardware\]"):
        calibrate.run(make_cfg("profile", [f"estimate.calibrate={csv}"]))


def test_a_folder_of_kept_ai_hub_profiles_calibrates_per_layer(make_cfg, tmp_path):
    from hwnas.hardware.layer_fit import synthetic_profile
    from hwnas.hardware.profile_files import write_profile
    from hwnas.tasks import calibrate

    folder = tmp_path / "profiles"
    for i, net in enumerate(
        [nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, 8, 1)) for w in (8, 32, 96)]
        + [nn.Sequential(nn.Conv2d(3, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16))]
    ):
        path = export_onnx(net.eval(), (1, 3, 32, 32), tmp_path / f"g{i}.onnx")
        prof = synthetic_profile(onnx.load(str(path)), TRUE, noise=0.05, seed=i)
        write_profile(folder, f"hwnas-g{i}-j{i}", {"name": f"hwnas-g{i}", "onnx": str(path), "profile": prof})
    out = calibrate.run(make_cfg("profile", ["hardware=snapdragon888", f"estimate.calibrate={folder}"]))
    assert out["per_layer"] and out["n"] == 4 and out["n_layers"] >= 8
    assert out["after"]["median_abs_error"] < 0.05 < out["before"]["median_abs_error"]
    option = yaml.safe_load(Path(out["option"]).read_text())
    assert option["backend"] == "estimate" and "per layer" in Path(out["option"]).read_text()

    (tmp_path / "g0.onnx").unlink()  # a profile whose graph is gone: refused, with the fix
    with pytest.raises(DataError, match="without their ONNX graph") as err:
        calibrate.run(make_cfg("profile", ["hardware=snapdragon888", f"estimate.calibrate={folder}"]))
    assert "profile_dir" in str(err.value)

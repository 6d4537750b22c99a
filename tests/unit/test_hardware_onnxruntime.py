"""Host CPU profiler: fixed threads, honest statistics, int8 needs and uses real calibration data."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from torch import nn

from hwnas.hardware.export import export_onnx
from hwnas.hardware.onnxruntime import OnnxRuntimeProfiler, quantize_int8, u8s8_saturates
from hwnas.utils.errors import ConfigError

SHAPE = (1, 3, 16, 16)


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()


def calib() -> list[np.ndarray]:
    return [np.random.default_rng(i).random((4, 3, 32, 32), dtype=np.float32) for i in range(2)]


def test_int8_without_calibration_explains_why():
    prof = OnnxRuntimeProfiler(precision="int8", repeats=1)
    with pytest.raises(ConfigError, match="calibration data"):
        prof.profile(tiny_net(), SHAPE)


def test_int8_model_is_quantised_and_cached_next_to_fp32(tmp_path):
    prof = OnnxRuntimeProfiler(precision="int8", warmup=0, repeats=3, workdir=tmp_path)
    report = prof.profile(tiny_net(), SHAPE, calibration=calib(), arch_key="a1")
    assert report.precision == "int8" and report.n_samples == 3
    fp32 = tmp_path / "a1_1x3x16x16.onnx"
    int8 = tmp_path / "a1_1x3x16x16.int8.onnx"
    assert fp32.is_file() and int8.is_file()
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    mtime = int8.stat().st_mtime_ns
    prof.profile(tiny_net(), SHAPE, calibration=calib(), arch_key="a1")
    assert int8.stat().st_mtime_ns == mtime  # reused, not re-quantised


def test_report_fields(tmp_path):
    prof = OnnxRuntimeProfiler(warmup=1, repeats=4, threads=1)
    r = prof.profile(tiny_net(), SHAPE)
    assert r.source == "measured" and r.backend == "onnxruntime" and r.n_samples == 4
    assert set(r.toolchain) == {"onnxruntime", "onnx", "torch"}
    assert r.extra["threads"] == 1 and r.extra["input_shape"] == list(SHAPE)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"precision": "fp16"}, "hardware.precision"),
        ({"repeats": 0}, "hardware.repeats"),
        ({"threads": 0}, "hardware.threads"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        OnnxRuntimeProfiler(**kwargs)
    assert err.value.key == key


def test_input_size_override():
    prof = OnnxRuntimeProfiler(input_size=[64, 48], batch_size=2)
    assert prof.resolve_input_shape((1, 3, 256, 256)) == (2, 3, 64, 48)
    assert OnnxRuntimeProfiler(input_size=32).resolve_input_shape((3, 8, 8)) == (1, 3, 32, 32)


def test_u8s8_saturation_is_detected_from_cpu_flags():
    assert u8s8_saturates("flags\t\t: fpu sse2 avx avx2 fma\n") is True  # AVX2 without VNNI
    assert u8s8_saturates("flags\t\t: fpu avx2 avx512f avx512_vnni\n") is False
    assert u8s8_saturates("flags\t\t: fpu avx2 avx_vnni\n") is False
    assert u8s8_saturates("Features\t: fp asimd\n") is False  # ARM: no x86 flags line


def test_reduce_range_gives_7_bit_weights_and_is_not_served_from_an_8_bit_cache(tmp_path):
    fp32 = tmp_path / "m.onnx"
    export_onnx(tiny_net(), SHAPE, fp32)

    def weight_range(path):
        g = onnx.load(str(path)).graph
        inits = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
        deq = [inits.get(n.input[0]) for n in g.node if n.op_type == "DequantizeLinear"]
        q = [a for a in deq if a is not None and a.dtype == np.int8]
        return max(int(np.abs(a.astype(np.int32)).max()) for a in q)

    full = quantize_int8(fp32, calib(), input_shape=SHAPE)
    assert weight_range(full) > 64
    reduced = quantize_int8(fp32, calib(), input_shape=SHAPE, reduce_range=True)
    assert reduced == full and weight_range(reduced) <= 64

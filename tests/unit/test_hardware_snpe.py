"""SNPE over adb: clear preconditions, the exact command lines, and parsing of real-format output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from hwnas.hardware.snpe import SnpeProfiler, parse_adb_devices, parse_diagview
from hwnas.utils.errors import ProfilerUnavailable

FIXTURE = (Path(__file__).parent / "fixtures" / "snpe_diagview.txt").read_text()
ADB_ONE = "List of devices attached\nR58N123ABC\tdevice\n\n"
SHAPE = (1, 3, 16, 16)


class FakeRunner:
    def __init__(self, adb_out: str = ADB_ONE) -> None:
        self.adb_out = adb_out
        self.commands: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> str:
        self.commands.append(list(cmd))
        if list(cmd) == ["adb", "devices"]:
            return self.adb_out
        if Path(cmd[0]).name == "snpe-diagview":
            return FIXTURE
        return ""


@pytest.fixture
def sdk(tmp_path):
    root = tmp_path / "snpe"
    tool = root / "bin/x86_64-linux-clang/snpe-onnx-to-dlc"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    return root


def test_without_snpe_root_the_error_says_what_to_set(monkeypatch):
    monkeypatch.delenv("SNPE_ROOT", raising=False)
    with pytest.raises(ProfilerUnavailable, match="SNPE_ROOT is not set") as err:
        SnpeProfiler(runner=FakeRunner()).check()
    assert "export SNPE_ROOT=" in str(err.value)


def test_snpe_root_without_the_sdk(tmp_path):
    with pytest.raises(ProfilerUnavailable, match="snpe-onnx-to-dlc not found"):
        SnpeProfiler(snpe_root=tmp_path, runner=FakeRunner()).check()


def test_no_device_attached(sdk):
    runner = FakeRunner("List of devices attached\nR58N\tunauthorized\n")
    with pytest.raises(ProfilerUnavailable, match="no Android device attached"):
        SnpeProfiler(snpe_root=sdk, runner=runner).check()
    with pytest.raises(ProfilerUnavailable, match="not attached"):
        SnpeProfiler(snpe_root=sdk, serial="OTHER", runner=FakeRunner()).check()
    SnpeProfiler(snpe_root=sdk, runner=FakeRunner()).check()


def test_parse_adb_devices():
    text = "List of devices attached\nA1\tdevice\nB2\toffline\nemulator-5554\tdevice product:x\n"
    assert parse_adb_devices(text) == ["A1", "emulator-5554"]


def test_parse_diagview_real_format():
    samples, extra = parse_diagview(FIXTURE)
    assert samples == [1.912, 1.841, 1.866]
    assert extra["average_total_us"] == 1873
    assert extra["snpe_version"].startswith("2.20.0")
    assert extra["runtimes"] == {"DSP": 5, "CPU": 1} and extra["layers_off_dsp"] == [5]


def test_flow_builds_the_right_commands(sdk, tmp_path):
    runner = FakeRunner()
    prof = SnpeProfiler(
        snpe_root=sdk, serial="R58N123ABC", repeats=7, workdir=tmp_path / "onnx", runner=runner
    )
    calib = [np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)]
    r = prof.profile(nn.Conv2d(3, 4, 1), SHAPE, calibration=calib, arch_key="hg-1")
    names = [
        Path(c[0]).name if c[0] != "adb" else f"adb {c[3] if c[1] == '-s' else c[1]}" for c in runner.commands
    ]
    assert names[:3] == ["adb devices", "snpe-onnx-to-dlc", "snpe-dlc-quantize"]
    assert names[-2:] == ["adb pull", "snpe-diagview"]
    to_dlc = runner.commands[1]
    assert to_dlc[0] == str(sdk / "bin/x86_64-linux-clang/snpe-onnx-to-dlc")
    assert to_dlc[to_dlc.index("--input_network") + 1].endswith("hg-1_1x3x16x16.onnx")
    quant = runner.commands[2]
    assert quant[quant.index("--htp_socs") + 1] == "sm8350"
    run = next(c for c in runner.commands if c[0] == "adb" and "snpe-net-run" in c[-1])
    assert run[:3] == ["adb", "-s", "R58N123ABC"]
    assert (
        "--use_dsp" in run[-1] and "--perf_profile burst" in run[-1] and "--profiling_level basic" in run[-1]
    )
    assert r.source == "measured" and r.backend == "snpe" and r.n_samples == 3
    assert r.median_ms == pytest.approx(1.866) and r.toolchain["snpe"].startswith("2.20")


def test_raw_calibration_files(tmp_path):
    batches = [np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)[i : i + 1] for i in range(2)]
    SnpeProfiler.write_raw(batches, tmp_path, repeats=4)
    lines = (tmp_path / "calib_list.txt").read_text().split()
    assert len(lines) == 2
    raw = np.fromfile(lines[0], dtype=np.float32).reshape(1, 4, 4, 3)  # NHWC
    np.testing.assert_array_equal(raw, batches[0].transpose(0, 2, 3, 1))
    assert (tmp_path / "run_list.txt").read_text() == "input.raw\n" * 4

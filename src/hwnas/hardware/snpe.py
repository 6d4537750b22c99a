"""``hardware=snapdragon888 hardware.backend=snpe``: latency on a phone over adb with the SNPE SDK.

Flow: ``snpe-onnx-to-dlc`` -> ``snpe-dlc-quantize`` (int8, calibrated on raw files written from the
real calibration batches, HTP graph prepared for the SM8350 = Snapdragon 888) -> ``adb push`` ->
``snpe-net-run --use_dsp --perf_profile burst --profiling_level basic`` on the device -> ``adb pull``
of ``SNPEDiag_0.log`` -> ``snpe-diagview`` on the host -> parsed timings.

Every external command goes through an injectable ``runner`` (``subprocess`` by default), so the
command lines and the output parsing are tested without an SDK or a phone.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware._common import onnx_file, parse_input_size, split_calibration, summarise_ms, versions
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.utils.errors import CandidateFailed, ConfigError, ProfilerUnavailable

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], str]
HOST_BIN = "bin/x86_64-linux-clang"
DEVICE_DIR = "/data/local/tmp/hwnas"


def subprocess_runner(cmd: Sequence[str]) -> str:
    """Run ``cmd``; return stdout, or raise ``CandidateFailed`` with the tail of stderr."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CandidateFailed(f"{Path(cmd[0]).name} could not run: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise CandidateFailed(f"{Path(cmd[0]).name} exited with {proc.returncode}: {tail}")
    return proc.stdout


def parse_adb_devices(text: str) -> list[str]:
    """Serials in state ``device`` from ``adb devices`` output (unauthorized/offline are skipped)."""
    serials = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "device" and not line.startswith("List of"):
            serials.append(parts[0])
    return serials


_TOTAL = re.compile(r"^\s*Total Inference Time:\s*(\d+(?:\.\d+)?)\s*us", re.MULTILINE)
_LAYER = re.compile(r"^\s*(\d+):\s*(\d+(?:\.\d+)?)\s*us\s*:\s*(\w+)", re.MULTILINE)
_VERSION = re.compile(r"Software library version:\s*(\S+)")


def parse_diagview(text: str) -> tuple[list[float], dict[str, Any]]:
    """Per-inference latencies (ms) and details from ``snpe-diagview`` text output.

    ``snpe-diagview`` prints one ``Execute Statistics`` block per inference and an ``Average``
    block; each has ``Total Inference Time: <n> us`` and ``Layer Times`` (``<idx>: <n> us : <runtime>``).
    The per-inference totals are the samples (the average alone is used if nothing else is printed).
    """
    samples: list[float] = []
    average: float | None = None
    avg_layers: list[tuple[int, float, str]] = []
    blocks = re.split(r"^(?=.*Statistics.*:?\s*$)", text, flags=re.MULTILINE)
    for block in blocks:
        header = block.splitlines()[0] if block.strip() else ""
        totals = [float(v) for v in _TOTAL.findall(block)]
        if not totals:
            continue
        if "Average" in header:
            average = totals[0]
            avg_layers = [(int(i), float(t), rt) for i, t, rt in _LAYER.findall(block)]
        else:
            samples.extend(totals)
    if not samples and average is not None:
        samples = [average]
    if not samples:
        raise CandidateFailed("snpe-diagview output has no 'Total Inference Time' (was profiling enabled?)")
    layers = avg_layers or [(int(i), float(t), rt) for i, t, rt in _LAYER.findall(text)]
    runtimes = Counter(rt for _, _, rt in layers)
    off_dsp = [i for i, _, rt in layers if rt.upper() != "DSP"]
    version = _VERSION.search(text)
    return [s / 1000.0 for s in samples], {
        "snpe_version": version.group(1) if version else "unknown",
        "average_total_us": average,
        "runtimes": dict(runtimes),
        "n_layers": len(layers),
        "layers_off_dsp": off_dsp[:20],
        "all_on_dsp": not off_dsp,
    }


class SnpeProfiler(Profiler):
    """Int8 latency measured on an adb-attached Snapdragon phone with the SNPE SDK.

    Args:
        target: Target name for logs and cache keys.
        snpe_root: SDK folder (default ``$SNPE_ROOT``).
        serial: adb serial of the phone (default: the only attached device).
        htp_soc: SoC for offline HTP graph preparation (``sm8350`` = Snapdragon 888).
        dsp_arch: Hexagon library folder pushed for the DSP runtime (``v68`` = Hexagon 780).
        perf_profile: ``snpe-net-run --perf_profile`` (``burst`` for peak clocks).
        repeats: Timed inferences (the input list repeats one input this many times).
        input_size: ``(H, W)`` to profile at, or ``None`` for the dataset's size.
        batch_size: Batch size of the profiled input.
        calibration_batches: How many real batches callers should pass for quantisation.
        workdir: Where ONNX exports are cached.
        runner: Runs one command line, returns stdout (tests inject a fake).
    """

    backend = "snpe"
    precision = "int8"

    def __init__(
        self,
        *,
        target: str = "snapdragon888",
        snpe_root: str | Path | None = None,
        serial: str | None = None,
        htp_soc: str = "sm8350",
        dsp_arch: str = "v68",
        perf_profile: str = "burst",
        repeats: int = 50,
        input_size: Any = None,
        batch_size: int = 1,
        calibration_batches: int = 8,
        workdir: str | Path | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.target = target
        self._snpe_root = snpe_root
        self.serial = serial
        self.htp_soc = htp_soc
        self.dsp_arch = dsp_arch
        self.perf_profile = perf_profile
        if int(repeats) < 1:
            raise ConfigError(f"must be >= 1, got {repeats}", key="hardware.snpe.repeats")
        self.repeats = int(repeats)
        self.input_size = parse_input_size(input_size)
        self.batch_size = int(batch_size)
        self.calibration_batches = int(calibration_batches)
        self.workdir = workdir
        self.run = runner or subprocess_runner

    @property
    def snpe_root(self) -> Path | None:
        root = self._snpe_root or os.environ.get("SNPE_ROOT")
        return Path(root) if root else None

    def tool(self, name: str) -> str:
        assert self.snpe_root is not None
        return str(self.snpe_root / HOST_BIN / name)

    def adb(self, *args: str) -> list[str]:
        return ["adb", *(["-s", self.serial] if self.serial else []), *args]

    def attached_devices(self) -> list[str]:
        if shutil.which("adb") is None and self.run is subprocess_runner:
            return []
        try:
            return parse_adb_devices(self.run(["adb", "devices"]))
        except CandidateFailed:
            return []

    def check(self) -> None:
        root = self.snpe_root
        if root is None:
            raise ProfilerUnavailable(
                "SNPE_ROOT is not set",
                key="hardware.snpe.snpe_root",
                fix="install the Qualcomm SNPE SDK and `export SNPE_ROOT=/path/to/snpe` (or set hardware.snpe.snpe_root)",
            )
        if not (root / HOST_BIN / "snpe-onnx-to-dlc").is_file():
            raise ProfilerUnavailable(
                f"{root / HOST_BIN / 'snpe-onnx-to-dlc'} not found: SNPE_ROOT does not point at an SNPE SDK",
                key="hardware.snpe.snpe_root",
                fix="point SNPE_ROOT at the SDK folder that contains bin/x86_64-linux-clang/",
            )
        devices = self.attached_devices()
        if not devices:
            raise ProfilerUnavailable(
                "no Android device attached (`adb devices` lists none in state 'device')",
                key="hardware.snpe.serial",
                fix="connect the phone over USB with USB debugging enabled and accept the RSA prompt",
            )
        if self.serial and self.serial not in devices:
            raise ProfilerUnavailable(
                f"adb device {self.serial!r} is not attached", key="hardware.snpe.serial", choices=devices
            )

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "htp_soc": self.htp_soc, "perf_profile": self.perf_profile}

    def describe(self) -> str:
        return f"{self.target} via SNPE over adb ({self.serial or 'default device'}, DSP, int8)"

    # ----- command lines ------------------------------------------------------------------------
    def host_commands(self, onnx_path: Path, work: Path) -> list[list[str]]:
        """Conversion and quantisation on the host (calibration raws must already be in ``work``)."""
        return [
            [self.tool("snpe-onnx-to-dlc"), "--input_network", str(onnx_path), "--output_path", str(work / "model.dlc")],
            [
                self.tool("snpe-dlc-quantize"),
                "--input_dlc", str(work / "model.dlc"),
                "--input_list", str(work / "calib_list.txt"),
                "--output_dlc", str(work / "model_q.dlc"),
                "--enable_htp", "--htp_socs", self.htp_soc,
            ],
        ]  # fmt: skip

    def device_commands(self, work: Path) -> list[list[str]]:
        """Push, run with profiling on the DSP, pull the diagnostic log."""
        assert self.snpe_root is not None
        root = self.snpe_root
        env = f"export LD_LIBRARY_PATH={DEVICE_DIR}/lib ADSP_LIBRARY_PATH='{DEVICE_DIR}/dsp;/vendor/dsp'"
        net_run = (
            f"cd {DEVICE_DIR} && {env} && ./snpe-net-run --container model_q.dlc --input_list run_list.txt "
            f"--use_dsp --perf_profile {self.perf_profile} --profiling_level basic --output_dir output"
        )
        return [
            self.adb("shell", f"rm -rf {DEVICE_DIR} && mkdir -p {DEVICE_DIR}/lib {DEVICE_DIR}/dsp"),
            self.adb("push", str(root / "bin/aarch64-android/snpe-net-run"), f"{DEVICE_DIR}/"),
            self.adb("push", str(root / "lib/aarch64-android") + "/.", f"{DEVICE_DIR}/lib/"),
            self.adb(
                "push", str(root / f"lib/hexagon-{self.dsp_arch}/unsigned") + "/.", f"{DEVICE_DIR}/dsp/"
            ),
            self.adb("push", str(work / "model_q.dlc"), f"{DEVICE_DIR}/"),
            self.adb("push", str(work / "input.raw"), f"{DEVICE_DIR}/"),
            self.adb("push", str(work / "run_list.txt"), f"{DEVICE_DIR}/"),
            self.adb("shell", f"chmod +x {DEVICE_DIR}/snpe-net-run && {net_run}"),
            self.adb("pull", f"{DEVICE_DIR}/output/SNPEDiag_0.log", str(work / "SNPEDiag_0.log")),
            [self.tool("snpe-diagview"), "--input_log", str(work / "SNPEDiag_0.log")],
        ]

    @staticmethod
    def write_raw(batches: Sequence[np.ndarray], work: Path, *, repeats: int) -> None:
        """Calibration raws (NHWC float32, SNPE's layout for image inputs) and the two input lists."""
        names = []
        for i, batch in enumerate(batches):
            path = work / f"calib_{i:03d}.raw"
            np.ascontiguousarray(batch.transpose(0, 2, 3, 1), dtype=np.float32).tofile(path)
            names.append(str(path))
        (work / "calib_list.txt").write_text("\n".join(names) + "\n")
        x = np.random.default_rng(0).standard_normal(batches[0].shape).astype(np.float32)
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)).tofile(work / "input.raw")
        (work / "run_list.txt").write_text("input.raw\n" * repeats)

    # ----- the flow -----------------------------------------------------------------------------
    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        self.check()
        if not calibration:
            raise ConfigError(
                "SNPE int8 profiling needs calibration data (real input batches)",
                key="hardware.calibration_batches",
                fix="pass calibration=datamodule.calibration_batches(n)",
            )
        input_shape = tuple(int(d) for d in input_shape)
        t0 = time.perf_counter()
        with (
            onnx_file(
                model, input_shape, onnx_path=onnx_path, arch_key=arch_key, workdir=self.workdir
            ) as path,
            tempfile.TemporaryDirectory(prefix="hwnas-snpe-") as tmp,
        ):
            work = Path(tmp)
            self.write_raw(split_calibration(calibration, input_shape), work, repeats=self.repeats)
            for cmd in self.host_commands(Path(path), work):
                self.run(cmd)
            out = ""
            for cmd in self.device_commands(work):
                out = self.run(cmd)
        samples, extra = parse_diagview(out)
        med, p10, p90 = summarise_ms(samples)
        extra.update(input_shape=list(input_shape), profile_wall_s=round(time.perf_counter() - t0, 2))
        return LatencyReport(
            median_ms=med,
            p10_ms=p10,
            p90_ms=p90,
            n_samples=len(samples),
            backend=self.backend,
            device=f"adb {self.serial or 'device'} ({self.htp_soc}) Hexagon DSP via SNPE",
            precision="int8",
            source="measured",
            toolchain={"snpe": str(extra["snpe_version"]), **versions("onnx", "torch")},
            extra=extra,
        )

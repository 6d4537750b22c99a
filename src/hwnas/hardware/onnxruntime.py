"""``hardware=cpu`` / ``hardware=cpu_int8``: latency measured with onnxruntime on this host's CPU.

The host is not the deployment target, but it is always available, honest (``source="measured"``)
and, at int8 with static QDQ quantisation, ranks architectures much like an int8 accelerator does
(see ``bench/bench_profile.py`` for the rank agreement with the Snapdragon 888 estimate).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware._common import (
    check_choice,
    cpu_name,
    onnx_file,
    parse_input_size,
    split_calibration,
    summarise_ms,
    versions,
)
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.utils import timing_lock
from hwnas.utils.errors import CandidateFailed, ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class _BatchReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over a list of input arrays."""

    def __init__(self, input_name: str, batches: Sequence[np.ndarray]) -> None:
        self._input_name = input_name
        self._batches = list(batches)
        self._it: Iterator[np.ndarray] = iter(self._batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self._input_name: batch}

    def rewind(self) -> None:
        self._it = iter(self._batches)


def quantize_int8(
    fp32_path: str | Path,
    calibration: Sequence[np.ndarray],
    *,
    input_shape: tuple[int, ...],
    out_path: str | Path | None = None,
    per_channel: bool = True,
    calibration_method: str = "minmax",
    reduce_range: bool = False,
) -> Path:
    """Static QDQ int8 quantisation (uint8 activations, int8 weights, per-channel) of an ONNX file.

    U8S8 is the format onnxruntime's x86 kernels and most NPUs run fastest; activation ranges come
    from the real ``calibration`` batches. ``reduce_range`` stores weights in 7 bits, which keeps
    onnxruntime's U8S8 kernels exact on x86 CPUs without VNNI (see :func:`u8s8_saturates`). The result
    is cached next to the fp32 file (``<stem>.int8.onnx``) and reused while it is newer than the fp32
    file and was made with the same settings.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path = Path(fp32_path)
    out = Path(out_path) if out_path else fp32_path.with_name(f"{fp32_path.stem}.int8.onnx")
    settings = (
        f"{calibration_method} per_channel={per_channel} reduce_range={reduce_range} n={len(calibration)}"
    )
    stamp = out.with_name(f"{out.name}.settings")
    if (
        out.is_file()
        and out.stat().st_mtime >= fp32_path.stat().st_mtime
        and stamp.is_file()
        and stamp.read_text() == settings
    ):
        return out
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibration_method]
    batches = split_calibration(calibration, input_shape)
    pid = os.getpid()
    pre = out.with_name(f".{out.stem}.{pid}.pre.onnx")
    tmp = out.with_name(f".{out.stem}.{pid}.tmp.onnx")
    # onnxruntime.quantization logs INFO lines per tensor on the root logger: mute them.
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        try:
            # Shape inference + graph cleanup first: recommended before static quantisation.
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            source = pre
        except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation only
            log.debug("quant_pre_process failed (%s); quantising the raw export", exc)
            source = fp32_path
        quantize_static(
            str(source),
            str(tmp),
            _BatchReader("input", batches),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            reduce_range=reduce_range,
            calibrate_method=method,
        )
        os.replace(tmp, out)
        stamp.write_text(settings)
    except Exception as exc:
        raise CandidateFailed(f"int8 quantisation failed: {type(exc).__name__}: {exc}") from exc
    finally:
        logging.disable(previous)
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        for leftover in out.parent.glob(f".{out.stem}.{pid}*"):
            leftover.unlink(missing_ok=True)
    return out


def u8s8_saturates(cpuinfo: str | None = None) -> bool:
    """True on an x86 CPU without VNNI, where onnxruntime's U8S8 kernels (``vpmaddubsw``) sum pairs of
    u8 x s8 products into saturating int16: full 8-bit weights then lose accuracy that the int8 model
    does not lose on an NPU or a VNNI CPU. ``reduce_range`` (7-bit weights) avoids it. False elsewhere
    (ARM, VNNI, or when ``/proc/cpuinfo`` cannot be read)."""
    import platform

    if cpuinfo is None:
        if platform.machine().lower() not in {"x86_64", "amd64", "i686", "x86"}:
            return False
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[-1].split())
    return bool(flags) and "avx2" in flags and not ({"avx512_vnni", "avx_vnni", "amx_int8"} & flags)


def _timed_runs(sess: Any, feed: dict[str, np.ndarray], *, warmup: int, repeats: int) -> list[float]:
    """``warmup`` untimed runs of ``sess`` on ``feed``, then ``repeats`` timed ones: milliseconds each."""
    for _ in range(warmup):
        sess.run(None, feed)
    samples: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        sess.run(None, feed)
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def _spread(samples: list[float]) -> float:
    """``(p90 − p10) / median`` of a timing loop (0 for a zero median): above ``max_spread`` it is noisy."""
    med, p10, p90 = summarise_ms(samples)
    return (p90 - p10) / med if med > 0 else 0.0


class OnnxRuntimeProfiler(Profiler):
    """Median latency of the ONNX export under onnxruntime's CPU execution provider.

    Args:
        target: Target name reported in logs and cache keys (``cpu`` / ``cpu_int8``).
        precision: ``fp32``, or ``int8`` (static QDQ quantisation; needs ``calibration`` batches).
        warmup: Untimed runs first (allocations, caches, thread start-up).
        repeats: Timed runs; the report gives their median, p10 and p90.
        threads: Intra-op threads (1 = the most repeatable number on a shared machine).
        input_size: ``(H, W)`` to profile at, or ``None`` for the dataset's size.
        batch_size: Batch size of the profiled input.
        calibration_batches: How many real batches callers should pass for int8 calibration.
        calibration_method: ``minmax`` | ``entropy`` | ``percentile``.
        per_channel: Per-channel weight quantisation (int8 only).
        workdir: Where exports are cached (default ``outputs/cache/onnx``).
        opset: ONNX opset of the export.
        loops: Timing loops per figure, taken apart in time (the lock is released and ``loop_gap_s``
            waited between them); the figures are those of the quiet loop with the lowest median. On
            this VM the noise comes in windows of seconds: one loop's median agreed with another
            loop's of the same model within 5 % in 36 % of pairs, the quietest of 3 in 79 % (8
            models, 9 rounds; ``make bench-workers`` prints the agreement of a run).
        loop_gap_s: Seconds between the loops of one figure (others may train meanwhile).
        agree: The figure is settled when two quiet loops' medians (the two lowest) agree within this
            fraction; until then up to ``retries`` more loops are taken.
        max_spread: A loop whose ``(p90 − p10) / median`` exceeds this is noisy (something else ran)
            and never the figure while a quiet loop exists; when no loop is quiet after ``retries``
            extra loops, the least spread one is, marked ``extra["noisy"]`` (the cache refuses it).
        retries: Extra timing loops for a noisy figure (the quietest is reported).

    Every timing loop holds the machine-wide timing lock (:mod:`hwnas.utils.timing_lock`): no
    training and no other timing of this project runs on the machine meanwhile.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        *,
        target: str = "cpu",
        precision: str = "fp32",
        warmup: int = 5,
        repeats: int = 30,
        threads: int = 1,
        input_size: Any = None,
        batch_size: int = 1,
        calibration_batches: int = 8,
        calibration_method: str = "minmax",
        per_channel: bool = True,
        workdir: str | Path | None = None,
        opset: int = 17,
        max_spread: float = 0.3,
        retries: int = 2,
        loops: int = 3,
        loop_gap_s: float = 0.2,
        agree: float = 0.03,
    ) -> None:
        self.target = target
        self.precision = check_choice(precision, PRECISIONS, key="hardware.precision")
        self.calibration_method = check_choice(
            calibration_method, CALIBRATION_METHODS, key="hardware.calibration_method"
        )
        for key, value, low in (("warmup", warmup, 0), ("repeats", repeats, 1), ("threads", threads, 1),
                                ("loops", loops, 1), ("loop_gap_s", loop_gap_s, 0), ("agree", agree, 0)):  # fmt: skip
            if float(value) < low:  # float: a negative loop_gap_s or agree must not truncate to 0
                raise ConfigError(f"must be >= {low}, got {value}", key=f"hardware.{key}")
        self.warmup = int(warmup)
        self.repeats = int(repeats)
        self.threads = int(threads)
        self.input_size = parse_input_size(input_size)
        self.batch_size = int(batch_size)
        self.calibration_batches = int(calibration_batches) if self.precision == "int8" else 0
        self.per_channel = bool(per_channel)
        self.workdir = workdir
        self.opset = int(opset)
        if not float(max_spread) > 0 or int(retries) < 0:
            raise ConfigError(
                f"max_spread must be > 0 and retries >= 0, got {max_spread}, {retries}",
                key="hardware.max_spread",
                fix="e.g. hardware.max_spread=0.3 hardware.retries=2",
            )
        self.max_spread, self.retries = float(max_spread), int(retries)
        self.loops, self.loop_gap_s, self.agree = int(loops), float(loop_gap_s), float(agree)
        self._open: tuple[str, Any] | None = None  # the session of the model being timed, across its loops

    def cache_identity(self) -> dict[str, Any]:
        return {
            **super().cache_identity(),
            "threads": self.threads,
            "device": cpu_name(),
            "calibration_method": self.calibration_method if self.precision == "int8" else None,
            "statistic": f"median of the quietest of >= {self.loops} loop(s), two agreeing within {self.agree}",
        }

    def _session(self, path: Path) -> Any:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # errors only
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def time_onnx(self, path: str | Path, input_shape: tuple[int, ...]) -> list[float]:
        """Warm up, then time ``repeats`` runs of ``path``; return the samples in milliseconds."""
        if self._open is None or self._open[0] != str(path):
            self._open = (str(path), self._session(Path(path)))  # one session for a figure's loops
        sess = self._open[1]
        name = sess.get_inputs()[0].name
        x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
        return _timed_runs(sess, {name: x}, warmup=self.warmup, repeats=self.repeats)

    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        if self.precision == "int8" and not calibration:
            raise ConfigError(
                "int8 profiling needs calibration data (real input batches) to set activation ranges",
                key="hardware.calibration_batches",
                fix="pass calibration=datamodule.calibration_batches(n), or use hardware=cpu (fp32)",
            )
        input_shape = tuple(int(d) for d in input_shape)
        t_start = time.perf_counter()
        with onnx_file(
            model,
            input_shape,
            onnx_path=onnx_path,
            arch_key=arch_key,
            workdir=self.workdir,
            opset=self.opset,
        ) as fp32:
            path = fp32
            if self.precision == "int8":
                with timing_lock.busy():  # calibration inference: CPU work, never beside a timing loop
                    path = quantize_int8(
                        fp32,
                        calibration,
                        input_shape=input_shape,
                        per_channel=self.per_channel,
                        calibration_method=self.calibration_method,
                    )
            try:
                samples, attempts, waited = self.quiet_samples(path, input_shape)
            except Exception as exc:
                raise CandidateFailed(f"onnxruntime failed: {type(exc).__name__}: {exc}") from exc
        med, p10, p90 = summarise_ms(samples)
        noisy = _spread(samples) > self.max_spread
        return LatencyReport(
            median_ms=med,
            p10_ms=p10,
            p90_ms=p90,
            n_samples=len(samples),
            backend=self.backend,
            device=self._device(),
            precision=self.precision,
            source="measured",
            toolchain=versions("onnxruntime", "onnx", "torch"),
            extra={
                "input_shape": list(input_shape),
                "warmup": self.warmup,
                "threads": self.threads,
                "profile_wall_s": round(time.perf_counter() - t_start, 4),
                "mean_ms": float(np.mean(samples)),
                "std_ms": float(np.std(samples)),
                "timing_attempts": attempts,
                "lock_wait_s": round(waited, 3),
                **({"noisy": True} if noisy else {}),
            },
        )

    def profile_many(
        self,
        models: list[tuple[Any, str | Path | None, str | None]],
        input_shape: tuple[int, ...],
        *,
        calibration: Any | None = None,
        rounds: int = 15,
    ) -> list[LatencyReport]:
        """Every model timed in one interleaved pass: ``rounds`` rounds of A B C ..., each round under one
        hold of the timing lock, each model's figure of a round the median of ``repeats // 3`` (at least 5)
        runs after 2 warm-up runs, in one process with the same settings. A model's latency is the median
        of its round figures; ``extra["rounds_ms"]`` keeps them, so ratios are taken round by round (the
        machine's speed drifts 15-31 % over minutes here, but not within one round)."""
        import contextlib

        input_shape = tuple(int(d) for d in input_shape)
        per_round = max(5, self.repeats // 3)
        with contextlib.ExitStack() as stack:
            paths = []
            for model, onnx_path, key in models:
                fp32 = stack.enter_context(onnx_file(model, input_shape, onnx_path=onnx_path, arch_key=key,
                                                     workdir=self.workdir, opset=self.opset))  # fmt: skip
                if self.precision == "int8":
                    with timing_lock.busy():
                        fp32 = quantize_int8(fp32, calibration, input_shape=input_shape,
                                             per_channel=self.per_channel, calibration_method=self.calibration_method)  # fmt: skip
                paths.append(fp32)
            sessions = [self._session(Path(p)) for p in paths]
            x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
            feeds = [{sess.get_inputs()[0].name: x} for sess in sessions]
            rounds_ms: list[list[float]] = [[] for _ in sessions]
            samples: list[list[float]] = [[] for _ in sessions]
            for _ in range(max(1, int(rounds))):
                with timing_lock.timing():
                    for i, (sess, feed) in enumerate(zip(sessions, feeds, strict=True)):
                        got = _timed_runs(sess, feed, warmup=2, repeats=per_round)
                        rounds_ms[i].append(float(np.median(got)))
                        samples[i] += got
        reports = []
        for i in range(len(models)):
            _, p10, p90 = summarise_ms(samples[i])
            reports.append(LatencyReport(
                median_ms=float(np.median(rounds_ms[i])), p10_ms=p10, p90_ms=p90, n_samples=len(samples[i]),
                backend=self.backend, device=self._device(),
                precision=self.precision, source="measured", toolchain=versions("onnxruntime", "onnx", "torch"),
                extra={"input_shape": list(input_shape), "interleaved": len(models), "rounds_ms": rounds_ms[i],
                       "per_round": per_round, "threads": self.threads},
            ))  # fmt: skip
        return reports

    def quiet_samples(self, path: str | Path, input_shape: tuple[int, ...]) -> tuple[list[float], int, float]:
        """``loops`` timing loops apart in time, each under the machine-wide lock, then up to ``retries``
        more until two *quiet* loops (p10–p90 spread within ``max_spread``) have medians within ``agree``
        of each other. Returns the samples of the quiet loop with the lowest median (of the least spread
        loop when none is quiet: then the figure is flagged noisy), the loops run and the seconds waited."""
        taken: list[tuple[float, float, list[float]]] = []  # (median, spread, samples)
        waited = 0.0
        try:
            for attempt in range(1, self.loops + self.retries + 1):
                if attempt > 1 and self.loop_gap_s:
                    time.sleep(self.loop_gap_s)  # lock released: a window of noise passes, others train
                with timing_lock.timing() as wait:
                    samples = self.time_onnx(path, input_shape)
                waited += wait
                taken.append((summarise_ms(samples)[0], _spread(samples), samples))
                quiet = sorted(t[0] for t in taken if t[1] <= self.max_spread)  # their medians
                enough = len(quiet) >= min(2, self.loops)
                if (
                    attempt >= self.loops
                    and enough
                    and (len(quiet) < 2 or quiet[1] - quiet[0] <= self.agree * quiet[0])
                ):
                    break
        finally:
            self._open = None
        quiet_loops = [t for t in taken if t[1] <= self.max_spread]
        best = min(quiet_loops, key=lambda t: t[0]) if quiet_loops else min(taken, key=lambda t: t[1])
        return best[2], len(taken), waited

    def _device(self) -> str:
        return f"{cpu_name()} ({self.threads} thread{'s' if self.threads > 1 else ''})"

    def describe(self) -> str:
        return f"{self.target} via onnxruntime ({self.precision}, {self.threads} thread(s), {cpu_name()})"

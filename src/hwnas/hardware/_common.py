"""Small helpers shared by the profilers: statistics, versions, host name, ONNX file handling."""

from __future__ import annotations

import contextlib
import hashlib
import platform
import tempfile
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware.export import export_onnx
from hwnas.search_space.base import file_stem
from hwnas.utils.errors import ConfigError

DEFAULT_ONNX_DIR = Path("outputs/cache/onnx")


def parse_input_size(value: Any, *, key: str = "hardware.input_size") -> tuple[int, int] | None:
    """Accept ``None``, ``256`` or ``[256, 192]`` and return ``None`` or ``(H, W)``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (int(value), int(value))
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"expected null, an int or [H, W], got {value!r}",
            key=key,
            fix="set it to null (the dataset's image size), 256 or [256, 256]",
        ) from exc
    return (h, w)


def check_choice(value: str, choices: Sequence[str], *, key: str) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise a ``ConfigError`` listing them."""
    if value not in choices:
        raise ConfigError(f"unknown value {value!r}", key=key, choices=choices)
    return value


def summarise_ms(samples_ms: Sequence[float]) -> tuple[float, float, float]:
    """``(median, p10, p90)`` of latency samples in milliseconds."""
    arr = np.asarray(samples_ms, dtype=np.float64)
    med, p10, p90 = np.percentile(arr, [50, 10, 90])
    return float(med), float(p10), float(p90)


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (``"missing"`` when absent), for ``LatencyReport.toolchain``."""
    out: dict[str, str] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def cpu_name() -> str:
    """The host CPU's model name (``/proc/cpuinfo``), falling back to ``platform.processor()``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def shape_tag(input_shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in input_shape)


@contextlib.contextmanager
def onnx_file(
    model: Any,
    input_shape: tuple[int, ...],
    *,
    onnx_path: str | Path | None,
    arch_key: str | None,
    workdir: str | Path | None,
    opset: int = 17,
) -> Iterator[Path]:
    """Yield an ONNX file of ``model``: the given one, a cached one, or a fresh temporary export.

    With an ``arch_key`` the export is kept as ``<workdir>/<arch_key>_<shape>.onnx`` (an architecture
    is a value, so its export can be reused across trials and profilers); without one it lives in a
    temporary folder removed afterwards.
    """
    if onnx_path is not None:
        yield Path(onnx_path)
        return
    if arch_key:
        root = Path(workdir) if workdir is not None else DEFAULT_ONNX_DIR
        path = root / f"{file_stem(arch_key)}_{shape_tag(input_shape)}.onnx"
        if not path.is_file():
            export_onnx(model, input_shape, path, opset=opset)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="hwnas-onnx-") as tmp:
        yield export_onnx(model, input_shape, Path(tmp) / "model.onnx", opset=opset)


def file_digest(path: str | Path) -> str:
    """Short sha256 of a file (names derived artefacts such as int8 models and DLCs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def split_calibration(calibration: Sequence[np.ndarray], input_shape: tuple[int, ...]) -> list[np.ndarray]:
    """Cut calibration batches into arrays of exactly ``input_shape`` (static-shape models).

    Batches are split along the batch axis; if their spatial size differs from the profiled one
    (``hardware.input_size`` set), they are resized bilinearly, which keeps activation ranges.
    """
    import torch
    import torch.nn.functional as F

    batch = int(input_shape[0])
    out: list[np.ndarray] = []
    for arr in calibration:
        a = np.asarray(arr, dtype=np.float32)
        if a.ndim == len(input_shape) - 1:
            a = a[None]
        if a.ndim != len(input_shape) or a.shape[1] != input_shape[1]:
            raise ConfigError(
                f"calibration batch of shape {a.shape} does not fit the input shape {tuple(input_shape)}",
                key="hardware.calibration_batches",
                fix="pass batches of images from the same dataset (N, C, H, W)",
            )
        if tuple(a.shape[2:]) != tuple(input_shape[2:]):
            t = F.interpolate(torch.from_numpy(a), size=tuple(input_shape[2:]), mode="bilinear")
            a = t.numpy()
        for i in range(0, a.shape[0] - batch + 1, batch):
            out.append(np.ascontiguousarray(a[i : i + batch]))
    if not out:
        raise ConfigError(
            f"calibration batches hold fewer than {batch} images", key="hardware.calibration_batches"
        )
    return out

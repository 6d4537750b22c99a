"""A disk cache of latency reports, shared by every worker of a search (and across searches).

An architecture is a value, so its latency on a given target/backend/precision/input shape/toolchain
is too: measuring it twice wastes device time (minutes per candidate on AI Hub). One JSON file per
entry, written atomically (temp file + ``os.replace``), so several processes can share the folder
without locks: the worst case is two processes measuring the same candidate and one write winning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwnas.hardware._common import versions
from hwnas.hardware.base import LatencyReport, Profiler

log = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("outputs/cache/latency")


def cache_key(
    *,
    arch_key: str,
    identity: dict[str, Any],
    input_shape: tuple[int, ...],
    toolchain: dict[str, str],
) -> str:
    """sha256 of everything that changes the number: architecture, profiler identity, shape, versions."""
    payload = {
        "arch": arch_key,
        "identity": identity,
        "input_shape": [int(d) for d in input_shape],
        "toolchain": toolchain,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class LatencyCache:
    """One JSON file per report under ``root/<2 hex>/<sha256>.json``.

    Args:
        root: Cache folder (created on first write), default ``outputs/cache/latency``.
    """

    def __init__(self, root: str | Path = DEFAULT_CACHE_DIR) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> LatencyReport | None:
        """The cached report, or ``None`` (a missing or corrupt entry is a miss)."""
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
            return LatencyReport.from_dict(data["report"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring corrupt latency cache entry %s (%s)", path, exc)
            return None

    def put(self, key: str, report: LatencyReport, *, meta: dict[str, Any] | None = None) -> Path:
        """Write ``report`` atomically; concurrent writers of the same key are safe (last one wins)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"report": report.to_dict(), "meta": meta or {}}, indent=1, sort_keys=True, default=str
        )
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0


class CachedProfiler(Profiler):
    """Wraps a profiler with a ``LatencyCache``; needs ``arch_key`` to cache (else profiles every time).

    A hit returns the stored report with ``source="cached"`` and the original source in
    ``extra["original_source"]``.

    Args:
        profiler: The profiler doing the real work on a miss.
        cache: The cache (or a folder for one).
        toolchain_packages: Packages whose versions enter the key (a new onnxruntime re-measures).
    """

    def __init__(
        self,
        profiler: Profiler,
        cache: LatencyCache | str | Path = DEFAULT_CACHE_DIR,
        *,
        toolchain_packages: tuple[str, ...] = ("onnxruntime", "onnx", "torch", "qai-hub"),
    ) -> None:
        self.inner = profiler
        self.cache = cache if isinstance(cache, LatencyCache) else LatencyCache(cache)
        self.toolchain_packages = tuple(toolchain_packages)
        self.target = profiler.target
        self.backend = profiler.backend
        self.precision = profiler.precision
        self.input_size = profiler.input_size
        self.batch_size = profiler.batch_size
        self.calibration_batches = profiler.calibration_batches
        self.hits = 0
        self.misses = 0
        self.refused = 0  # noisy figures not stored

    def check(self) -> None:
        self.inner.check()

    def cache_identity(self) -> dict[str, Any]:
        return self.inner.cache_identity()

    def describe(self) -> str:
        return f"{self.inner.describe()} [cached in {self.cache.root}]"

    def key_for(self, arch_key: str, input_shape: tuple[int, ...]) -> str:
        return cache_key(
            arch_key=arch_key,
            identity=self.inner.cache_identity(),
            input_shape=input_shape,
            toolchain=versions(*self.toolchain_packages),
        )

    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        kwargs = {"onnx_path": onnx_path, "calibration": calibration, "arch_key": arch_key}
        if arch_key is None:
            return self.inner.profile(model, input_shape, **kwargs)
        key = self.key_for(arch_key, tuple(input_shape))
        hit = self.cache.get(key)
        if hit is not None:
            self.hits += 1
            original = hit.extra.get("original_source", hit.source)
            return replace(hit, source="cached", extra={**hit.extra, "original_source": original})
        self.misses += 1
        report = self.inner.profile(model, input_shape, **kwargs)
        if report.extra.get("noisy"):  # never keep a figure measured while something else ran
            self.refused += 1
            log.warning(
                "latency of %s is noisy (p10-p90 %.3f-%.3f ms around %.3f ms after %s timing loops): "
                "not cached; it will be measured again next time",
                arch_key, report.p10_ms, report.p90_ms, report.median_ms, report.extra.get("timing_attempts"),
            )  # fmt: skip
            return report
        self.cache.put(key, report, meta={"arch": arch_key, "input_shape": list(input_shape)})
        return report

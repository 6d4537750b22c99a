"""AI Hub profiles kept on disk: what ``QaiHubProfiler`` writes (``hardware.qai_hub.profile_dir``) and
``hwnas.hardware.layer_fit`` / ``bench/bench_device.py --profiles`` read.

A file is JSON: ``name``, ``device``, ``chipset``, ``onnx`` (the graph that was compiled, when kept),
``input_shape``, ``toolchain`` (runtime, QAIRT) and ``profile``, the ``download_profile()`` dict with its
per-layer ``execution_detail``. A bare ``download_profile()`` dict is read too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hwnas.search_space.base import file_stem
from hwnas.utils.errors import DataError


def write_profile(folder: str | Path, name: str, record: dict[str, Any]) -> Path:
    """``<folder>/<name>.json`` holding ``record`` (which carries the raw ``profile``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{file_stem(name)}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def read_profile(path: str | Path) -> dict[str, Any]:
    """A profile file's record (``profile`` holds the ``download_profile()`` dict).

    Raises:
        DataError: unreadable, or no per-layer detail and summary in it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read AI Hub profile {path}: {exc}", key="profiles") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path} is not an AI Hub profile (a JSON object)", key="profiles")
    if "profile" not in data:  # a bare download_profile() dict
        data = {"profile": data}
    prof = data["profile"]
    if not (isinstance(prof, dict) and prof.get("execution_detail") and prof.get("execution_summary")):
        raise DataError(
            f"{path} has no execution_detail/execution_summary (not an AI Hub profile)",
            key="profiles",
            fix="keep profiles with hardware.qai_hub.profile_dir=<folder>, or save download_profile()",
        )
    return data


def read_profiles(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every profile file in ``folder`` (oldest first), with its path; other JSON files are skipped
    with a warning, so a folder may hold a benchmark's outputs beside the profiles."""
    import logging

    out = []
    for path in sorted(Path(folder).glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            out.append((path, read_profile(path)))
        except DataError as exc:
            logging.getLogger(__name__).warning("skipped %s: %s", path.name, exc.message)
    return out

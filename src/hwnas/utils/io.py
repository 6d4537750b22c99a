"""Crash-safe file writes: a reader (or a re-run after kill -9) sees the old file or the new one, never half."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_state_dict(module: Any, path: str | Path) -> Path:
    """``write_atomic`` of a torch module's ``state_dict()`` (a kill never leaves half a weights file)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return write_atomic(path, buf.getvalue())


def write_json(path: str | Path, data: Any) -> Path:
    """``write_atomic`` of ``data`` as indented JSON (NaN written as ``NaN``, which Python reads back)."""
    return write_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``, or ``None`` when it is missing or unreadable (treated as not done)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None

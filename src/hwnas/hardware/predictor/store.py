"""The measured set on disk: one JSON file per measured architecture, shared by workers and runs.

A measurement on a target is a fact about an architecture, so it outlives the search that paid for it:
the next search on the same target starts with every measurement made before (in the same folder, which
is keyed by the target, its settings, the input shape and the feature extractor). Each file is written
atomically (temp file + ``os.replace``), so workers of one search can share the folder without locks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from hwnas.search_space.base import file_stem

log = logging.getLogger(__name__)


def store_key(identity: dict[str, Any]) -> str:
    """Short sha256 of what makes measurements comparable (target, settings, shape, features)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class MeasurementStore:
    """Records ``{arch_key, latency_ms, features, purpose, run, report}`` under one folder.

    Args:
        root: The folder for one identity (``<store_dir>/<store_key>``); created on first write.
        identity: Written once as ``identity.json`` so a person can tell folders apart.
    """

    def __init__(self, root: str | Path, identity: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        self.identity = identity or {}
        self._records: dict[str, dict[str, Any]] = {}

    def _path(self, arch_key: str) -> Path:
        return self.root / f"{file_stem(arch_key)}.json"

    def refresh(self) -> dict[str, dict[str, Any]]:
        """All records, re-reading files written since the last call (e.g. by another worker)."""
        if self.root.is_dir():
            for path in self.root.glob("*.json"):
                if path.name == "identity.json" or path.stem in self._records:
                    continue
                try:
                    record = json.loads(path.read_text())
                    self._records[path.stem] = record
                except (OSError, ValueError) as exc:
                    log.warning("ignoring unreadable measurement %s (%s)", path, exc)
        return self._records

    def records(self) -> list[dict[str, Any]]:
        return list(self.refresh().values())

    def get(self, arch_key: str) -> dict[str, Any] | None:
        return self.refresh().get(file_stem(arch_key))

    def put(self, record: dict[str, Any]) -> Path:
        """Write one record atomically (a second write of the same architecture replaces the first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        ident = self.root / "identity.json"
        if self.identity and not ident.is_file():
            ident.write_text(json.dumps(self.identity, indent=1, sort_keys=True, default=str) + "\n")
        path = self._path(str(record["arch_key"]))
        fd, tmp = tempfile.mkstemp(prefix=".m.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(record, indent=1, sort_keys=True, default=str))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._records[path.stem] = record
        return path

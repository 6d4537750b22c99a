"""Graphs of ``qai-hub-models`` models that torchvision does not build, defined in this project."""

from __future__ import annotations

from typing import Any

OWN: tuple[Any, ...] = ()


def build_own(entry: Any) -> Any:
    raise KeyError(entry.model)

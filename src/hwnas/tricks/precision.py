"""Mixed precision where the device supports it (a trick with one switch: ``tricks.precision``)."""

from __future__ import annotations

import torch

from hwnas.utils.errors import ConfigError

VALID = ("auto", "32-true", "16-mixed", "bf16-mixed")


def resolve_precision(value: str) -> str:
    """``auto`` → ``bf16-mixed`` on a CUDA GPU that supports it, ``16-mixed`` on other GPUs, else fp32."""
    value = str(value)
    if value not in VALID:
        raise ConfigError(f"unknown precision {value!r}", key="tricks.precision", choices=VALID)
    if value != "auto":
        return value
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"

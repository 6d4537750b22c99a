"""Helpers for the thin ``@hydra.main`` entry points."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from hwnas.utils.checks import check_numbers
from hwnas.utils.errors import HwnasError

log = logging.getLogger("hwnas")


def quiet_third_party() -> None:
    """Silence chatty libraries so a search log stays one clear line per trial."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "torch.onnx", "onnxscript"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import warnings

    for pattern in (
        ".*does not have many workers.*",
        ".*The number of training batches.*",
        ".*TracerWarning.*",
        ".*Converting a tensor to a Python.*",
        ".*is an experimental.*",
        ".*GPU available but not used.*",
        ".*LeafSpec.*",
        ".*Trying to infer the `batch_size`.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def guarded(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``fn(cfg)``; a user error becomes one clear message on stderr and exit code 2.

    Unexpected exceptions keep their traceback (they are bugs, not bad input).
    """
    quiet_third_party()
    try:
        check_numbers(cfg)  # every entry point: one table of numeric rules (hwnas.utils.checks)
        return fn(cfg)
    except HwnasError as exc:
        _log_to_files(f"error: {exc}")  # the run's log file keeps it; the terminal shows it once, below
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _log_to_files(message: str) -> None:
    """``message`` as an ERROR record in the log files only (Hydra's ``<run dir>/<task>.log``): the console
    handlers would print it a second time beside the one line on stderr."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers + log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)

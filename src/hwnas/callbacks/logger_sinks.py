"""What a search and its final stage write into each configured logger at the end, one adapter per backend.

The per-trial scalars go through Lightning's ``log_metrics`` for every logger (see
:mod:`hwnas.callbacks.search_logger`); the end-of-run outputs (tables, the front, the final stage's
charts) need each backend's own vocabulary, so each has a small :class:`RunSink`. Which sink a logger gets
is config, like the logger itself: the logger's node in ``conf/logger/<name>.yaml`` names it as a
``_partial_`` ``run_sink:`` node, which this module's :class:`WandbLogger` and :class:`TensorBoardLogger`
(Lightning's, unchanged otherwise) keep for :func:`sink_for` and never pass on to Lightning:

* **W&B** (``logger=wandb``, :class:`WandbSink`): tables as ``wandb.Table``, fronts as ``wandb.plot.scatter``
  custom charts (Table-backed, so points can be hovered and filtered in the UI), PNG charts as
  ``wandb.Image``, and the scalars into the run summary.
* **TensorBoard** (``logger=tensorboard``, :class:`TensorBoardSink`): tables as Markdown text, PNG charts as
  images, and a front as a scalar curve per metric whose step is the x value in thousandths (latency in µs),
  so TensorBoard's scalar view draws accuracy against latency.
* **CSV** (``logger=csv``, Lightning's own ``CSVLogger``, no ``run_sink``): nothing more; trials.csv,
  pareto.csv and final/final.csv are the tables.
"""

from __future__ import annotations

import logging
import math
import netrc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import pandas as pd
from pytorch_lightning import loggers as pl_loggers

from hwnas.utils.config import import_target
from hwnas.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: W&B modes ``WANDB_MODE`` / ``logger.wandb.mode`` may take (``dryrun`` and ``run`` are W&B's aliases).
WANDB_MODES = ("offline", "online", "disabled", "dryrun", "run", "shared")
WANDB_KEY_FIX = (
    "export WANDB_API_KEY=<key> (or run `wandb login` once), or stay offline (WANDB_MODE=offline, the "
    "default) and upload later with `wandb sync <run dir>/wandb/offline-run-*`"
)


class RunSink(Protocol):
    """End-of-run outputs for one logger backend. Keys name the output (``trials``, ``final/models``)."""

    def table(self, key: str, df: pd.DataFrame) -> None: ...

    def image(self, key: str, path: Path) -> None: ...

    def scatter(self, key: str, df: pd.DataFrame, *, x: str, y: str, title: str) -> None: ...

    def curve(self, key: str, steps: list[int], values: list[float], *, step_name: str) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def close(self, status: str) -> None: ...


def sink_for(logger: Any) -> RunSink | None:
    """The sink ``logger``'s config chose (its ``run_sink:`` node), or ``None`` for a logger without one
    (CSV, or any plain Lightning logger): it needs no end-of-run outputs."""
    factory = getattr(logger, "sink_factory", None)
    return factory(logger) if factory is not None else None


class _WithRunSink:
    """Keeps the ``run_sink`` a logger's config names (a ``_partial_`` sink node, built with the logger when
    the run ends) out of Lightning's arguments: Lightning hands unknown keywords on to ``wandb.init`` or
    TensorBoard's ``SummaryWriter``, which refuse them."""

    def __init__(self, *args: Any, run_sink: Callable[[Any], RunSink] | None = None, **kwargs: Any) -> None:
        self.sink_factory = run_sink
        super().__init__(*args, **kwargs)


class WandbLogger(_WithRunSink, pl_loggers.WandbLogger):
    """Lightning's ``WandbLogger`` with its end-of-run sink (``run_sink``: :class:`WandbSink` in
    ``conf/logger/wandb.yaml``); every other argument is Lightning's."""


class TensorBoardLogger(_WithRunSink, pl_loggers.TensorBoardLogger):
    """Lightning's ``TensorBoardLogger`` with its end-of-run sink (``run_sink``: :class:`TensorBoardSink` in
    ``conf/logger/tensorboard.yaml``); every other argument is Lightning's."""


def check_wandb_mode(mode: Any, *, key: str = "logger.wandb.mode") -> None:
    """Refuse a bad ``mode`` and an online run without credentials now, not after the search.

    Raises:
        ConfigError: naming ``key`` (its value comes from ``WANDB_MODE``), the choices and the fix.
    """
    if str(mode) not in WANDB_MODES:
        raise ConfigError(
            f"unknown W&B mode {mode!r} (from WANDB_MODE or the config)",
            key=key,
            choices=list(WANDB_MODES),
            fix="export WANDB_MODE=offline (the default), online or disabled",
        )
    if str(mode) in ("online", "run", "shared") and not _has_wandb_key():
        raise ConfigError(
            f"W&B mode {mode!r} logs to a server and needs an API key, but none is set",
            key=key,
            fix=WANDB_KEY_FIX,
        )


def _has_wandb_key() -> bool:
    """An API key in the environment or in ``~/.netrc`` for the W&B host (where ``wandb login`` puts it)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Numbers stay numbers (plottable in the UI); everything else, booleans included, becomes text."""
    out = df.drop(columns=["arch"], errors="ignore").copy()
    for col in out.columns:
        if out[col].dtype == bool or not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(str)
    return out


def _points(df: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The finite ``(x, y)`` rows of ``df``, sorted by ``x``, with the architecture key when there is one."""
    cols = [c for c in ("arch_key", x, y) if c in df.columns]
    pts = df[cols].copy()
    pts[x] = pd.to_numeric(pts[x], errors="coerce")
    pts[y] = pd.to_numeric(pts[y], errors="coerce")
    return pts[np.isfinite(pts[x]) & np.isfinite(pts[y])].sort_values(x, kind="stable")


class WandbSink:
    """End-of-run outputs into a W&B run (offline or online alike)."""

    def __init__(self, logger: Any) -> None:
        self.run = logger.experiment

    def table(self, key: str, df: pd.DataFrame) -> None:
        import wandb

        self.run.log({key: wandb.Table(dataframe=_text_frame(df))})

    def image(self, key: str, path: Path) -> None:
        import wandb

        self.run.log({key: wandb.Image(str(path))})

    def scatter(self, key: str, df: pd.DataFrame, *, x: str, y: str, title: str) -> None:
        import wandb

        pts = _points(df, x, y)
        table = wandb.Table(dataframe=pts.astype({"arch_key": str}) if "arch_key" in pts else pts)
        self.run.log({key: wandb.plot.scatter(table, x, y, title=title)})

    def curve(self, key: str, steps: list[int], values: list[float], *, step_name: str) -> None:
        import wandb

        table = wandb.Table(
            data=[[s, v] for s, v in zip(steps, values, strict=True)], columns=[step_name, key]
        )
        self.run.log({key: wandb.plot.line(table, step_name, key, title=key)})

    def summary(self, values: dict[str, Any]) -> None:
        self.run.summary.update(values)

    def close(self, status: str) -> None:
        """Finish the run, so the next search in this process (a local multirun) starts its own."""
        self.run.finish(exit_code=0 if status == "success" else 1)


class TensorBoardSink:
    """End-of-run outputs into a TensorBoard event file (the logger's ``SummaryWriter``)."""

    def __init__(self, logger: Any) -> None:
        self.writer = logger.experiment

    def table(self, key: str, df: pd.DataFrame) -> None:
        self.writer.add_text(key, _markdown(_text_frame(df)))

    def image(self, key: str, path: Path) -> None:
        from PIL import Image

        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        self.writer.add_image(key, pixels, dataformats="HWC")

    def scatter(self, key: str, df: pd.DataFrame, *, x: str, y: str, title: str) -> None:
        """``key`` as a curve of ``y`` over steps ``round(1000 * x)`` (x in ms: steps in µs)."""
        for _, row in _points(df, x, y).iterrows():
            self.writer.add_scalar(key, float(row[y]), global_step=int(round(1000 * row[x])))
        self.writer.add_text(f"{key}/about", f"{title}: {y} against step = 1000 × {x}")

    def curve(self, key: str, steps: list[int], values: list[float], *, step_name: str) -> None:
        """``key`` as a curve over its own steps (e.g. a final model's epochs)."""
        for step, value in zip(steps, values, strict=True):
            self.writer.add_scalar(key, float(value), global_step=int(step))

    def summary(self, values: dict[str, Any]) -> None:
        for k, v in values.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v)):
                self.writer.add_scalar(f"summary/{k}", float(v), global_step=0)

    def close(self, status: str) -> None:
        """Nothing to do: Lightning's ``finalize`` flushes and closes the writer."""


def _markdown(df: pd.DataFrame) -> str:
    """``df`` as a Markdown table (TensorBoard's text tab renders it), numbers to 4 significant digits."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v).replace("|", "\\|")

    rows = [" | ".join(map(str, df.columns)), " | ".join("---" for _ in df.columns)]
    rows += [" | ".join(cell(v) for v in r) for r in df.itertuples(index=False)]
    return "\n".join(f"| {r} |" for r in rows)


def check_logger_config(node: Any) -> None:
    """Check the ``logger=`` choices before the search spends anything (W&B's mode and key), and say when a
    W&B or TensorBoard logger will get no end-of-run outputs (a node without ``run_sink``, as the configs of
    run dirs saved before the sinks were config have)."""
    for name, sub in (node or {}).items():
        if sub is None:
            continue
        cls = import_target(sub.get("_target_"))
        cls = cls if isinstance(cls, type) else None
        if cls is not None and issubclass(cls, pl_loggers.WandbLogger):
            mode = sub.get("mode") or os.environ.get("WANDB_MODE") or "online"
            check_wandb_mode(mode, key=f"logger.{name}.mode")
            _check_legacy_switch(str(mode), key=f"logger.{name}.mode")
        if (
            cls is not None
            and "run_sink" not in sub
            and any(issubclass(ours, cls) for ours in _WithRunSink.__subclasses__())
        ):
            log.warning(
                "logger.%s (%s) names no run_sink: the tables, the front and the charts are not logged to "
                "it, only the per-trial metrics; pass logger=%s to use conf/logger/%s.yaml, which names one",
                name, cls.__name__, name, name,
            )  # fmt: skip


def _check_legacy_switch(mode: str, *, key: str) -> None:
    """``HWNAS_WANDB_OFFLINE`` (before W&B's own ``WANDB_MODE`` decided) must not silently disagree."""
    legacy = os.environ.get("HWNAS_WANDB_OFFLINE", "").strip().lower()
    if legacy not in ("true", "false"):
        return
    if (legacy == "true") != (mode in ("offline", "dryrun")) and mode != "disabled":
        raise ConfigError(
            f"HWNAS_WANDB_OFFLINE={legacy} is no longer read and disagrees with the W&B mode {mode!r}",
            key=key,
            fix="unset HWNAS_WANDB_OFFLINE and choose with WANDB_MODE=offline (the default) or WANDB_MODE=online",
        )

"""One progress bar over long multi-model work (the final stage's models × epochs).

On a terminal it is a live ``tqdm`` bar on stderr; in a log file, CI or a Slurm job (stderr not a TTY)
the bar is off and the caller's one line per finished model is the progress report. ``HWNAS_PROGRESS=1``
forces the bar on, ``0`` off.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytorch_lightning as pl


def _wanted() -> bool:
    forced = os.environ.get("HWNAS_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


class StageProgress:
    """A bar of ``total`` epochs; :meth:`callback` gives a Lightning callback that advances it.

    Args:
        total: Epochs to run in all (models still to train × their epochs).
        desc: Label in front of the bar.
    """

    def __init__(self, total: int, *, desc: str = "final stage") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=max(0, int(total)), desc=desc, unit="epoch", disable=not _wanted(), file=sys.stderr
        )

    def callback(self, label: str) -> pl.Callback:
        """A callback that advances the bar by one per finished training epoch, showing ``label``."""
        return _EpochTick(self, label)

    def skip(self, epochs: int) -> None:
        """Advance without training (epochs restored from a checkpoint)."""
        self.bar.update(max(0, int(epochs)))

    def close(self) -> None:
        self.bar.close()


class _EpochTick(pl.Callback):
    """Advances a :class:`StageProgress` after every training epoch. Logs nothing itself."""

    def __init__(self, progress: StageProgress, label: str) -> None:
        self.progress, self.label = progress, label

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.progress.bar.set_postfix_str(self.label)
        self.progress.skip(trainer.current_epoch)  # resumed from a checkpoint: those epochs are done

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.progress.bar.update(1)

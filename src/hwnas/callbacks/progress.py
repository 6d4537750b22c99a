"""One progress bar over long multi-model work (the final stage's models × epochs).

On a terminal it is a live ``tqdm`` bar on stderr; in a log file, CI or a Slurm job (stderr not a TTY)
the bar is off and the caller's one line per finished model is the progress report. ``HWNAS_PROGRESS=1``
forces the bar on, ``0`` off. Training in worker processes reports through a :class:`ProgressRelay`
(the same interface, over a queue) that the parent's :meth:`StageProgress.follow` feeds into the bar.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Protocol

import pytorch_lightning as pl


def bar_wanted() -> bool:
    """Whether to draw live bars: ``HWNAS_PROGRESS=1`` / ``0`` when set, else whether stderr is a terminal."""
    forced = os.environ.get("HWNAS_PROGRESS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


class Progress(Protocol):
    """What a training reports progress to (a :class:`StageProgress` or a :class:`ProgressRelay`)."""

    def advance(self, epochs: int) -> None: ...

    def set_label(self, label: str) -> None: ...

    def callback(self, label: str) -> pl.Callback: ...

    def skip(self, epochs: int) -> None: ...


class StageProgress:
    """A bar of ``total`` epochs; :meth:`callback` gives a Lightning callback that advances it.

    Args:
        total: Epochs to run in all (models still to train × their epochs).
        desc: Label in front of the bar.
    """

    def __init__(self, total: int, *, desc: str = "final stage") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=max(0, int(total)), desc=desc, unit="epoch", disable=not bar_wanted(), file=sys.stderr
        )

    def callback(self, label: str) -> pl.Callback:
        """A callback that advances the bar by one per finished training epoch, showing ``label``."""
        return _EpochTick(self, label)

    def advance(self, epochs: int) -> None:
        self.bar.update(max(0, int(epochs)))

    def set_label(self, label: str) -> None:
        self.bar.set_postfix_str(label)

    def skip(self, epochs: int) -> None:
        """Advance without training (epochs restored from a checkpoint)."""
        self.advance(epochs)

    def follow(self, queue: Any) -> threading.Thread:
        """Feed this bar from the ``queue`` of worker :class:`ProgressRelay` objects until ``None`` arrives."""

        def pump() -> None:
            while (item := queue.get()) is not None:
                kind, value = item
                if kind == "label":
                    self.set_label(str(value))
                else:
                    self.advance(int(value))

        thread = threading.Thread(target=pump, name="hwnas-progress", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.bar.close()


class ProgressRelay:
    """:class:`StageProgress`'s interface inside a worker process: events go to the parent's queue."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def advance(self, epochs: int) -> None:
        if epochs > 0:
            self.queue.put(("advance", int(epochs)))

    def set_label(self, label: str) -> None:
        self.queue.put(("label", str(label)))

    def callback(self, label: str) -> pl.Callback:
        return _EpochTick(self, label)

    def skip(self, epochs: int) -> None:
        self.advance(epochs)


class NoProgress:
    """The progress interface that reports nothing (work already counted elsewhere)."""

    def advance(self, epochs: int) -> None:
        pass

    def set_label(self, label: str) -> None:
        pass

    def callback(self, label: str) -> pl.Callback:
        return _EpochTick(self, label)

    def skip(self, epochs: int) -> None:
        pass


class _EpochTick(pl.Callback):
    """Advances a progress bar after every training epoch. Logs nothing itself."""

    def __init__(self, progress: Progress, label: str) -> None:
        self.progress, self.label = progress, label

    def on_train_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.progress.set_label(self.label)
        self.progress.skip(trainer.current_epoch)  # resumed from a checkpoint: those epochs are done

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        self.progress.advance(1)

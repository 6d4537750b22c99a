"""Resumable trainings: Lightning checkpoints kept in a folder of their own, resumed by the same command.

One mechanism for every long training (the final stage's models, the supernet of ``evaluator=supernet``,
the gradient strategies' searches). A :class:`Resume` names a folder and the fingerprint of the training
that may write there; its callbacks are Lightning's own :class:`~pytorch_lightning.callbacks.ModelCheckpoint`
(every ``every_n_epochs`` epochs, ``keep`` files, ``last.ckpt`` a link to the newest; Lightning writes
each file through an fsspec transaction, a temporary file renamed when complete, so a kill mid-write
leaves the previous checkpoint) plus:

* :class:`RngState`: the Python, NumPy, torch (and CUDA) RNG states travel in the checkpoint, so a resumed
  training draws the same data order and random sub-networks as one that was never stopped;
* :class:`Preemption`: SIGTERM, SIGUSR1 (and submitit's pre-emption signal) stop the training after the
  current batch (Lightning's own SIGTERM path), save ``last.ckpt``, and leave the process through the
  launcher's requeue: submitit's handler under ``hydra/launcher=slurm`` (the job's ``checkpoint()``
  resubmits it), ``scontrol requeue`` under a plain Slurm job, else exit status ``128 + signal``.

A folder written under another fingerprint is emptied before use; a partial training is only ever a
checkpoint in this folder, never a finished result (callers write their results elsewhere, last).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.seed import _collect_rng_states, _set_rng_states
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.checkpoints")

T = TypeVar("T")
#: Signals that stop a training with a checkpoint (SIGTERM: Slurm's pre-emption and ``scancel``; SIGUSR1:
#: ``sbatch --signal=USR1@<s>``); submitit's own pre-emption signal (``SUBMITIT_PREEMPT_SIGNAL``) too.
STOP_SIGNALS = ("SIGTERM", "SIGUSR1")


class RngState(pl.Callback):
    """Every checkpoint carries the process's RNG states; a resumed training continues them (and logs from
    which epoch it resumes: the epochs before it are not trained again)."""

    def __init__(self, label: str = "training", on_start: Callable[[], None] | None = None) -> None:
        self.label = label
        self.on_start = on_start

    def state_dict(self) -> dict[str, Any]:
        rng = _collect_rng_states(include_cuda=True)
        name, keys, pos, has_gauss, gauss = rng["numpy"]  # as a tensor: Lightning loads weights-only
        rng["numpy"] = (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
        return {"rng": rng}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        rng = dict(state_dict.get("rng") or {})
        if "numpy" in rng:
            name, keys, pos, has_gauss, gauss = rng["numpy"]
            rng["numpy"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)
        if rng:  # now: Lightning draws the first batch (the sampler's seed) before any training hook
            _set_rng_states(rng)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.on_start is not None:
            self.on_start()
        if trainer.ckpt_path:
            done = trainer.current_epoch
            log.info(
                "%s: resumed from %s at epoch %d/%d (%s)", self.label, trainer.ckpt_path, done + 1,
                trainer.max_epochs, f"epochs 1-{done} are not repeated" if done else "within its first epoch",
            )  # fmt: skip


def _stop_signals() -> list[signal.Signals]:
    names = list(STOP_SIGNALS)
    if os.environ.get("SUBMITIT_EXECUTOR"):
        names.append("SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
    return [getattr(signal, n) for n in dict.fromkeys(names) if hasattr(signal, n)]


class Preemption(pl.Callback):
    """Turns SIGTERM / SIGUSR1 (and submitit's signal) into Lightning's SIGTERM stop: the batch in flight
    finishes, then ``last.ckpt`` is saved in ``folder`` (see :func:`fit_resumable` for the exit)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.signum: int | None = None
        self.saved: Path | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        connector = trainer._signal_connector
        for sig in _stop_signals():
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self.signum = signum
                if signum == signal.SIGTERM and callable(previous):
                    previous(signum, frame)  # Lightning's notifier (it also forwards to its launcher)
                connector.received_sigterm = True

            signal.signal(sig, handler)  # Lightning's teardown restores the handlers it found

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.saved = self.folder / "last.ckpt"
        trainer.save_checkpoint(self.saved)
        name = signal.Signals(self.signum or signal.SIGTERM).name
        log.warning(
            "%s received: checkpoint saved at epoch %d, step %d in %s",
            name, trainer.current_epoch + 1, trainer.global_step, self.saved,
        )  # fmt: skip


def leave_for_requeue(signum: int) -> None:
    """Exit after a pre-emption checkpoint so that the launcher runs the job again: submitit's handler
    (its ``checkpoint()`` resubmits the same job), ``scontrol requeue`` in a plain Slurm job (rank 0), else
    exit status ``128 + signum`` (the caller re-runs the command)."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        usr = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))
        handler = signal.getsignal(usr)
        if callable(handler):
            log.warning("handing over to submitit: checkpoint() and requeue of this job")
            handler(usr, None)  # requeues and exits
    job = os.environ.get("SLURM_JOB_ID")
    if job and not os.environ.get("SUBMITIT_EXECUTOR") and os.environ.get("SLURM_PROCID", "0") == "0":
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else job
        rc = subprocess.call(["scontrol", "requeue", job])
        log.warning("scontrol requeue %s: %s", job, "done" if rc == 0 else f"failed ({rc})")
    sys.exit(128 + int(signum))


@dataclass
class Resume:
    """A checkpoint folder of one training.

    Args:
        folder: Where the checkpoints go (``last.ckpt`` and ``epoch=…`` files).
        fingerprint: What the training is (its recipe's hash): a folder of another fingerprint is emptied.
        every_n_epochs: Checkpoint interval in epochs (``0`` = only on a pre-emption signal).
        keep: How many interval checkpoints to keep besides ``last.ckpt``.
        label: How the log names the training.
    """

    folder: Path
    fingerprint: str
    every_n_epochs: int = 1
    keep: int = 1
    label: str = "training"

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.preemption = Preemption(self.folder)
        self.started = False  # the training got past restoring its checkpoint

    def _started(self) -> None:
        self.started = True

    @property
    def marker(self) -> Path:
        """``<folder>.json``: which training the folder belongs to (beside it: Lightning wants it empty)."""
        return self.folder.with_name(f"{self.folder.name}.json")

    def last(self) -> Path | None:
        """The checkpoint to resume from (``None``: start afresh); clears a folder of another training."""
        if (read_json(self.marker) or {}).get("fingerprint") != self.fingerprint:
            shutil.rmtree(self.folder, ignore_errors=True)
        write_json(self.marker, {"fingerprint": self.fingerprint})
        if not self.folder.is_dir():
            return None
        last = self.folder / "last.ckpt"
        if last.is_file():
            return last
        kept = sorted(self.folder.glob("epoch=*.ckpt"))  # a kill between unlinking and re-linking last.ckpt
        return kept[-1] if kept else None

    def callbacks(self) -> list[pl.Callback]:
        """Lightning's ModelCheckpoint (interval, retention, ``last.ckpt``), RNG states, pre-emption."""
        out: list[pl.Callback] = [RngState(self.label, self._started), self.preemption]
        if self.every_n_epochs > 0:
            out.insert(
                0,
                ModelCheckpoint(
                    dirpath=self.folder,
                    filename="{epoch:03d}",
                    monitor="step",
                    mode="max",
                    save_top_k=max(1, int(self.keep)),
                    every_n_epochs=int(self.every_n_epochs),
                    save_last=True,
                    save_on_train_epoch_end=True,
                    enable_version_counter=False,
                ),  # fmt: skip
            )
        return out

    def done(self) -> None:
        """The training finished and its result is stored: its checkpoints are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.marker.unlink(missing_ok=True)


def fit_resumable(resume: Resume | None, fit: Callable[[Path | None], T]) -> T:
    """``fit(ckpt_path)`` from ``resume``'s last checkpoint (or from scratch when there is none, or when it
    cannot be read); on a pre-emption signal, leave the process for the launcher's requeue."""
    if resume is None:
        return fit(None)
    last = resume.last()
    resume.started = False
    try:
        try:
            return fit(last)
        except (RuntimeError, KeyError, OSError, EOFError) as exc:
            if last is None or resume.started:  # a failure of the training itself, not of its checkpoint
                raise
            log.warning("%s: could not resume from %s (%s); training from scratch", resume.label, last, exc)
            resume.done()
            resume.last()
            return fit(None)
    except SIGTERMException:
        leave_for_requeue(resume.preemption.signum or signal.SIGTERM)
        raise


def resume_for(cfg: Any, folder: Path, fingerprint: str, label: str) -> Resume:
    """A :class:`Resume` with the interval and retention of the ``checkpoint`` config node (defaults when a
    config has none); a clear error for a bad value."""
    from hwnas.utils.errors import ConfigError

    node = cfg.get("checkpoint") or {}
    every, keep = node.get("every_n_epochs", 1), node.get("keep", 1)
    if not isinstance(every, int) or isinstance(every, bool) or every < 0:
        raise ConfigError(
            f"must be an integer >= 0, got {every!r}", key="checkpoint.every_n_epochs",
            fix="checkpoint.every_n_epochs=1 (every epoch), N (every N epochs) or 0 (only on a pre-emption signal)",
        )  # fmt: skip
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
        raise ConfigError(
            f"must be an integer >= 1, got {keep!r}", key="checkpoint.keep",
            fix="checkpoint.keep=1 (the newest interval checkpoint besides last.ckpt) or more",
        )  # fmt: skip
    return Resume(Path(folder), fingerprint, every_n_epochs=every, keep=keep, label=label)

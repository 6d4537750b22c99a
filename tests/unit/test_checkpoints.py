"""Resumable long trainings (:mod:`hwnas.lit.checkpoints`): a supernet training stopped after two of its four
epochs resumes from its checkpoint, says so, trains only the epochs after it, and ends with exactly the
weights of a training that was never stopped; a folder of another training is never resumed; pre-emption
signals save a checkpoint and leave the process with the signal's exit status."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from hwnas.lit.checkpoints import Resume, resume_for
from hwnas.lit.supernet import fit_supernet
from hwnas.search_space.hourglass import HourglassSpace
from hwnas.utils.errors import ConfigError

TRICKS = OmegaConf.create({"precision": "32-true", "memory_format": "contiguous"})
TRAINER = OmegaConf.create(
    {"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1, "deterministic": True}
)


class _Data:
    """Shuffled random images: a resumed training must draw the same order as an unstopped one."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(24, 3, 32, 32, generator=g)
        self.y = torch.randint(0, 5, (24, 32, 32), generator=g)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        ds = torch.utils.data.TensorDataset(self.x, self.y)
        return torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)


class Killed(Exception):
    """Stands for a kill: raised at the start of the third epoch, after two epochs were checkpointed."""


class _KillAtEpoch(pl.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.current_epoch == self.epoch and batch_idx == 1:
            raise Killed


def _supernet() -> torch.nn.Module:
    torch.manual_seed(0)
    space = HourglassSpace(
        num_levels=3, base_channels=[8, 16], layers=[1, 2], kernels=[3, 5], expand=[1.0, 2.0],
        skip_layers=[0, 1], max_channels=32,
    )  # fmt: skip
    return space.supernet(num_classes=5)


def _fit(net: torch.nn.Module, tmp: Path, resume: Resume | None, callbacks=None) -> dict:  # noqa: ANN001
    return fit_supernet(
        net, datamodule=_Data(), tricks=TRICKS, trainer_cfg=TRAINER,
        optim={"lr": 0.01, "weight_decay": 0.0}, run_dir=str(tmp / "lightning"), max_epochs=4,
        n_random=1, seed=3, callbacks=callbacks, resume=resume,
    )  # fmt: skip


def test_a_stopped_supernet_resumes_where_it_stopped_and_ends_as_if_never_stopped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    whole = _supernet()
    _fit(whole, tmp_path / "a", Resume(tmp_path / "a" / "ckpt", "k1"))

    folder = tmp_path / "b" / "ckpt"
    with pytest.raises(Killed):
        _fit(_supernet(), tmp_path / "b", Resume(folder, "k1", keep=1), callbacks=[_KillAtEpoch(2)])
    assert (folder / "last.ckpt").is_file()
    kept = sorted(p.name for p in folder.glob("epoch=*.ckpt"))
    assert kept == ["epoch=001.ckpt"]  # keep=1: the epoch-1 file was deleted when epoch 2's was written

    resumed = _supernet()
    with caplog.at_level("INFO"):
        _fit(resumed, tmp_path / "b", Resume(folder, "k1"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "resumed from" in text and "at epoch 3/4 (epochs 1-2 are not repeated)" in text
    epochs = [
        r.getMessage().split("/")[0] for r in caplog.records if r.getMessage().startswith("supernet epoch")
    ]
    assert epochs == ["supernet epoch 3", "supernet epoch 4"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_of_another_training_is_never_resumed(tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    with pytest.raises(Killed):
        _fit(_supernet(), tmp_path, Resume(folder, "old"), callbacks=[_KillAtEpoch(2)])
    assert Resume(folder, "old").last() is not None
    assert Resume(folder, "new").last() is None and not (folder / "last.ckpt").exists()


class _SignalAt(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.current_epoch == 1 and batch_idx == 0:
            signal.raise_signal(signal.SIGUSR1)


def test_a_preemption_signal_saves_a_checkpoint_and_exits_with_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("SUBMITIT_EXECUTOR", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "ckpt"
    with pytest.raises(SystemExit) as exc:
        _fit(_supernet(), tmp_path, Resume(folder, "k", every_n_epochs=0), callbacks=[_SignalAt()])
    assert exc.value.code == 128 + signal.SIGUSR1
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 4  # 3 batches of epoch 1, then 1 of epoch 2
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)  # handlers restored


def test_bad_checkpoint_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint.keep"):
        resume_for(OmegaConf.create({"checkpoint": {"every_n_epochs": 1, "keep": 0}}), tmp_path, "k", "x")
    with pytest.raises(ConfigError, match="checkpoint.every_n_epochs"):
        resume_for(OmegaConf.create({"checkpoint": {"every_n_epochs": -1, "keep": 1}}), tmp_path, "k", "x")


def test_a_stopped_xnas_search_resumes_with_its_experts_and_its_trajectory(tmp_path: Path) -> None:
    """A gradient search stopped after 8 of its 10 epochs, with experts already wiped out (XNAS's wipe-out
    needs no state of its own: a wiped expert's α stays at the floor and is wiped again), ends with the α
    of one never stopped, and its per-epoch trajectory (``dnas_epochs``, the collapse guard's) is whole."""
    from hwnas.lit.dnas import DnasModule
    from hwnas.lit.dnas_fit import fit_dnas
    from hwnas.models.mixed import ArchParameters
    from tests.unit.test_dnas import TRAINER as DNAS_TRAINER
    from tests.unit.test_dnas import TinyMixed, _loaders

    class Stopping(DnasModule):
        def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
            if self.current_epoch == 8:  # after epoch 8, the first to wipe experts out (of 10)
                raise Killed
            return super().training_step(batch, batch_idx)

    def run(cls: type, folder: Path) -> tuple:
        torch.manual_seed(0)
        net = TinyMixed()
        module = cls(net, ArchParameters(net.alpha_shapes()), update="xnas", xnas_grad_bound=0.05)
        tl, vl = _loaders()
        out = fit_dnas(
            module, train_loader=tl, val_loader=vl, trainer_cfg=DNAS_TRAINER, max_epochs=10, limit_train_batches=4,
            run_dir=str(tmp_path / "lightning"), label="xnas", resume=Resume(folder, "x"),
        )  # fmt: skip
        return out, module

    whole, m1 = run(DnasModule, tmp_path / "a")
    with pytest.raises(Killed):
        run(Stopping, tmp_path / "b")
    resumed, m2 = run(DnasModule, tmp_path / "b")
    assert [h["epoch"] for h in resumed.history] == list(range(1, 11))
    assert resumed.history[7]["experts_alive"] < 1.0  # experts were out of the race at the checkpoint
    assert torch.equal(m1.arch.detached()["edges"], m2.arch.detached()["edges"])
    assert m1.expert.wiped_total == m2.expert.wiped_total > 0
    assert resumed.params == whole.params


def test_a_training_resumed_from_its_last_epochs_checkpoint_still_reports_its_validation(
    tmp_path: Path,
) -> None:
    """Killed after the checkpoint of its last epoch but before its result was written (the final stage's
    race): the re-run has no epoch left to train, and must still score the finished weights."""
    from functools import partial

    from hwnas.data.datamodule import SegmentationDataModule
    from hwnas.data.synthetic_faces import SyntheticFaces
    from hwnas.lit.fit import fit_candidate

    space = HourglassSpace(
        num_levels=3,
        base_channels=[8],
        layers=[1],
        kernels=[3],
        expand=[1.0],
        skip_layers=[0],
        max_channels=16,
    )
    factory = partial(SyntheticFaces, image_size=32, num_train=16, num_val=8, seed=0)
    dm = SegmentationDataModule(dataset=factory, image_size=32, batch_size=8)
    resume = Resume(tmp_path / "resume", "recipe-1", label="final test")

    def fit(ckpt: Path | None) -> dict[str, float]:
        _, metrics = fit_candidate(
            space.build(space.baseline(), num_classes=19), datamodule=dm, tricks=TRICKS, trainer_cfg=TRAINER,
            optim={"lr": 0.01, "weight_decay": 0.0}, run_dir=tmp_path / "lightning", loggers=False,
            callbacks=resume.callbacks(), seed=0, overrides={"max_epochs": 2}, ckpt_path=ckpt,
        )  # fmt: skip
        return metrics

    first = fit(None)
    last = resume.folder / "last.ckpt"
    assert last.exists()
    again = fit(last)  # nothing left to train: the checkpoint is at the end of epoch 2 of 2
    assert again["val/miou"] == pytest.approx(first["val/miou"], abs=1e-6)

"""SegmentationDataModule: batches, reproducibility, calibration data, and the dataset option files."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from hwnas.data.datamodule import SegmentationDataModule
from hwnas.data.labels import CLASS_NAMES, IGNORE_INDEX
from hwnas.data.synthetic_faces import SyntheticFaces
from hwnas.tricks.augment import ColorJitter, HFlipSwap, ScaleCropJitter
from hwnas.utils.errors import DataError

CONF = Path(__file__).resolve().parents[2] / "conf" / "dataset"


def _dm(**kw) -> SegmentationDataModule:
    factory = partial(SyntheticFaces, image_size=32, num_train=20, num_val=6, seed=0)
    return SegmentationDataModule(dataset=factory, image_size=32, batch_size=4, **kw)


def test_batches_shapes_dtypes_and_attributes() -> None:
    dm = _dm(augment=[HFlipSwap(0.5), ScaleCropJitter((0.7, 0.9))])
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (4, 32, 32) and y.dtype == torch.int64
    assert (y == IGNORE_INDEX).any()  # zoom-out padding reached the batch
    assert dm.num_classes == 19 and dm.in_channels == 3 and dm.image_size == (32, 32)
    assert dm.class_names == list(CLASS_NAMES)
    assert dm.input_shape() == (1, 3, 32, 32) and dm.input_shape(8) == (8, 3, 32, 32)
    assert len(list(dm.train_dataloader())) == 5


def test_val_is_deterministic_unshuffled_and_unaugmented() -> None:
    dm = _dm(augment=[ColorJitter(0.5, 0.5, 0.5)])
    a = torch.cat([x for x, _ in dm.val_dataloader()])
    b = torch.cat([x for x, _ in dm.val_dataloader()])
    torch.testing.assert_close(a, b)
    assert a.shape[0] == 6
    ds = dm.split("val")
    torch.testing.assert_close(a[0], ds[0][0])


def test_training_stream_reproducible_and_changes_per_epoch() -> None:
    def epochs(dm: SegmentationDataModule) -> list[torch.Tensor]:
        loader = dm.train_dataloader()
        return [next(iter(loader))[0] for _ in range(2)]  # each new iteration is the next epoch

    augment = [HFlipSwap(0.5), ColorJitter()]
    a, b = epochs(_dm(augment=augment, seed=1)), epochs(_dm(augment=augment, seed=1))
    torch.testing.assert_close(a[0], b[0])
    torch.testing.assert_close(a[1], b[1])
    assert not torch.equal(a[0], a[1])
    loader = _dm(augment=augment, seed=1).train_dataloader()
    loader.sampler.set_epoch(1)  # what Lightning does: epoch 1 again gives epoch 1's batch
    torch.testing.assert_close(next(iter(loader))[0], a[1])


def test_calibration_batches_are_real_normalised_val_images() -> None:
    dm = _dm()
    batches = dm.calibration_batches(4, batch_size=2)
    assert len(batches) == 4
    for b in batches:
        assert isinstance(b, np.ndarray) and b.dtype == np.float32 and b.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(batches[0][0], dm.split("val")[0][0].numpy())
    np.testing.assert_allclose(batches[3][0], batches[0][0])  # 6 val images: index 6 wraps to 0
    assert batches[0].std() > 0.3


def test_size_mismatch_and_bad_factory_are_data_errors() -> None:
    with pytest.raises(DataError, match="image_size"):
        SegmentationDataModule(dataset=partial(SyntheticFaces, image_size=32, num_val=2), image_size=64)
    with pytest.raises(DataError, match="_partial_"):
        SegmentationDataModule(dataset=SyntheticFaces(num_train=1), image_size=64)


def _compose(name: str, **over) -> DictConfig:
    """The option file as the ``dataset`` group of a main config with a top-level ``seed``."""
    return OmegaConf.merge({"seed": 0, "dataset": OmegaConf.load(CONF / f"{name}.yaml")}, over)


def test_synthetic_faces_option_file_instantiates() -> None:
    first_line = (CONF / "synthetic_faces.yaml").read_text().splitlines()[0]
    assert (
        first_line
        == "# Procedurally generated faces, 19 FaceSynthetics classes: the embedded offline default"
    )
    cfg = _compose("synthetic_faces", dataset={"dataset": {"num_train": 8, "num_val": 4}})
    dm = hydra.utils.instantiate(cfg.dataset, augment=[HFlipSwap(0.5)])
    assert isinstance(dm, SegmentationDataModule) and dm.image_size == (64, 64)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 64, 64) and y.shape == (8, 64, 64)
    assert len(dm.split("val")) == 4


def test_face_synthetics_option_file(tmp_path) -> None:
    from PIL import Image

    with pytest.raises(Exception, match="dataset.root"):
        hydra.utils.instantiate(_compose("face_synthetics").dataset)
    for i in range(3):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / f"{i:06d}.png")
        Image.fromarray(np.ones((40, 40), np.uint8)).save(tmp_path / f"{i:06d}_seg.png")
    cfg = _compose("face_synthetics", dataset={"root": str(tmp_path), "image_size": 32, "num_workers": 0})
    dm = hydra.utils.instantiate(cfg.dataset)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (1, 3, 32, 32) and (y == 1).all()
    bad = _compose("face_synthetics", dataset={"root": str(tmp_path / "nope")})
    with pytest.raises(Exception, match="dataset.root") as err:  # raised at construction, not in fit
        hydra.utils.instantiate(bad.dataset)
    assert isinstance(err.value, DataError) or isinstance(err.value.__cause__, DataError)


def test_lightning_sets_the_epoch_and_reshuffles() -> None:
    import pytorch_lightning as pl

    first_pixels: list[torch.Tensor] = []

    class Probe(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Conv2d(3, 19, 1)

        def training_step(self, batch, batch_idx):
            if batch_idx == 0:
                first_pixels.append(batch[0][:, :, 0, 0].clone())
            return torch.nn.functional.cross_entropy(self.head(batch[0]), batch[1], ignore_index=IGNORE_INDEX)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = _dm(augment=[HFlipSwap(0.5)])
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(Probe(), datamodule=dm)
    assert trainer.train_dataloader.sampler.epoch == 1  # Lightning called set_epoch(1)
    assert not torch.equal(first_pixels[0], first_pixels[1])

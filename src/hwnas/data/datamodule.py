"""One LightningDataModule for every face-segmentation dataset: synthetic faces or real FaceSynthetics.

The dataset is injected as a factory (a Hydra ``_partial_: true`` node) called with ``split="train"`` or
``split="val"``, so the datamodule never knows which dataset it serves. Samples travel as raw ``uint8``
pairs through the paired augmentations and are normalised once per batch in the collate function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hwnas.data.base import PairedDataset, normalize_batch, parse_image_size
from hwnas.data.labels import CLASS_NAMES, NUM_CLASSES
from hwnas.tricks.augment import apply_paired
from hwnas.utils.errors import DataError


def collate_pairs(batch: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack raw pairs into ``(float32 [N, 3, H, W] normalised images, int64 [N, H, W] masks)``."""
    images = np.stack([b[0] for b in batch])
    masks = np.stack([b[1] for b in batch])
    return normalize_batch(images), torch.from_numpy(masks).long()


class _EpochSampler(Sampler):
    """Yields ``(epoch, index)`` so augmentation randomness can depend on the epoch, even in workers.

    Lightning calls :meth:`set_epoch` before every training epoch; without a trainer, each new iteration
    counts as the next epoch. The shuffle order of epoch ``e`` depends only on ``(seed, e)``.
    """

    def __init__(self, n: int, *, seed: int, shuffle: bool) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.epoch, self._explicit = 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self._explicit = int(epoch), True

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        if not self._explicit:
            self.epoch += 1
        self._explicit = False
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return iter([(epoch, int(i)) for i in order])


class _Augmented(Dataset):
    """Raw pairs of ``base`` after ``transforms``, with an rng derived from ``(seed, epoch, index)``."""

    def __init__(self, base: PairedDataset, transforms: Sequence[Any], seed: int) -> None:
        self.base, self.transforms, self.seed = base, list(transforms), seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[np.ndarray, np.ndarray]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, mask = self.base.raw(index)
        if self.transforms:
            rng = np.random.default_rng((self.seed, 1, epoch, index))
            image, mask = apply_paired(self.transforms, image, mask, rng)
        return image, mask


class SegmentationDataModule(pl.LightningDataModule):
    """Train/val loaders of face images with 19-class masks (255 = ignore), plus calibration batches.

    Args:
        dataset: Factory called as ``dataset(split="train")`` / ``dataset(split="val")`` that returns a
            dataset with ``__len__`` and ``raw(i) -> (uint8 [H, W, 3], uint8 [H, W])``.
        image_size: ``H=W`` or ``[H, W]``; every sample must already have this size.
        batch_size: Samples per batch, for both splits.
        num_workers: Loader worker processes (0 = in the main process, best on small CPU machines).
        augment: Paired transforms applied in order to training samples only.
        num_classes: Number of label classes (19 for FaceSynthetics).
        seed: Seeds the training shuffle and augmentation, so runs are reproducible.
        class_names: Names of the classes; defaults to the FaceSynthetics names.
        root: The data folder, when the dataset reads one; only recorded here (the dataset node gets it
            through ``root: ${..root}``), so ``dataset.root=...`` is the one key users set.
    """

    in_channels: int = 3

    def __init__(
        self,
        *,
        dataset: Callable[..., PairedDataset],
        image_size: int | Sequence[int] = 64,
        batch_size: int = 32,
        num_workers: int = 0,
        augment: Sequence[Any] | None = None,
        num_classes: int = NUM_CLASSES,
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        root: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(dataset):
            raise DataError(
                f"dataset must be a factory taking split=..., got {type(dataset).__name__}",
                key="dataset.dataset",
                fix="add `_partial_: true` to the dataset node",
            )
        if int(batch_size) < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}", key="dataset.batch_size")
        self.dataset_factory = dataset
        self.image_size: tuple[int, int] = parse_image_size(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.augment = list(augment or [])
        self.num_classes = int(num_classes)
        self.seed = int(seed)
        names = list(class_names) if class_names is not None else list(CLASS_NAMES[: self.num_classes])
        if len(names) != self.num_classes:
            names = [f"class_{i}" for i in range(self.num_classes)]
        self.class_names: list[str] = names
        self.root = root
        self._splits: dict[str, PairedDataset] = {}
        # Fail at construction, not minutes into a run: a bad root or size surfaces as a DataError now.
        # Cheap: datasets read or draw samples lazily, and only sample 0 of each split is checked here.
        self.split("train")
        self.split("val")

    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        """The NCHW shape of a model input, e.g. for ONNX export and profiling."""
        return (int(batch_size), self.in_channels, *self.image_size)

    def split(self, name: str) -> PairedDataset:
        """The dataset of split ``name`` (built once, on first use), checked against ``image_size``."""
        if name not in self._splits:
            ds = self.dataset_factory(split=name)
            if len(ds) == 0:
                raise DataError(f"the {name} split is empty", key="dataset.dataset")
            image, mask = ds.raw(0)
            if image.shape != (*self.image_size, 3) or mask.shape != self.image_size:
                raise DataError(
                    f"{name} samples are {image.shape[:2]} but the datamodule expects {self.image_size}",
                    key="dataset.image_size",
                    fix="give the dataset node the same image_size (e.g. image_size: ${..image_size})",
                )
            self._splits[name] = ds
        return self._splits[name]

    def setup(self, stage: str | None = None) -> None:
        """Build the splits the stage needs (Lightning hook)."""
        if stage in (None, "fit"):
            self.split("train")
        self.split("val")

    def train_dataloader(self) -> DataLoader:
        ds = self.split("train")
        return self._loader(
            _Augmented(ds, self.augment, self.seed), shuffle=True, drop_last=len(ds) > self.batch_size
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(_Augmented(self.split("val"), [], self.seed), shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """The held-out test split (read only by the final stage, never by the search)."""
        return self._loader(_Augmented(self.split("test"), [], self.seed), shuffle=False, drop_last=False)

    def has_split(self, name: str) -> bool:
        """Whether split ``name`` exists and is non-empty (without raising)."""
        try:
            self.split(name)
        except (DataError, IndexError, ValueError):
            return False
        return True

    def _loader(self, ds: _Augmented, *, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=_EpochSampler(len(ds), seed=self.seed, shuffle=shuffle),
            drop_last=drop_last,
            num_workers=self.num_workers,
            collate_fn=collate_pairs,
            persistent_workers=self.num_workers > 0,
        )

    def calibration_batches(self, n: int, batch_size: int = 1, *, split: str = "val") -> list[np.ndarray]:
        """``n`` batches of real, normalised images of ``split`` as ``float32 [B, 3, H, W]`` arrays.

        Deterministic (the first ``n * batch_size`` images, wrapping around, never augmented), so int8
        calibration of the same model always sees the same data. The final stage calibrates on
        ``split="train"`` so that no test (or selection) image shapes the quantised model.
        """
        ds = self.split(split)
        out = []
        for b in range(int(n)):
            idx = [(b * batch_size + j) % len(ds) for j in range(batch_size)]
            out.append(normalize_batch(np.stack([ds.raw(i)[0] for i in idx])).numpy())
        return out

"""The LightningDataModules: one shared base, and the one for every face-segmentation dataset.

The dataset is injected as a factory (a Hydra ``_partial_: true`` node) called with ``split="train"``,
``"val"`` or ``"test"``, so a datamodule never knows which dataset it serves. Samples travel as raw
``uint8`` images (with their mask or class id) through the training augmentations and are normalised
once per batch in the collate function. :class:`ImageDataModule` holds everything segmentation and
classification (:mod:`hwnas.data.classification`) share: splits, loaders, the epoch-seeded shuffle and
augmentation, calibration batches; a subclass only says what a valid sample looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from hwnas.data.base import PairedDataset, normalize_batch, parse_image_size
from hwnas.data.labels import CLASS_NAMES, F1_CLASSES, NUM_CLASSES
from hwnas.data.transforms import apply_image, apply_paired
from hwnas.utils.errors import DataError


def collate_pairs(batch: Sequence[tuple[np.ndarray, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack raw samples into ``(float32 [N, C, H, W] normalised images, int64 labels)``: labels are
    ``[N, H, W]`` masks (segmentation) or ``[N]`` class ids (classification)."""
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
    """Raw samples of ``base`` after ``transforms``, with an rng derived from ``(seed, epoch, index)``.

    ``paired``: the label is a mask transformed with the image; else a class id the transforms never see.
    """

    def __init__(self, base: Any, transforms: Sequence[Any], seed: int, *, paired: bool = True) -> None:
        self.base, self.transforms, self.seed, self.paired = base, list(transforms), seed, paired

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[np.ndarray, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        image, label = self.base.raw(index)
        if self.transforms:
            rng = np.random.default_rng((self.seed, 1, epoch, index))
            if self.paired:
                image, label = apply_paired(self.transforms, image, label, rng)
            else:
                image = apply_image(self.transforms, image, rng)
        return image, label


class ImageDataModule(pl.LightningDataModule):
    """Train/val/test loaders of ``uint8`` image datasets, plus calibration batches (the shared base).

    Subclasses set :attr:`task` and implement :meth:`check_sample`; everything else is common.

    Args:
        dataset: Factory called as ``dataset(split="train" | "val" | "test")`` that returns a dataset with
            ``__len__`` and ``raw(i) -> (uint8 [H, W, C] image, label)``.
        image_size: ``H=W`` or ``[H, W]``; every sample must already have this size.
        batch_size: Samples per batch, for every split.
        num_workers: Loader worker processes (0 = in the main process, best on small CPU machines).
        augment: Transforms applied in order to training samples only (``hwnas.tricks.augment``).
        num_classes: Number of label classes.
        seed: Seeds the training shuffle and augmentation, so runs are reproducible.
        class_names: Names of the classes; ``None`` = the subclass's default.
        root: The data folder, when the dataset reads one; only recorded here (the dataset node gets it
            through ``root: ${..root}``), so ``dataset.root=...`` is the one key users set.
    """

    #: ``"segmentation"`` (labels are ``[H, W]`` masks) or ``"classification"`` (one class id per image).
    task: str = ""
    #: Image channels the models take (3 = RGB, 1 = grayscale).
    in_channels: int = 3
    #: Whether a label is a mask that geometric transforms must move with the image.
    _paired: bool = True

    def __init__(
        self,
        *,
        dataset: Callable[..., Any],
        image_size: int | Sequence[int] = 64,
        batch_size: int = 32,
        num_workers: int = 0,
        augment: Sequence[Any] | None = None,
        num_classes: int,
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
        self.root = root
        self._splits: dict[str, Any] = {}
        names = list(class_names) if class_names is not None else self.default_class_names()
        if names is None or len(names) != self.num_classes:
            names = [f"class_{i}" for i in range(self.num_classes)]
        self.class_names: list[str] = [str(n) for n in names]
        # Fail at construction, not minutes into a run: a bad root or size surfaces as a DataError now.
        # Cheap: datasets read or draw samples lazily, and only sample 0 of each split is checked here.
        self.split("train")
        self.split("val")

    # -- what subclasses say -----------------------------------------------------------------------
    def default_class_names(self) -> list[str] | None:
        """Class names when the config gives none (``None``: ``class_0``, ``class_1``, ...)."""
        return None

    def check_sample(self, name: str, image: np.ndarray, label: Any) -> None:
        """Raise a ``DataError`` when sample 0 of split ``name`` does not fit this datamodule."""
        raise NotImplementedError

    @property
    def f1_classes(self) -> tuple[int, ...]:
        """The classes the final stage's F1 averages over (all of them unless a subclass says otherwise)."""
        return tuple(range(self.num_classes))

    # -- shared ------------------------------------------------------------------------------------
    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        """The NCHW shape of a model input, e.g. for ONNX export and profiling."""
        return (int(batch_size), self.in_channels, *self.image_size)

    def split(self, name: str) -> Any:
        """The dataset of split ``name`` (built once, on first use), its first sample checked."""
        if name not in self._splits:
            ds = self.dataset_factory(split=name)
            if len(ds) == 0:
                raise DataError(f"the {name} split is empty", key="dataset.dataset")
            self.check_sample(name, *ds.raw(0))
            self._splits[name] = ds
        return self._splits[name]

    def setup(self, stage: str | None = None) -> None:
        """Build the splits the stage needs (Lightning hook)."""
        if stage in (None, "fit"):
            self.split("train")
        self.split("val")

    def train_dataloader(self) -> DataLoader:
        ds = self.split("train")
        return self._loader(self._wrap(ds, self.augment), shuffle=True, drop_last=len(ds) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._wrap(self.split("val"), []), shuffle=False, drop_last=False)

    def test_dataloader(self) -> DataLoader:
        """The held-out test split (read only by the final stage, never by the search)."""
        return self._loader(self._wrap(self.split("test"), []), shuffle=False, drop_last=False)

    def has_split(self, name: str) -> bool:
        """Whether split ``name`` exists and is non-empty (without raising)."""
        try:
            self.split(name)
        except (DataError, IndexError, ValueError):
            return False
        return True

    def _wrap(self, ds: Any, transforms: Sequence[Any]) -> _Augmented:
        return _Augmented(ds, transforms, self.seed, paired=self._paired)

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
        """``n`` batches of real, normalised images of ``split`` as ``float32 [B, C, H, W]`` arrays.

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


class SegmentationDataModule(ImageDataModule):
    """Loaders of face images with 19-class masks (255 = ignore), plus calibration batches.

    Args:
        dataset: Factory called as ``dataset(split="train")`` / ``dataset(split="val")`` that returns a
            dataset with ``__len__`` and ``raw(i) -> (uint8 [H, W, 3], uint8 [H, W])``.
        num_classes: Number of label classes (19 for FaceSynthetics).
        class_names: Names of the classes; defaults to the FaceSynthetics names.
        **kwargs: The shared arguments of :class:`ImageDataModule` (image_size, batch_size, num_workers,
            augment, seed, root).
    """

    task = "segmentation"
    in_channels = 3

    def __init__(
        self,
        *,
        dataset: Callable[..., PairedDataset],
        num_classes: int = NUM_CLASSES,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset=dataset, num_classes=num_classes, class_names=class_names, **kwargs)

    def default_class_names(self) -> list[str] | None:
        return list(CLASS_NAMES[: self.num_classes])

    @property
    def f1_classes(self) -> tuple[int, ...]:
        """The face classes 1-17 (no background, no facewear): the reference device metric's."""
        return tuple(c for c in F1_CLASSES if c < self.num_classes)

    def check_sample(self, name: str, image: np.ndarray, label: Any) -> None:
        if image.shape != (*self.image_size, 3) or label.shape != self.image_size:
            raise DataError(
                f"{name} samples are {image.shape[:2]} but the datamodule expects {self.image_size}",
                key="dataset.image_size",
                fix="give the dataset node the same image_size (e.g. image_size: ${..image_size})",
            )

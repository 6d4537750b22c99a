"""The LightningDataModule for image classification: ``(images, class ids)`` batches for CIFAR-style nets.

Same interface as :class:`~hwnas.data.datamodule.SegmentationDataModule` (both are
:class:`~hwnas.data.datamodule.ImageDataModule`\\ s: splits, loaders, epoch-seeded shuffle and
augmentation, calibration batches), but a sample's label is one class id, so batches are
``(float32 [N, C, H, W] normalised images, int64 [N] labels)`` and models return ``[N, K]`` logits.
Training augmentations (``tricks.augment``) see the image alone; flips are left out for datasets whose
classes change when mirrored (``mirror_invariant: false``, e.g. digits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.data.base import LabelledDataset
from hwnas.data.datamodule import ImageDataModule
from hwnas.utils.errors import DataError

log = logging.getLogger("hwnas.data")
_NOTED: set[str] = set()


class ClassificationDataModule(ImageDataModule):
    """Train/val/test loaders of labelled images (one class per image), plus calibration batches.

    Args:
        dataset: Factory called as ``dataset(split="train" | "val" | "test")`` that returns a dataset
            with ``__len__`` and ``raw(i) -> (uint8 [H, W, C] image, int class id)``; its optional
            ``class_names`` attribute names the classes.
        num_classes: Number of classes ``K`` (the models' output width).
        in_channels: Image channels, 1 (grayscale) or 3 (RGB); every sample must have this many.
        mirror_invariant: Whether a mirrored image keeps its class (CIFAR-10: yes; digits: no). When false,
            flips in ``augment`` (transforms with ``mirrors = True``) are left out, with a log line.
        class_names: Names of the classes; ``None`` = the dataset's ``class_names`` (else ``class_<i>``).
        **kwargs: The shared arguments of :class:`~hwnas.data.datamodule.ImageDataModule` (image_size,
            batch_size, num_workers, augment, seed, root).
    """

    task = "classification"
    _paired = False

    def __init__(
        self,
        *,
        dataset: Callable[..., LabelledDataset],
        num_classes: int,
        in_channels: int = 3,
        mirror_invariant: bool = True,
        class_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if int(in_channels) not in (1, 3):
            raise DataError(
                f"in_channels must be 1 (grayscale) or 3 (RGB), got {in_channels}",
                key="dataset.in_channels",
                choices=(1, 3),
            )
        if int(num_classes) < 2:
            raise DataError(f"num_classes must be >= 2, got {num_classes}", key="dataset.num_classes")
        self.in_channels = int(in_channels)
        self.mirror_invariant = bool(mirror_invariant)
        super().__init__(dataset=dataset, num_classes=num_classes, class_names=class_names, **kwargs)
        if not self.mirror_invariant:
            dropped = [t for t in self.augment if getattr(t, "mirrors", False)]
            note = ", ".join(map(repr, dropped))
            if dropped and note not in _NOTED:  # once per process, not once per datamodule built
                _NOTED.add(note)
                log.info(
                    "dataset: leaving %s out of the training augmentation (dataset.mirror_invariant=false: "
                    "a mirrored image is not the same class)",
                    note,
                )
            self.augment = [t for t in self.augment if not getattr(t, "mirrors", False)]

    def default_class_names(self) -> list[str] | None:
        names = getattr(self.split("train"), "class_names", None)
        return None if names is None else list(names)

    def check_sample(self, name: str, image: np.ndarray, label: Any) -> None:
        if image.ndim != 3 or tuple(image.shape[:2]) != self.image_size:
            raise DataError(
                f"{name} samples are {image.shape[:2]} but the datamodule expects {self.image_size}",
                key="dataset.image_size",
                fix="give the dataset node the same image_size (e.g. image_size: ${..image_size})",
            )
        if image.shape[2] != self.in_channels:
            raise DataError(
                f"{name} images have {image.shape[2]} channel(s) but the datamodule expects {self.in_channels}",
                key="dataset.in_channels",
                fix=f"set dataset.in_channels={image.shape[2]}",
            )
        if np.ndim(label) != 0 or not 0 <= int(label) < self.num_classes:
            raise DataError(
                f"{name} labels must be class ids in 0..{self.num_classes - 1}, got {label!r}",
                key="dataset.num_classes",
                fix="set dataset.num_classes to the dataset's number of classes",
            )

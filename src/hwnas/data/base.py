"""The dataset contracts and the one normalisation every dataset shares.

Datasets hand out raw ``uint8`` samples through ``raw(i)`` so augmentations can work on exact pixels
and labels; normalisation to float tensors happens once, batched, at the end (:func:`normalize_batch`),
which keeps per-sample overhead low. Two kinds of dataset exist: segmentation (an image and a label
mask per sample, :class:`PairedDataset`) and classification (an image and one class id,
:class:`LabelledDataset`); both share the normalisation, the resizing and the size parsing below.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from hwnas.utils.errors import DataError

# Fixed, dataset-independent normalisation: maps uint8 [0, 255] to roughly zero mean / unit std, the same
# for every channel (so grayscale and RGB follow one rule). Fixed so an exported model's preprocessing does
# not depend on which split statistics were computed on.
MEAN_VALUE: float = 0.5
STD_VALUE: float = 0.25
MEAN: tuple[float, float, float] = (MEAN_VALUE,) * 3
STD: tuple[float, float, float] = (STD_VALUE,) * 3


@runtime_checkable
class PairedDataset(Protocol):
    """What :class:`~hwnas.data.datamodule.SegmentationDataModule` needs from a dataset."""

    def __len__(self) -> int: ...

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image uint8 [H, W, 3], mask uint8 [H, W])`` with mask values in 0..18 or 255."""
        ...


@runtime_checkable
class LabelledDataset(Protocol):
    """What :class:`~hwnas.data.classification.ClassificationDataModule` needs from a dataset."""

    def __len__(self) -> int: ...

    def raw(self, index: int) -> tuple[np.ndarray, int]:
        """Return ``(image uint8 [H, W, C], class id)`` with ``C`` 1 (grayscale) or 3 (RGB)."""
        ...


def normalize_batch(images: np.ndarray) -> torch.Tensor:
    """Turn ``uint8 [N, H, W, C]`` images into normalised ``float32 [N, C, H, W]`` tensors.

    Args:
        images: A batch of images, channels last (any ``C``: 3 for RGB, 1 for grayscale).

    Returns:
        The batch as a contiguous float32 tensor, channels first, normalised with :data:`MEAN`/:data:`STD`.
    """
    if not images.flags.writeable:  # read-only views of a cache: torch wants writable memory
        images = images.copy()
    c = int(images.shape[-1])
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor((MEAN_VALUE,) * c, dtype=torch.float32).view(1, c, 1, 1) * 255.0
    std = torch.tensor((STD_VALUE,) * c, dtype=torch.float32).view(1, c, 1, 1) * 255.0
    return ((x - mean) / std).contiguous()


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn one raw pair into ``(float32 [C, H, W] normalised image, int64 [H, W] mask)``; a class id as
    the second item becomes an ``int64`` scalar tensor."""
    x = normalize_batch(image[None])[0]
    y = torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())
    return x, y


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 [H, W, C]`` (``C`` 1 or 3) to ``size = (H', W')`` bilinearly; unchanged if equal."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    if image.shape[-1] == 1:
        out = Image.fromarray(np.ascontiguousarray(image[..., 0])).resize((w, h), Image.BILINEAR)
        return np.asarray(out, dtype=np.uint8)[..., None]
    out = Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def parse_image_size(
    image_size: int | tuple[int, int] | list[int], *, key: str = "dataset.image_size"
) -> tuple[int, int]:
    """Normalise an ``int`` or ``[H, W]`` image size to a ``(H, W)`` tuple of positive ints.

    Raises:
        DataError: When the value is not one or two positive integers.
    """
    try:
        if isinstance(image_size, int | np.integer):
            size = (int(image_size), int(image_size))
        else:
            h, w = (int(v) for v in image_size)
            size = (h, w)
    except (TypeError, ValueError):
        size = None
    if size is None or min(size) < 8:
        raise DataError(
            f"image_size must be an int or [H, W] of ints >= 8, got {image_size!r}",
            key=key,
            fix=f"set {key}=64 (or e.g. [64,96])",
        )
    return size


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A seeded permutation of ``range(len(labels))`` in which every prefix is close to class-balanced.

    Cutting splits off its front (test first, then validation, then training) gives every split about
    the dataset's class proportions, and a split's contents depend only on the counts cut before it and
    on its own count, never on later ones (a smaller training set leaves test and validation unchanged).
    """
    labels = np.asarray(labels)
    perm = np.random.default_rng(seed).permutation(len(labels))
    # Within-class rank of each permuted sample, as a fraction of its class: interleaves the classes.
    position = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels[perm] == c)
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    return perm[np.argsort(position, kind="stable")]

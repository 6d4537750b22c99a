"""The dataset contract and the one normalisation every face dataset shares.

Datasets hand out raw ``uint8`` pairs through ``raw(i)`` so paired augmentations can work on exact
pixels and labels; normalisation to float tensors happens once, batched, at the end
(:func:`normalize_batch`), which keeps per-sample overhead low.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from hwnas.utils.errors import DataError

# Fixed, dataset-independent normalisation: maps uint8 [0, 255] to roughly zero mean / unit std. Fixed so
# an exported model's preprocessing does not depend on which split statistics were computed on.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.25, 0.25, 0.25)


@runtime_checkable
class PairedDataset(Protocol):
    """What :class:`~hwnas.data.datamodule.SegmentationDataModule` needs from a dataset."""

    def __len__(self) -> int: ...

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(image uint8 [H, W, 3], mask uint8 [H, W])`` with mask values in 0..18 or 255."""
        ...


def normalize_batch(images: np.ndarray) -> torch.Tensor:
    """Turn ``uint8 [N, H, W, 3]`` images into normalised ``float32 [N, 3, H, W]`` tensors.

    Args:
        images: A batch of RGB images, channels last.

    Returns:
        The batch as a contiguous float32 tensor, channels first, normalised with :data:`MEAN`/:data:`STD`.
    """
    if not images.flags.writeable:  # read-only views of a cache: torch wants writable memory
        images = images.copy()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(STD, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return ((x - mean) / std).contiguous()


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn one raw pair into ``(float32 [3, H, W] normalised image, int64 [H, W] mask)``."""
    x = normalize_batch(image[None])[0]
    y = torch.from_numpy(np.asarray(mask, dtype=np.int64).copy())
    return x, y


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

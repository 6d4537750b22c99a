"""The training-transform protocol the datamodules apply: a transform is ``t(image, mask, rng) -> (image,
mask)`` on ``uint8`` arrays (``mask=None`` for classification). The transforms themselves are training
tricks (:mod:`hwnas.tricks.augment`), instantiated from ``tricks.augment`` and handed to the datamodule;
data never imports them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Pair = tuple[np.ndarray, np.ndarray | None]


def apply_paired(
    transforms: Sequence, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
) -> Pair:
    """Apply ``transforms`` in order to one ``(image, mask)`` pair (``mask=None``: the image alone)."""
    for t in transforms:
        image, mask = t(image, mask, rng)
    return image, mask


def apply_image(transforms: Sequence, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply ``transforms`` in order to an image without a mask (classification: labels never change)."""
    return apply_paired(transforms, image, None, rng)[0]

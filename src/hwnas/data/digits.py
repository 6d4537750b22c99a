"""scikit-learn's handwritten digits: 1797 real 8x8 grayscale images of the digits 0-9, the embedded
default for classification.

The images (the UCI "optical recognition of handwritten digits" test set) ship inside the scikit-learn
wheel and are read with ``sklearn.datasets.load_digits``: nothing is downloaded, ever. Pixel values 0..16
are scaled to 0..255 and the images resized bilinearly to ``image_size`` (default 16: a CIFAR-style net's
two stride-2 reductions still leave 4x4). The train/val/test split is a seeded, class-stratified cut of
the 1797 images (:func:`~hwnas.data.base.stratified_order`): the test split is cut first, so it does not
change when the training or validation counts do.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from hwnas.data.base import parse_image_size, resize_image, stratified_order, to_tensors
from hwnas.utils.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
NUM_IMAGES = 1797


@functools.lru_cache(maxsize=4)
def load_images(image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 images as read-only ``uint8 [N, H, W, 1]`` at ``image_size``, and their ``int64 [N]`` labels."""
    from sklearn.datasets import load_digits  # a second or so to import: only when digits are used

    data = load_digits()
    pixels = np.rint(np.asarray(data.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    images = np.stack([resize_image(im[..., None], image_size) for im in pixels])
    labels = np.asarray(data.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(
    labels: np.ndarray, *, num_train: int | None, num_val: int, num_test: int, seed: int
) -> dict[str, np.ndarray]:
    """Sorted image indices of each split: test, then validation, then training cut off a stratified order.

    Raises:
        DataError: A negative count, or counts that add up to more images than there are.
    """
    n = len(labels)
    counts = {"test": num_test, "val": num_val, "train": num_train}
    for name, count in counts.items():
        if count is not None and int(count) < 0:
            raise DataError(
                f"sample count must be >= 0, got {count}",
                key=f"dataset.dataset.num_{name}",
                fix=f"set dataset.dataset.num_{name} to a positive integer",
            )
    n_test, n_val = int(num_test), int(num_val)
    n_train = n - n_test - n_val if num_train is None else int(num_train)
    if n_test + n_val + n_train > n or n_train < 0:
        raise DataError(
            f"num_train + num_val + num_test = {n_train} + {n_val} + {n_test} is more than the {n} images",
            key="dataset.dataset.num_train",
            fix=f"keep the three within {n} (num_train=null takes all the images left)",
        )
    order = stratified_order(labels, seed)
    cuts = np.cumsum([0, n_test, n_val, n_train])
    return {name: np.sort(order[cuts[i] : cuts[i + 1]]) for i, name in enumerate(("test", "val", "train"))}


class Digits(Dataset):
    """One split of scikit-learn's 8x8 handwritten digits, upsampled to ``image_size``.

    Args:
        split: ``"train"``, ``"val"`` (the search's selection split) or ``"test"`` (held out, final stage only).
        image_size: ``H=W`` as an int, or ``[H, W]`` (at least 8).
        num_train: Training images; ``None`` = every image not in validation or test (1100 by default).
        num_val: Validation images.
        num_test: Test images.
        split_seed: Seeds the split; fixed by default so every run (any ``seed``) is tested on the same images.
    """

    class_names = CLASS_NAMES

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int | tuple[int, int] | list[int] = 16,
        num_train: int | None = None,
        num_val: int = 300,
        num_test: int = 397,
        split_seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", key="split", choices=SPLITS)
        self.split = split
        self.image_size = parse_image_size(image_size)
        self._images, labels = load_images(self.image_size)
        self.indices = split_indices(
            labels, num_train=num_train, num_val=num_val, num_test=num_test, seed=int(split_seed)
        )[split]
        self.labels = labels[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, index: int) -> tuple[np.ndarray, int]:
        """Return image ``index`` of the split as ``(uint8 [H, W, 1] read-only view, class id)``."""
        return self._images[self.indices[index]], int(self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(float32 [1, H, W] normalised image, int64 class id)``."""
        return to_tensors(*self.raw(index))

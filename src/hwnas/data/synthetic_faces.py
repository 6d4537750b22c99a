"""Procedurally generated faces labelled with the 19 FaceSynthetics classes: the offline default dataset.

Image ``i`` of a split is a pure function of ``(seed, split, i, image_size)``: it is the same whatever
order it is read in and in any worker process, so runs are reproducible without shipping data. Images
are drawn directly at the target resolution by :func:`hwnas.data._render.render_face`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hwnas.data._render import render_face
from hwnas.data.base import parse_image_size, to_tensors
from hwnas.utils.errors import DataError

# Bump whenever drawing changes, so stale caches are never read.
RENDER_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "val", "test")


class SyntheticFaces(Dataset):
    """A split of procedurally generated faces with per-pixel labels.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``; each split draws from its own random stream.
        image_size: ``H=W`` as an int, or ``[H, W]``.
        num_train: Number of training images.
        num_val: Number of validation images.
        num_test: Number of test images.
        num_samples: If given, overrides the per-split count above.
        seed: Master seed; different seeds give different datasets.
        cache_dir: If given, the whole split is generated once and stored there as an ``.npz`` keyed by
            version, seed, split, size and count; ``None`` generates on the fly.
        in_memory: Keep images generated on the fly, so later epochs do not redraw them.
    """

    def __init__(
        self,
        split: str = "train",
        *,
        image_size: int | tuple[int, int] | list[int] = 64,
        num_train: int = 1536,
        num_val: int = 256,
        num_test: int = 0,
        num_samples: int | None = None,
        seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        in_memory: bool = True,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", key="split", choices=SPLITS)
        self.split = split
        self.image_size = parse_image_size(image_size)
        counts = {"train": num_train, "val": num_val, "test": num_test}
        self.num_samples = int(counts[split] if num_samples is None else num_samples)
        if self.num_samples < 0:
            raise DataError(
                f"sample count must be >= 0, got {self.num_samples}",
                key=f"dataset.num_{split}",
                fix=f"set dataset.num_{split} to a positive integer",
            )
        self.seed = int(seed)
        self._stream = SPLITS.index(split)
        self._images: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        self._done: np.ndarray | None = None
        self.cache_path = None if cache_dir is None else Path(cache_dir) / self._cache_name()
        if self.cache_path is not None:
            self._images, self._masks = self._load_or_build(self.cache_path)
            self._done = np.ones(self.num_samples, dtype=bool)
        elif in_memory:
            h, w = self.image_size
            self._images = np.empty((self.num_samples, h, w, 3), dtype=np.uint8)
            self._masks = np.empty((self.num_samples, h, w), dtype=np.uint8)
            self._done = np.zeros(self.num_samples, dtype=bool)

    def __len__(self) -> int:
        return self.num_samples

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw sample ``index`` from scratch (no cache): ``(uint8 [H, W, 3], uint8 [H, W])``."""
        rng = np.random.default_rng((self.seed, self._stream, int(index)))
        return render_face(rng, *self.image_size)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` as ``(image uint8 [H, W, 3], mask uint8 [H, W])``, masks in 0..18.

        Raises:
            IndexError: When ``index`` is out of range (ends iteration over the dataset).
        """
        index = int(index)
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        if self._done is None:
            return self.render(index)
        if not self._done[index]:
            self._images[index], self._masks[index] = self.render(index)
            self._done[index] = True
        image, mask = self._images[index], self._masks[index]
        image.flags.writeable = mask.flags.writeable = False  # views of the store: transforms must copy
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(float32 [3, H, W] normalised image, int64 [H, W] mask)``."""
        return to_tensors(*self.raw(index))

    def _cache_name(self) -> str:
        h, w = self.image_size
        return (
            f"synthetic_faces-v{RENDER_VERSION}-seed{self.seed}-{self.split}-{h}x{w}-n{self.num_samples}.npz"
        )

    def _load_or_build(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        if path.is_file():
            try:
                with np.load(path) as f:
                    images, masks = f["images"], f["masks"]
                if len(images) == self.num_samples and images.shape[1:3] == self.image_size:
                    return images, masks
            except (OSError, ValueError, KeyError):
                pass  # a corrupt or partial cache is rebuilt below
        h, w = self.image_size
        images = np.empty((self.num_samples, h, w, 3), dtype=np.uint8)
        masks = np.empty((self.num_samples, h, w), dtype=np.uint8)
        for i in range(self.num_samples):
            images[i], masks[i] = self.render(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: concurrent runs (e.g. parallel search workers) never read a half-written file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, images=images, masks=masks)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return images, masks

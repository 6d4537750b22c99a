"""Microsoft's FaceSynthetics renders (https://github.com/microsoft/FaceSynthetics), read from disk.

The release is a flat folder of ``000000.png`` images and ``000000_seg.png`` masks at 512x512, mask
values 0..18 (the classes in :mod:`hwnas.data.labels`) and 255 for "ignore". Images are resized
bilinearly and masks by nearest neighbour to ``image_size`` on read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from hwnas.data.base import parse_image_size, to_tensors
from hwnas.utils.errors import DataError

_SOURCE = "https://github.com/microsoft/FaceSynthetics"
_FIX = (
    f"download the data from {_SOURCE} (e.g. unzip dataset_100000.zip, or the 100-image sample "
    "dataset_100.zip) and set dataset.root=/path/to/dir (the folder holding 000000.png and 000000_seg.png)"
)


def find_pairs(root: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Return sorted ``(image, mask)`` path pairs in ``root``.

    Raises:
        DataError: When ``root`` is missing, not a directory, or holds no ``<id>.png``/``<id>_seg.png`` pair.
    """
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"FaceSynthetics root {str(path)!r} does not exist", key="dataset.root", fix=_FIX)
    if not path.is_dir():
        raise DataError(f"FaceSynthetics root {str(path)!r} is not a directory", key="dataset.root", fix=_FIX)
    pairs = []
    for seg in sorted(path.glob("*_seg.png")):
        image = seg.with_name(seg.name[: -len("_seg.png")] + ".png")
        if image.is_file():
            pairs.append((image, seg))
    if not pairs:
        raise DataError(
            f"no FaceSynthetics image/mask pairs (<id>.png + <id>_seg.png) in {str(path)!r}",
            key="dataset.root",
            fix=_FIX,
        )
    return pairs


class FaceSynthetics(Dataset):
    """One split of a FaceSynthetics folder, cut from the sorted ids: train, then validation, then test.

    The last ``test_fraction`` of the ids are the held-out test split (only the final stage reads it,
    never the search), the ``val_fraction`` before them are validation (the search's selection split).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        root: The folder with ``<id>.png`` and ``<id>_seg.png`` files.
        image_size: ``H=W`` as an int, or ``[H, W]``, to resize to.
        val_fraction: Share of the (sorted) samples held out for validation; at least one when > 0.
        test_fraction: Share of the (sorted) samples held out for the final test; at least one when > 0.
        max_samples: If given, use only the first ``max_samples`` pairs (quick experiments).
    """

    def __init__(
        self,
        split: str = "train",
        *,
        root: str | os.PathLike[str],
        image_size: int | tuple[int, int] | list[int] = 256,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_samples: int | None = None,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise DataError(f"unknown split {split!r}", key="split", choices=("train", "val", "test"))
        for key, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= float(frac) < 1.0:
                raise DataError(
                    f"{key} must be in [0, 1), got {frac}",
                    key=f"dataset.dataset.{key}",
                    fix="set it to e.g. 0.1",
                )
        if float(val_fraction) + float(test_fraction) >= 1.0:
            raise DataError(
                f"val_fraction + test_fraction = {float(val_fraction) + float(test_fraction)} leaves no training data",
                key="dataset.dataset.val_fraction",
                fix="keep val_fraction + test_fraction below 1 (e.g. 0.1 and 0.1)",
            )
        pairs = find_pairs(root)
        if max_samples is not None:
            pairs = pairs[: int(max_samples)]

        def count(frac: float, rest: int) -> int:
            n = int(round(len(pairs) * float(frac)))
            return min(max(n, 1), rest - 1) if frac > 0 and rest > 1 else 0

        n_test = count(test_fraction, len(pairs))
        n_val = count(val_fraction, len(pairs) - n_test)
        cut_val, cut_test = len(pairs) - n_test - n_val, len(pairs) - n_test
        self.split = split
        self.root = Path(root)
        self.image_size = parse_image_size(image_size)
        self.pairs = {
            "train": pairs[:cut_val],
            "val": pairs[cut_val:cut_test],
            "test": pairs[cut_test:],
        }[split]

    def __len__(self) -> int:
        return len(self.pairs)

    def raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Return sample ``index`` as ``(image uint8 [H, W, 3], mask uint8 [H, W])`` at ``image_size``."""
        image_path, mask_path = self.pairs[index]
        h, w = self.image_size
        try:
            with Image.open(image_path) as im:
                image = im.convert("RGB")
                if image.size != (w, h):
                    image = image.resize((w, h), Image.BILINEAR)
            with Image.open(mask_path) as im:
                mask = im if im.mode in ("L", "P") else im.convert("L")
                if mask.size != (w, h):
                    mask = mask.resize((w, h), Image.NEAREST)
                mask = np.asarray(mask, dtype=np.uint8)
        except OSError as e:
            raise DataError(f"cannot read {image_path.name}/{mask_path.name}: {e}", key="dataset.root") from e
        return np.asarray(image, dtype=np.uint8), mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(float32 [3, H, W] normalised image, int64 [H, W] mask)``."""
        return to_tensors(*self.raw(index))

"""CIFAR-10 read from disk in the format torchvision stores it: 60000 32x32 RGB images, 10 classes.

The "python version" of the release: ``<root>/cifar-10-batches-py/`` holding ``data_batch_1`` ..
``data_batch_5`` (50000 training images) and ``test_batch`` (10000), each a pickled dict with ``b"data"``
(``uint8 [N, 3072]``, each row the red, green and blue 32x32 planes) and ``b"labels"``. ``root`` may also
be that folder itself. The files are read directly, without torchvision: it is not a dependency, and its
wheels pin a torch build of their own (this keeps the CPU torch pin safe). Nothing is ever downloaded: a
missing folder is a :class:`~hwnas.utils.errors.DataError` that says where the data comes from. The batch
files are Python pickles, so only point ``dataset.root`` at data you trust (torchvision reads them the same
way).

Splits: validation (the search's selection split) is a seeded, class-stratified hold-out of the training
images (5000 by default), training is the rest, and test (the final stage's held-out split) is
``test_batch``.
"""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hwnas.data.base import parse_image_size, resize_image, stratified_order, to_tensors
from hwnas.utils.errors import DataError

SPLITS: tuple[str, ...] = ("train", "val", "test")
CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
FOLDER = "cifar-10-batches-py"
TRAIN_FILES: tuple[str, ...] = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar.html"
_FIX = (
    f"download the CIFAR-10 python version (cifar-10-python.tar.gz) from {_SOURCE} and extract it under "
    f"a folder, or run `torchvision.datasets.CIFAR10(root, download=True)` once on a machine with network; "
    f"then set dataset.root=/path/to/that/folder (the one holding {FOLDER}/, or {FOLDER}/ itself)"
)


def find_batches(root: str | os.PathLike[str] | None) -> Path:
    """The ``cifar-10-batches-py`` folder under (or at) ``root``, with all six batch files in it.

    Raises:
        DataError: ``root`` unset or missing, or the folder or one of its batch files not found.
    """
    if root is None or not str(root).strip():
        raise DataError(
            "CIFAR-10 needs its data folder, and dataset.root is not set", key="dataset.root", fix=_FIX
        )
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"CIFAR-10 root {str(path)!r} does not exist", key="dataset.root", fix=_FIX)
    if not path.is_dir():
        raise DataError(f"CIFAR-10 root {str(path)!r} is not a directory", key="dataset.root", fix=_FIX)
    folder = path if path.name == FOLDER or (path / TEST_FILE).is_file() else path / FOLDER
    if not folder.is_dir():
        raise DataError(
            f"no {FOLDER}/ folder in {str(path)!r} (looked for {str(folder)!r})", key="dataset.root", fix=_FIX
        )
    missing = [n for n in (*TRAIN_FILES, TEST_FILE) if not (folder / n).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 folder {str(folder)!r} is incomplete: {', '.join(missing)} missing "
            f"(needs {', '.join(TRAIN_FILES)} and {TEST_FILE})",
            key="dataset.root",
            fix=_FIX,
        )
    return folder


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as ``(uint8 [N, 32, 32, 3], int64 [N])``."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        data = entry.get(b"data", entry.get("data")) if isinstance(entry, dict) else None
        labels = entry.get(b"labels", entry.get("labels")) if isinstance(entry, dict) else None
        data = np.asarray(data, dtype=np.uint8) if data is not None else None
        labels = np.asarray(labels, dtype=np.int64) if labels is not None else None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"cannot read CIFAR-10 batch {str(path)!r}: {exc}", key="dataset.root", fix=_FIX
        ) from exc
    if data is None or labels is None or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(
            f"{str(path)!r} is not a CIFAR-10 python batch (a dict with b'data' uint8 [N, 3072] and b'labels')",
            key="dataset.root",
            fix=_FIX,
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


@functools.lru_cache(maxsize=4)
def _read(files: tuple[tuple[str, int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The concatenated batches, cached per process by (path, size, mtime): train and val read them once."""
    parts = [_read_batch(Path(p)) for p, _, _ in files]
    images = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
    labels = np.concatenate([p[1] for p in parts])
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 [N, 32, 32, 3]`` (read-only) and labels ``int64 [N]`` of the batch files ``names``."""
    stamps = []
    for n in names:
        st = (folder / n).stat()
        stamps.append((str(folder / n), st.st_size, st.st_mtime_ns))
    return _read(tuple(stamps))


class CIFAR10(Dataset):
    """One split of CIFAR-10 from torchvision's on-disk format.

    Args:
        split: ``"train"``, ``"val"`` (hold-out of the training batches) or ``"test"`` (``test_batch``).
        root: The folder holding ``cifar-10-batches-py/`` (or that folder itself).
        image_size: ``H=W`` as an int, or ``[H, W]``; images are resized bilinearly on read when not 32.
        num_val: Training images held out for validation.
        num_train: Cap on training images (``None`` = all the rest, 45000 by default); for quick runs.
        num_test: Cap on test images (``None`` = all 10000).
        split_seed: Seeds the validation hold-out; fixed by default so every run (any ``seed``) selects on
            the same images.
    """

    class_names = CLASS_NAMES

    def __init__(
        self,
        split: str = "train",
        *,
        root: str | os.PathLike[str] | None = None,
        image_size: int | tuple[int, int] | list[int] = 32,
        num_val: int = 5000,
        num_train: int | None = None,
        num_test: int | None = None,
        split_seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}", key="split", choices=SPLITS)
        folder = find_batches(root)
        self.split = split
        self.root = folder
        self.image_size = parse_image_size(image_size)
        for key, value in (("num_val", num_val), ("num_train", num_train), ("num_test", num_test)):
            if value is not None and int(value) < 0:
                raise DataError(
                    f"must be >= 0, got {value}", key=f"dataset.dataset.{key}", fix="set it to 0 or more"
                )
        if split == "test":
            self._images, labels = load_batches(folder, (TEST_FILE,))
            indices = np.arange(len(labels) if num_test is None else min(int(num_test), len(labels)))
        else:
            self._images, labels = load_batches(folder, TRAIN_FILES)
            n_val = int(num_val)
            if n_val >= len(labels):
                raise DataError(
                    f"num_val={n_val} leaves none of the {len(labels)} training images for training",
                    key="dataset.dataset.num_val",
                    fix="e.g. dataset.dataset.num_val=5000",
                )
            order = stratified_order(labels, int(split_seed))
            indices = order[:n_val] if split == "val" else order[n_val:]
            if split == "train" and num_train is not None:
                indices = indices[: int(num_train)]
            indices = np.sort(indices)
        self.indices = indices
        self.labels = labels[indices]

    def __len__(self) -> int:
        return len(self.indices)

    def raw(self, index: int) -> tuple[np.ndarray, int]:
        """Return image ``index`` of the split as ``(uint8 [H, W, 3], class id)`` at ``image_size``."""
        image = self._images[self.indices[index]]
        return resize_image(image, self.image_size), int(self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(float32 [3, H, W] normalised image, int64 class id)``."""
        return to_tensors(*self.raw(index))

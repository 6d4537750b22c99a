"""The datamodule contract suite (:class:`~hwnas.data.datamodule.ImageDataModule` and its kind).

Subclass :class:`DataModuleContract` and provide ``make_datamodule``: a callable with no arguments that
builds a fresh datamodule (twice, to check that equal seeds give equal data); keep it small::

    class TestMyData(DataModuleContract):
        @pytest.fixture
        def make_datamodule(self):
            return lambda: MyDataModule(root=..., batch_size=4, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from hwnas.data.labels import IGNORE_INDEX

TASKS = ("segmentation", "classification")


def first_batch(loader: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return next(iter(loader))


class DataModuleContract:
    """Rules every datamodule keeps: the shapes the models, the losses and the profilers rely on, and the
    seeds that make a run reproducible. Fixture: ``make_datamodule`` (yours, required)."""

    @pytest.fixture
    def datamodule(self, make_datamodule: Callable[[], Any]) -> Any:
        return make_datamodule()

    def _check_batch(self, dm: Any, batch: Any, split: str) -> None:
        x, y = batch
        c, (h, w) = int(dm.in_channels), dm.image_size
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32, f"{split}: images must be float32"
        assert x.ndim == 4 and tuple(x.shape[1:]) == (c, h, w), (
            f"{split}: images {tuple(x.shape)}, not (N, {c}, {h}, {w})"
        )
        assert 1 <= x.shape[0] <= dm.batch_size
        assert torch.isfinite(x).all()
        assert isinstance(y, torch.Tensor) and y.dtype == torch.int64, f"{split}: labels must be int64"
        expected = (x.shape[0],) if dm.task == "classification" else (x.shape[0], h, w)
        assert tuple(y.shape) == expected, f"{split}: labels {tuple(y.shape)}, expected {expected}"
        ok = (y >= 0) & (y < dm.num_classes)
        if dm.task == "segmentation":
            ok |= y == IGNORE_INDEX
        assert ok.all(), f"{split}: labels {sorted(set(y[~ok].tolist()))[:5]} outside 0..{dm.num_classes - 1}"

    def test_describes_its_data(self, datamodule: Any) -> None:
        """Models are built with ``num_classes`` and ``in_channels``; profilers and ONNX export use
        ``input_shape``; the loss and metrics follow ``task``."""
        dm = datamodule
        assert dm.task in TASKS, f"task {dm.task!r} not in {TASKS}"
        assert isinstance(dm.num_classes, int) and dm.num_classes >= 2
        assert isinstance(dm.in_channels, int) and dm.in_channels >= 1
        h, w = dm.image_size
        assert dm.input_shape(2) == (2, dm.in_channels, h, w)
        assert len(dm.class_names) == dm.num_classes
        assert set(dm.f1_classes) <= set(range(dm.num_classes))

    def test_loaders_give_batches_of_the_declared_shapes(self, datamodule: Any) -> None:
        """Every split's batches: ``float32 (N, C, H, W)`` images and ``int64`` labels in range (masks may
        hold the ignore index 255). The final stage reads the test split."""
        datamodule.setup("fit")
        self._check_batch(datamodule, first_batch(datamodule.train_dataloader()), "train")
        self._check_batch(datamodule, first_batch(datamodule.val_dataloader()), "val")
        assert datamodule.has_split("test"), "the final stage needs a test split"
        self._check_batch(datamodule, first_batch(datamodule.test_dataloader()), "test")

    def test_every_label_is_in_range(self, datamodule: Any) -> None:
        """All of the validation split (the selection data) and a few training batches, not only sample 0."""
        for split, loader in (("val", datamodule.val_dataloader()), ("train", datamodule.train_dataloader())):
            for i, batch in enumerate(loader):
                self._check_batch(datamodule, batch, split)
                if split == "train" and i >= 3:
                    break

    def test_equal_seeds_give_equal_data(self, make_datamodule: Callable[[], Any]) -> None:
        """Two datamodules of one config give the same training order and augmentation and the same
        validation data: candidates compare fairly and a rerun repeats itself."""
        a, b = make_datamodule(), make_datamodule()
        for loader in ("train_dataloader", "val_dataloader"):
            xa, ya = first_batch(getattr(a, loader)())
            xb, yb = first_batch(getattr(b, loader)())
            assert torch.equal(xa, xb) and torch.equal(ya, yb), f"{loader}: equal seeds, different batches"

    def test_validation_is_not_shuffled(self, datamodule: Any) -> None:
        """Each candidate is scored on the same validation batches, in the same order."""
        first = [first_batch(datamodule.val_dataloader()) for _ in range(2)]
        assert torch.equal(first[0][0], first[1][0]) and torch.equal(first[0][1], first[1][1])

    def test_calibration_batches_are_fixed_real_images(self, datamodule: Any) -> None:
        """int8 targets calibrate on these: the same images every time, shaped like a model input."""
        a = datamodule.calibration_batches(2, 3)
        b = datamodule.calibration_batches(2, 3)
        assert len(a) == 2
        for x, y in zip(a, b, strict=True):
            assert isinstance(x, np.ndarray) and x.dtype == np.float32
            assert x.shape == datamodule.input_shape(3)
            assert np.array_equal(x, y)

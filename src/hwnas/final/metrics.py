"""Dataset-level segmentation (and classification) metrics from one confusion matrix (plain numpy).

Why one matrix for the whole split: a per-image mean over-weights small faces and images where a
class is a handful of pixels; summing pixel counts over the split first, then dividing, is what the
reference face-segmentation workflow and most segmentation benchmarks report.

- **mIoU**: ``IoU_c = TP_c / (TP_c + FP_c + FN_c)`` for each of the ``K`` classes, averaged over the
  classes that occur in the split's ground truth or predictions (a class absent from both has no IoU;
  on the default data all 19 occur).
- **F1** (the reference device metric): ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)`` for the face classes
  1–17 (background 0 and facewear 18 left out), unweighted mean over those classes (macro F1).
  Pixels labelled ``ignore_index`` are counted nowhere.

Classification is the same matrix with one "pixel" per image: ``acc`` is then top-1 accuracy, and F1
averages over every class (``f1_classes``, which the datamodule supplies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hwnas.data.labels import F1_CLASSES, IGNORE_INDEX, NUM_CLASSES

__all__ = ["F1_CLASSES", "ConfusionMatrix"]


@dataclass
class ConfusionMatrix:
    """Accumulates ``counts[true, pred]`` pixel counts over a split.

    Args:
        num_classes: ``K``.
        ignore_index: Ground-truth value that is skipped.
        f1_classes: Classes :meth:`f1` and :meth:`summary` average over (default: the face classes 1-17).
    """

    num_classes: int = NUM_CLASSES
    ignore_index: int = IGNORE_INDEX
    f1_classes: Sequence[int] = F1_CLASSES
    counts: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.counts = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Add a batch: ``pred`` and ``target`` are integer label maps (or class ids) of the same shape."""
        pred = np.asarray(pred).reshape(-1).astype(np.int64, copy=False)
        target = np.asarray(target).reshape(-1).astype(np.int64, copy=False)
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.size} pixels but target has {target.size}")
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        k = self.num_classes
        if target.size and (target.max() >= k or pred.max() >= k or pred.min() < 0 or target.min() < 0):
            raise ValueError(f"labels outside 0..{k - 1} (and not ignore_index={self.ignore_index})")
        self.counts += np.bincount(target * k + pred, minlength=k * k).reshape(k, k)

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tp = np.diag(self.counts).astype(np.float64)
        fp = self.counts.sum(axis=0) - tp
        fn = self.counts.sum(axis=1) - tp
        return tp, fp, fn

    def iou_per_class(self) -> np.ndarray:
        """IoU of every class (NaN for a class absent from both ground truth and predictions)."""
        tp, fp, fn = self._parts()
        union = tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def f1_per_class(self) -> np.ndarray:
        """F1 (Dice) of every class (NaN for a class absent from both)."""
        tp, fp, fn = self._parts()
        denom = 2 * tp + fp + fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, 2 * tp / denom, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes present in the split (ground truth or prediction)."""
        iou = self.iou_per_class()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def f1(self, classes: Sequence[int] | None = None) -> float:
        """Macro F1 over ``classes`` (default ``f1_classes``); a class absent from the split counts as missing."""
        classes = self.f1_classes if classes is None else classes
        f1 = self.f1_per_class()[[c for c in classes if c < self.num_classes]]
        return float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")

    def pixel_accuracy(self) -> float:
        total = self.counts.sum()
        return float(np.trace(self.counts) / total) if total else float("nan")

    def summary(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}miou``, ``{prefix}f1``, ``{prefix}acc`` as plain floats."""
        return {f"{prefix}miou": self.miou(), f"{prefix}f1": self.f1(), f"{prefix}acc": self.pixel_accuracy()}

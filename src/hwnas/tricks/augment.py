"""Paired augmentations for segmentation: each transforms an image and its label mask together.

Every transform is a small callable ``t(image, mask, rng) -> (image, mask)`` on ``uint8 [H, W, 3]`` images
and ``uint8 [H, W]`` masks, drawing all randomness from the ``numpy`` generator it is given, so the
datamodule can make augmentation reproducible per ``(seed, epoch, index)``. Transforms never write into
their inputs (datasets may hand out read-only views of a cache) and keep the image size unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.data.labels import FLIP_SWAP, IGNORE_INDEX

Pair = tuple[np.ndarray, np.ndarray]

__all__ = ["ColorJitter", "Cutout", "HFlipSwap", "ScaleCropJitter", "apply_paired"]


def apply_paired(
    transforms: Sequence, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``transforms`` in order to one ``(image, mask)`` pair."""
    for t in transforms:
        image, mask = t(image, mask, rng)
    return image, mask


class HFlipSwap:
    """Mirror left-right with probability ``p``, swapping left/right eye, brow and ear labels.

    A plain flip would teach the net that a left eye may sit on the image's left; swapping through
    :data:`~hwnas.data.labels.FLIP_SWAP` keeps labels consistent with the mirrored anatomy.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        return np.ascontiguousarray(image[:, ::-1]), FLIP_SWAP[mask[:, ::-1]]

    def __repr__(self) -> str:
        return f"HFlipSwap(p={self.p})"


def _axis_map(size: int, zoomed: int, offset: int) -> tuple[slice, np.ndarray]:
    """For one axis zoomed from ``size`` to ``zoomed`` then cropped/padded back to ``size`` at ``offset``:
    the output slice that shows image content, and the source coordinate of each pixel in it."""
    if zoomed >= size:
        out, q = slice(0, size), np.arange(offset, offset + size)
    else:
        out, q = slice(offset, offset + zoomed), np.arange(zoomed)
    return out, ((q + 0.5) * (size / zoomed) - 0.5).astype(np.float32)


def _bilinear_taps(coord: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = np.clip(coord, 0, size - 1)
    i0 = c.astype(np.int64)
    return i0, np.minimum(i0 + 1, size - 1), c - i0


class ScaleCropJitter:
    """Zoom by a random factor in ``scale``, then crop or pad back to the original size at a random offset.

    Images resize bilinearly and masks by nearest neighbour (labels are never blended). Padded pixels get
    ``fill`` in the image (128: about zero after normalisation) and ``IGNORE_INDEX`` in the mask, so
    the loss never learns a class for content that does not exist.

    Args:
        scale: ``(low, high)`` zoom factors; ``> 1`` zooms in.
        p: Probability of applying the transform at all.
        fill: Image value for padded pixels.
    """

    def __init__(self, scale: Sequence[float] = (0.8, 1.2), p: float = 1.0, fill: int = 128) -> None:
        self.scale = (float(scale[0]), float(scale[1]))
        self.p = float(p)
        self.fill = int(fill)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        H, W = mask.shape
        f = rng.uniform(*self.scale)
        h, w = max(1, round(H * f)), max(1, round(W * f))
        if (h, w) == (H, W):
            return image, mask
        # Resample only the output window that shows content (separable: rows, then columns).
        oy, ox = int(rng.integers(0, abs(h - H) + 1)), int(rng.integers(0, abs(w - W) + 1))
        dst_y, sy = _axis_map(H, h, oy)
        dst_x, sx = _axis_map(W, w, ox)
        y0, y1, wy = _bilinear_taps(sy, H)
        x0, x1, wx = _bilinear_taps(sx, W)
        img = image.astype(np.float32)
        top = np.take(img, y0, axis=0)
        rows = top + (np.take(img, y1, axis=0) - top) * wy[:, None, None]
        left = np.take(rows, x0, axis=1)
        res = left + (np.take(rows, x1, axis=1) - left) * wx[None, :, None]
        out_img = np.full((H, W, 3), self.fill, dtype=np.uint8)
        out_img[dst_y, dst_x] = (res + 0.5).astype(np.uint8)
        ny = np.minimum(np.floor(sy + 0.5).astype(np.int64), H - 1)
        nx = np.minimum(np.floor(sx + 0.5).astype(np.int64), W - 1)
        out_msk = np.full((H, W), IGNORE_INDEX, dtype=np.uint8)
        out_msk[dst_y, dst_x] = np.take(np.take(mask, ny, axis=0), nx, axis=1)
        return out_img, out_msk

    def __repr__(self) -> str:
        return f"ScaleCropJitter(scale={self.scale}, p={self.p})"


class ColorJitter:
    """Random brightness, contrast and saturation changes; the mask is untouched.

    Each factor is drawn uniformly from ``[1 - x, 1 + x]``; ``0`` disables that change.
    """

    def __init__(
        self, brightness: float = 0.25, contrast: float = 0.25, saturation: float = 0.25, p: float = 1.0
    ) -> None:
        self.brightness, self.contrast, self.saturation = (
            float(brightness),
            float(contrast),
            float(saturation),
        )
        self.p = float(p)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        b, c, s = (rng.uniform(1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation))
        # All three are affine in RGB: saturation blends with grey, contrast with the mean grey (which
        # brightness scales and saturation keeps), so one 3x3 matrix and an offset do everything.
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        sat = s * np.eye(3, dtype=np.float32) + (1 - s) * np.outer(np.ones(3, dtype=np.float32), luma)
        x = image.reshape(-1, 3).astype(np.float32)
        mean_grey = float((x @ luma).mean()) * b
        out = x @ (b * c * sat).T + ((1 - c) * mean_grey + 0.5)
        return np.clip(out, 0, 255).astype(np.uint8).reshape(image.shape), mask

    def __repr__(self) -> str:
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation})"


class Cutout:
    """With probability ``p``, fill a random square of side ``size_frac * min(H, W)`` with ``fill``.

    By default the mask is left untouched: the labels under the patch are still the truth of the scene,
    and predicting them from context (the face's layout) is exactly the robustness cutout is meant to
    teach. ``ignore=True`` instead marks the patch ``IGNORE_INDEX``, for when that is deemed too hard.
    """

    def __init__(
        self, p: float = 0.5, size_frac: float = 0.25, *, fill: int = 128, ignore: bool = False
    ) -> None:
        self.p, self.size_frac, self.fill, self.ignore = float(p), float(size_frac), int(fill), bool(ignore)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        H, W = mask.shape
        k = max(1, round(self.size_frac * min(H, W)))
        cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))  # centre anywhere: patches may clip
        ys, xs = (
            slice(max(0, cy - k // 2), min(H, cy - k // 2 + k)),
            slice(max(0, cx - k // 2), min(W, cx - k // 2 + k)),
        )
        image = image.copy()
        image[ys, xs] = self.fill
        if self.ignore:
            mask = mask.copy()
            mask[ys, xs] = IGNORE_INDEX
        return image, mask

    def __repr__(self) -> str:
        return f"Cutout(p={self.p}, size_frac={self.size_frac}, ignore={self.ignore})"

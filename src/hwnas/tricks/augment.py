"""Paired augmentations: each transforms an image and, for segmentation, its label mask together.

Every transform is a small callable ``t(image, mask, rng) -> (image, mask)`` on ``uint8 [H, W, C]`` images
(``C`` 3, or 1 for grayscale) and ``uint8 [H, W]`` masks, drawing all randomness from the ``numpy``
generator it is given, so the datamodule can make augmentation reproducible per ``(seed, epoch, index)``.
Classification passes ``mask=None`` (:func:`apply_image`): the image is transformed exactly as it would be
with a mask, and the class id is untouched. Transforms never write into their inputs (datasets may hand
out read-only views of a cache) and keep the image size unchanged. Transforms that mirror the image say
so with ``mirrors = True``, so a dataset whose classes are not mirror-symmetric (digits) can leave them out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hwnas.data.labels import FLIP_SWAP, IGNORE_INDEX
from hwnas.data.transforms import Pair, apply_image, apply_paired

__all__ = [
    "ColorJitter",
    "Cutout",
    "HFlip",
    "HFlipSwap",
    "RandomCrop",
    "ScaleCropJitter",
    "apply_image",
    "apply_paired",
]


class HFlip:
    """Mirror left-right with probability ``p`` (image and mask alike, labels unchanged).

    For data whose classes look the same mirrored (CIFAR-10's animals and vehicles); faces need
    :class:`HFlipSwap`, and digits no flip at all.
    """

    mirrors = True

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def _flip_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(mask[:, ::-1])

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        return np.ascontiguousarray(image[:, ::-1]), None if mask is None else self._flip_mask(mask)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class HFlipSwap(HFlip):
    """Mirror left-right with probability ``p``, swapping left/right eye, brow and ear labels.

    A plain flip would teach the net that a left eye may sit on the image's left; swapping through
    :data:`~hwnas.data.labels.FLIP_SWAP` keeps labels consistent with the mirrored anatomy. Without a
    mask (classification) it is a plain :class:`HFlip`.
    """

    def _flip_mask(self, mask: np.ndarray) -> np.ndarray:
        return FLIP_SWAP[mask[:, ::-1]]


class RandomCrop:
    """Pad ``padding`` pixels on every side, then crop back to the original size at a random offset.

    The standard CIFAR augmentation (4-pixel padding). Padded pixels get ``fill`` in the image (128: about
    zero after normalisation, i.e. the mean) and ``IGNORE_INDEX`` in a mask.

    Args:
        padding: Pixels added on each side; the crop moves by up to ``2 * padding`` in each direction.
        p: Probability of applying the transform at all.
        fill: Image value for padded pixels.
    """

    def __init__(self, padding: int = 4, p: float = 1.0, fill: int = 128) -> None:
        self.padding, self.p, self.fill = int(padding), float(p), int(fill)

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p or self.padding <= 0:
            return image, mask
        pad = self.padding
        H, W = image.shape[:2]
        oy, ox = int(rng.integers(0, 2 * pad + 1)), int(rng.integers(0, 2 * pad + 1))
        # Output pixel (y, x) shows padded pixel (y + oy, x + ox), i.e. source (y + oy - pad, x + ox - pad).
        src_y = slice(max(0, oy - pad), min(H, H + oy - pad))
        src_x = slice(max(0, ox - pad), min(W, W + ox - pad))
        dst_y = slice(max(0, pad - oy), max(0, pad - oy) + (src_y.stop - src_y.start))
        dst_x = slice(max(0, pad - ox), max(0, pad - ox) + (src_x.stop - src_x.start))
        out_img = np.full_like(image, self.fill)
        out_img[dst_y, dst_x] = image[src_y, src_x]
        if mask is None:
            return out_img, None
        out_msk = np.full_like(mask, IGNORE_INDEX)
        out_msk[dst_y, dst_x] = mask[src_y, src_x]
        return out_img, out_msk

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, p={self.p})"


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

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        H, W = image.shape[:2]
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
        out_img = np.full((H, W, image.shape[2]), self.fill, dtype=np.uint8)
        out_img[dst_y, dst_x] = (res + 0.5).astype(np.uint8)
        if mask is None:
            return out_img, None
        ny = np.minimum(np.floor(sy + 0.5).astype(np.int64), H - 1)
        nx = np.minimum(np.floor(sx + 0.5).astype(np.int64), W - 1)
        out_msk = np.full((H, W), IGNORE_INDEX, dtype=np.uint8)
        out_msk[dst_y, dst_x] = np.take(np.take(mask, ny, axis=0), nx, axis=1)
        return out_img, out_msk

    def __repr__(self) -> str:
        return f"ScaleCropJitter(scale={self.scale}, p={self.p})"


class ColorJitter:
    """Random brightness, contrast and saturation changes; the mask is untouched.

    Each factor is drawn uniformly from ``[1 - x, 1 + x]``; ``0`` disables that change. On grayscale
    images saturation has nothing to change (the factor is still drawn, so the random stream is the same).
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

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        b, c, s = (rng.uniform(1 - x, 1 + x) for x in (self.brightness, self.contrast, self.saturation))
        # All three are affine in RGB: saturation blends with grey, contrast with the mean grey (which
        # brightness scales and saturation keeps), so one 3x3 matrix and an offset do everything. A
        # grayscale image is its own grey: the same formula, 1x1, with a "luma" of 1.
        ch = image.shape[-1]
        luma = (
            np.array([0.299, 0.587, 0.114], dtype=np.float32) if ch == 3 else np.full(ch, 1 / ch, np.float32)
        )
        sat = s * np.eye(ch, dtype=np.float32) + (1 - s) * np.outer(np.ones(ch, dtype=np.float32), luma)
        x = image.reshape(-1, ch).astype(np.float32)
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

    def __call__(self, image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> Pair:
        if rng.random() >= self.p:
            return image, mask
        H, W = image.shape[:2]
        k = max(1, round(self.size_frac * min(H, W)))
        cy, cx = int(rng.integers(0, H)), int(rng.integers(0, W))  # centre anywhere: patches may clip
        ys, xs = (
            slice(max(0, cy - k // 2), min(H, cy - k // 2 + k)),
            slice(max(0, cx - k // 2), min(W, cx - k // 2 + k)),
        )
        image = image.copy()
        image[ys, xs] = self.fill
        if self.ignore and mask is not None:
            mask = mask.copy()
            mask[ys, xs] = IGNORE_INDEX
        return image, mask

    def __repr__(self) -> str:
        return f"Cutout(p={self.p}, size_frac={self.size_frac}, ignore={self.ignore})"

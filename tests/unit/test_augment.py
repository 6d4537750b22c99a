"""Paired augmentations: shapes, dtypes, label handling, determinism, no writes into inputs."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.data.labels import FLIP_SWAP, IGNORE_INDEX, LABEL
from hwnas.data.synthetic_faces import SyntheticFaces
from hwnas.tricks.augment import ColorJitter, Cutout, HFlipSwap, ScaleCropJitter, apply_paired


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return SyntheticFaces(num_train=1, seed=0).raw(0)  # read-only views: transforms must not write


def test_flip_table_swaps_pairs_and_keeps_the_rest() -> None:
    assert FLIP_SWAP.dtype == np.uint8 and FLIP_SWAP.shape == (256,)
    for right, left in [("right_eye", "left_eye"), ("right_brow", "left_brow"), ("right_ear", "left_ear")]:
        assert FLIP_SWAP[LABEL[right]] == LABEL[left] and FLIP_SWAP[LABEL[left]] == LABEL[right]
    assert FLIP_SWAP[IGNORE_INDEX] == IGNORE_INDEX
    assert FLIP_SWAP[LABEL["nose"]] == LABEL["nose"] and FLIP_SWAP[0] == 0
    assert (FLIP_SWAP[FLIP_SWAP] == np.arange(256)).all()


def test_hflip_mirrors_pixels_and_swaps_left_right(pair) -> None:
    image, mask = pair
    out_img, out_mask = HFlipSwap(p=1.0)(image, mask, np.random.default_rng(0))
    np.testing.assert_array_equal(out_img, image[:, ::-1])
    # Pixels that were the right eye (image left) are now the left eye, on the image right.
    np.testing.assert_array_equal(out_mask[:, ::-1] == LABEL["left_eye"], mask == LABEL["right_eye"])
    np.testing.assert_array_equal(out_mask[:, ::-1] == LABEL["right_brow"], mask == LABEL["left_brow"])
    np.testing.assert_array_equal(out_mask[:, ::-1] == LABEL["skin"], mask == LABEL["skin"])
    same_img, same_mask = HFlipSwap(p=0.0)(image, mask, np.random.default_rng(0))
    assert same_img is image and same_mask is mask


@pytest.mark.parametrize("scale", [(0.6, 0.7), (1.3, 1.5), (0.8, 1.2)])
def test_scale_crop_keeps_size_and_labels(pair, scale) -> None:
    image, mask = pair
    for seed in range(4):
        img, m = ScaleCropJitter(scale=scale)(image, mask, np.random.default_rng(seed))
        assert img.shape == image.shape and img.dtype == np.uint8
        assert m.shape == mask.shape and m.dtype == np.uint8
        assert set(np.unique(m).tolist()) <= set(np.unique(mask).tolist()) | {IGNORE_INDEX}
        if scale[1] < 1:  # zoomed out: a padded border is ignored, and only there
            assert (m == IGNORE_INDEX).any()
            assert (img[m == IGNORE_INDEX] == 128).all()
        elif scale[0] >= 1:  # zoomed in: a crop, nothing padded
            assert not (m == IGNORE_INDEX).any()


def test_scale_one_is_identity(pair) -> None:
    image, mask = pair
    img, m = ScaleCropJitter(scale=(1.0, 1.0))(image, mask, np.random.default_rng(0))
    np.testing.assert_array_equal(img, image)
    np.testing.assert_array_equal(m, mask)


def test_color_jitter_changes_image_only(pair) -> None:
    image, mask = pair
    img, m = ColorJitter(0.4, 0.4, 0.4)(image, mask, np.random.default_rng(1))
    assert img.shape == image.shape and img.dtype == np.uint8 and m is mask
    assert not np.array_equal(img, image)
    ident, _ = ColorJitter(0.0, 0.0, 0.0)(image, mask, np.random.default_rng(1))
    assert np.abs(ident.astype(int) - image.astype(int)).max() <= 1


@pytest.mark.parametrize("ignore", [False, True])
def test_cutout_fills_a_patch(pair, ignore) -> None:
    image, mask = pair
    img, m = Cutout(p=1.0, size_frac=0.25, ignore=ignore)(image, mask, np.random.default_rng(2))
    changed = (img != image).any(-1)
    assert changed.any() and changed.sum() <= 16 * 16
    if ignore:
        assert (m[changed] == IGNORE_INDEX).all()
    else:
        np.testing.assert_array_equal(m, mask)


def test_pipeline_is_deterministic_given_rng(pair) -> None:
    image, mask = pair
    ts = [HFlipSwap(0.5), ScaleCropJitter(), ColorJitter(), Cutout(0.5)]
    a = apply_paired(ts, image, mask, np.random.default_rng(7))
    b = apply_paired(ts, image, mask, np.random.default_rng(7))
    c = apply_paired(ts, image, mask, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("scale", [(0.7, 0.7), (1.4, 1.4)])
def test_scale_crop_keeps_image_and_mask_aligned(pair, scale) -> None:
    _, mask = pair
    image = np.repeat(mask[..., None] * 10, 3, axis=-1).astype(np.uint8)  # pixels that spell their label
    img, m = ScaleCropJitter(scale=scale)(image, mask, np.random.default_rng(3))
    pad = np.pad(m, 1, mode="edge")
    windows = np.stack([pad[dy : dy + 64, dx : dx + 64] for dy in range(3) for dx in range(3)])
    interior = (windows == m).all(0) & (m != IGNORE_INDEX)
    assert interior.sum() > 1000
    assert (img[..., 0][interior] == m[interior] * 10).all()

"""SyntheticFaces: deterministic, labelled in the 19 classes, and varied."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.data.labels import FLIP_SWAP, IGNORE_INDEX, LABEL, NUM_CLASSES
from hwnas.data.synthetic_faces import SyntheticFaces
from hwnas.utils.errors import DataError


def _batch(ds: SyntheticFaces, n: int) -> tuple[np.ndarray, np.ndarray]:
    pairs = [ds.raw(i) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_same_seed_same_data_different_seed_different_data() -> None:
    a, b = SyntheticFaces(num_train=6, seed=1), SyntheticFaces(num_train=6, seed=1)
    c = SyntheticFaces(num_train=6, seed=2)
    ia, ma = _batch(a, 6)
    ib, mb = _batch(b, 6)
    ic, mc = _batch(c, 6)
    np.testing.assert_array_equal(ia, ib)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(ia, ic)
    assert not np.array_equal(ma, mc)


def test_order_independent_and_memo_matches_fresh_render() -> None:
    ds = SyntheticFaces(num_train=5, seed=0)
    backwards = {i: ds.raw(i) for i in reversed(range(5))}
    fresh = SyntheticFaces(num_train=5, seed=0, in_memory=False)
    for i in range(5):
        np.testing.assert_array_equal(backwards[i][0], fresh.raw(i)[0])
        np.testing.assert_array_equal(backwards[i][1], fresh.raw(i)[1])
        np.testing.assert_array_equal(ds.raw(i)[0], ds.render(i)[0])


def test_splits_differ() -> None:
    tr = SyntheticFaces("train", num_train=2, num_val=2, seed=0)
    va = SyntheticFaces("val", num_train=2, num_val=2, seed=0)
    assert not np.array_equal(tr.raw(0)[0], va.raw(0)[0])
    assert len(tr) == 2 and len(va) == 2


def test_getitem_types_shapes_and_normalisation() -> None:
    ds = SyntheticFaces(image_size=[64, 96], num_train=8, seed=0)
    x, y = ds[0]
    assert x.shape == (3, 64, 96) and x.dtype == torch.float32
    assert y.shape == (64, 96) and y.dtype == torch.int64
    xs = torch.stack([ds[i][0] for i in range(8)])
    assert abs(xs.mean().item()) < 0.6 and 0.4 < xs.std().item() < 1.6


def test_labels_in_range_and_main_classes_present() -> None:
    _, masks = _batch(SyntheticFaces(num_train=32, seed=0), 32)
    assert masks.max() < NUM_CLASSES
    # Every face has these, and each covers several pixels even at 64x64.
    always = [
        "background",
        "skin",
        "nose",
        "right_eye",
        "left_eye",
        "right_brow",
        "left_brow",
        "top_lip",
        "bottom_lip",
        "clothing",
    ]
    for name in always:
        counts = (masks == LABEL[name]).reshape(32, -1).sum(1)
        assert np.median(counts) >= 6, (name, counts)
    present = set(np.unique(masks).tolist())
    for name in ["right_ear", "left_ear", "neck", "hair"]:
        assert LABEL[name] in present, name


def test_optional_parts_appear_in_some_but_not_all_images() -> None:
    images, masks = _batch(SyntheticFaces(num_train=64, seed=0), 64)
    for name in ["glasses", "beard", "headwear", "facewear", "mouth_interior"]:
        has = (masks == LABEL[name]).reshape(64, -1).any(1)
        assert 0 < has.sum() < 64, (name, has.sum())
    flat = images.reshape(64, -1).astype(np.int16)
    assert len({row.tobytes() for row in flat}) == 64
    # Faces move around: skin centroids spread over the frame.
    ys, xs = np.indices(masks.shape[1:])
    skin = masks == LABEL["skin"]
    cx = (skin * xs).sum((1, 2)) / skin.sum((1, 2))
    assert cx.std() > 2.0


def test_right_eye_is_on_image_left() -> None:
    _, masks = _batch(SyntheticFaces(num_train=16, seed=3), 16)
    xs = np.indices(masks.shape[1:])[1]
    for m in masks:
        r, left = m == LABEL["right_eye"], m == LABEL["left_eye"]
        if r.any() and left.any():
            assert xs[r].mean() < xs[left].mean()
    flipped = FLIP_SWAP[masks[:, :, ::-1]]
    assert (flipped == LABEL["left_eye"]).sum() == (masks == LABEL["right_eye"]).sum()


def test_npz_cache_roundtrip(tmp_path) -> None:
    a = SyntheticFaces("val", num_val=4, seed=5, cache_dir=tmp_path)
    assert a.cache_path is not None and a.cache_path.is_file()
    b = SyntheticFaces("val", num_val=4, seed=5, cache_dir=tmp_path)
    fresh = SyntheticFaces("val", num_val=4, seed=5, cache_dir=None)
    for i in range(4):
        np.testing.assert_array_equal(b.raw(i)[1], fresh.raw(i)[1])
        np.testing.assert_array_equal(b.raw(i)[0], a.raw(i)[0])
    assert len(list(tmp_path.iterdir())) == 1  # no temp files left behind


def test_raw_views_are_read_only_and_index_checked() -> None:
    ds = SyntheticFaces(num_train=2, seed=0)
    image, mask = ds.raw(0)
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1
    with pytest.raises(IndexError):
        ds.raw(2)
    assert IGNORE_INDEX not in np.unique(mask)


def test_bad_arguments_raise_data_error() -> None:
    with pytest.raises(DataError, match="split"):
        SyntheticFaces("bogus")
    with pytest.raises(DataError, match="image_size"):
        SyntheticFaces(image_size=[64])

"""FaceSynthetics loader on files written in the release's layout, and its errors for people."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data.face_synthetics import FaceSynthetics, find_pairs
from hwnas.utils.errors import DataError


def _write(root: Path, n: int, size: int = 32) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        mask = np.full((size, size), i % 19, dtype=np.uint8)
        mask[: size // 2, : size // 2] = 255  # ignore region
        mask[size // 2 :, size // 2 :] = 3
        Image.fromarray(img).save(root / f"{i:06d}.png")
        Image.fromarray(mask, mode="L").save(root / f"{i:06d}_seg.png")


def test_reads_pairs_and_resizes(tmp_path) -> None:
    _write(tmp_path, 10)
    (tmp_path / "000099.png").write_bytes(b"")  # an image without a mask is skipped
    ds = FaceSynthetics("train", root=tmp_path, image_size=[16, 24], val_fraction=0.2, test_fraction=0.0)
    assert len(ds) == 8
    image, mask = ds.raw(1)
    assert image.shape == (16, 24, 3) and image.dtype == np.uint8
    assert mask.shape == (16, 24) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) == {1, 3, 255}  # nearest neighbour: no blended labels
    x, y = ds[1]
    assert x.shape == (3, 16, 24) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_test_is_the_last_fraction_and_val_the_one_before(tmp_path) -> None:
    _write(tmp_path, 10)
    kw = {"root": tmp_path, "image_size": 8, "val_fraction": 0.2, "test_fraction": 0.1}
    tr, va, te = (FaceSynthetics(split, **kw) for split in ("train", "val", "test"))
    assert [p[0].name for p in te.pairs] == ["000009.png"]  # held out for the final stage only
    assert [p[0].name for p in va.pairs] == ["000007.png", "000008.png"]
    assert len(tr) == 7 and not {p[0] for p in tr.pairs} & {p[0] for p in va.pairs + te.pairs}
    small = FaceSynthetics("val", root=tmp_path, image_size=8, val_fraction=0.01)
    assert len(small) == 1  # at least one validation sample when val_fraction > 0
    with pytest.raises(DataError, match="no training data"):
        FaceSynthetics("train", root=tmp_path, image_size=8, val_fraction=0.5, test_fraction=0.5)


def test_same_size_is_read_unchanged(tmp_path) -> None:
    _write(tmp_path, 2, size=16)
    ds = FaceSynthetics("train", root=tmp_path, image_size=16, val_fraction=0.0)
    image, _ = ds.raw(0)
    np.testing.assert_array_equal(image, np.asarray(Image.open(tmp_path / "000000.png")))


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_bad_root_names_the_key_and_the_source(tmp_path, case) -> None:
    root = tmp_path / "FaceSynthetics"
    if case == "file":
        root.write_text("not a folder")
    elif case == "empty":
        root.mkdir()
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(root / "000000.png")  # no _seg.png
    with pytest.raises(DataError) as err:
        FaceSynthetics("train", root=root)
    msg = str(err.value)
    assert err.value.key == "dataset.root"
    assert "dataset.root" in msg and "github.com/microsoft/FaceSynthetics" in msg
    assert "dataset.root=/path/to/dir" in msg


def test_find_pairs_sorted(tmp_path) -> None:
    _write(tmp_path, 3)
    assert [p[1].name for p in find_pairs(tmp_path)] == [f"{i:06d}_seg.png" for i in range(3)]

"""Classification data: digits splits, the CIFAR-10 reader on its real on-disk format, the datamodule's
batches, and the bad inputs (missing or incomplete CIFAR-10 root)."""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from hwnas.data.cifar10 import CIFAR10, FOLDER, TEST_FILE, TRAIN_FILES
from hwnas.data.classification import ClassificationDataModule
from hwnas.data.digits import NUM_IMAGES, Digits
from hwnas.tricks.augment import ColorJitter, HFlip, HFlipSwap, RandomCrop, ScaleCropJitter
from hwnas.utils.errors import DataError

CONF = Path(__file__).resolve().parents[2] / "conf"


def _compose(name: str, **over) -> DictConfig:
    """The option file as the ``dataset`` group of a main config with a top-level ``seed``."""
    return OmegaConf.merge({"seed": 0, "dataset": OmegaConf.load(CONF / "dataset" / f"{name}.yaml")}, over)


def _write_cifar(folder: Path, *, per_batch: int = 20, seed: int = 0) -> dict[str, tuple[np.ndarray, list]]:
    """Tiny CIFAR-10 batch files in the real format: pickled dicts of bytes keys, rows = R, G, B planes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        entry = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [b"x.png"] * per_batch,
        }
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=2)
        written[name] = (data, labels)
    return written


# -- digits ----------------------------------------------------------------------------------------------
def test_digits_splits_are_disjoint_complete_stratified_and_deterministic() -> None:
    splits = {s: Digits(s) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 1100, "val": 300, "test": 397}
    idx = {s: set(d.indices.tolist()) for s, d in splits.items()}
    assert not idx["train"] & idx["val"] and not idx["train"] & idx["test"] and not idx["val"] & idx["test"]
    assert len(idx["train"] | idx["val"] | idx["test"]) == NUM_IMAGES
    for d in splits.values():  # every split close to the dataset's (balanced) class proportions
        counts = np.bincount(d.labels, minlength=10)
        assert counts.min() >= 0.9 * len(d) / 10 - 1 and counts.max() <= 1.1 * len(d) / 10 + 1
    again = Digits("val")
    np.testing.assert_array_equal(again.indices, splits["val"].indices)
    assert not np.array_equal(Digits("val", split_seed=1).indices, again.indices)
    # A smaller training set (e.g. debug=fast) leaves the test split untouched.
    np.testing.assert_array_equal(Digits("test", num_train=64, num_val=32).indices, splits["test"].indices)
    assert len(Digits("train", num_train=64)) == 64


def test_digits_images_are_real_upsampled_grayscale() -> None:
    from sklearn.datasets import load_digits

    d = Digits("train", image_size=16)
    image, label = d.raw(0)
    assert image.shape == (16, 16, 1) and image.dtype == np.uint8 and isinstance(label, int)
    assert Digits("train", image_size=8).raw(0)[0].shape == (8, 8, 1)
    ref = load_digits()
    at8 = Digits("train", image_size=8)
    i = int(at8.indices[0])
    np.testing.assert_array_equal(at8.raw(0)[0][..., 0], np.rint(ref.images[i] * 255 / 16).astype(np.uint8))
    assert at8.raw(0)[1] == int(ref.target[i])
    x, y = d[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_digits_counts_beyond_the_dataset_are_data_errors() -> None:
    with pytest.raises(DataError, match="num_train"):
        Digits("train", num_train=1500)
    with pytest.raises(DataError, match="num_val"):
        Digits("val", num_val=-1)


def test_digits_option_file_gives_the_documented_batches() -> None:
    cfg = _compose("digits")
    dm = hydra.utils.instantiate(cfg.dataset, augment=[HFlipSwap(0.5), ScaleCropJitter(), ColorJitter()])
    assert isinstance(dm, ClassificationDataModule) and dm.task == "classification"
    assert dm.image_size == (16, 16) and dm.in_channels == 1 and dm.num_classes == 10
    assert dm.class_names == [str(i) for i in range(10)] and dm.f1_classes == tuple(range(10))
    assert dm.input_shape() == (1, 1, 16, 16) and dm.input_shape(4) == (4, 1, 16, 16)
    assert not any(isinstance(t, HFlip) for t in dm.augment) and len(dm.augment) == 2  # no mirrored digits
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        x, y = next(iter(loader))
        assert x.shape == (64, 1, 16, 16) and x.dtype == torch.float32
        assert y.shape == (64,) and y.dtype == torch.int64 and int(y.min()) >= 0 and int(y.max()) <= 9
    assert sum(len(y) for _, y in dm.val_dataloader()) == 300 and dm.has_split("test")
    assert len(list(dm.train_dataloader())) == 1100 // 64  # drop_last in training
    cal = dm.calibration_batches(2, batch_size=3, split="train")
    assert [c.shape for c in cal] == [(3, 1, 16, 16)] * 2 and cal[0].dtype == np.float32
    np.testing.assert_allclose(cal[0][0], dm.split("train")[0][0].numpy())


def test_classification_training_stream_is_seeded_and_augments_only_the_image() -> None:
    def first(seed: int, augment: list) -> tuple[torch.Tensor, torch.Tensor]:
        dm = ClassificationDataModule(
            dataset=partial(Digits, image_size=16), image_size=16, num_classes=10, in_channels=1, batch_size=16,
            augment=augment, seed=seed,
        )  # fmt: skip
        return next(iter(dm.train_dataloader()))

    plain = ClassificationDataModule(
        dataset=partial(Digits, image_size=16), image_size=16, num_classes=10, in_channels=1
    )
    xa, ya = first(1, [RandomCrop(4), ColorJitter()])
    xb, yb = first(1, [RandomCrop(4), ColorJitter()])
    torch.testing.assert_close(xa, xb)
    torch.testing.assert_close(ya, yb)
    xn, yn = first(1, [])
    torch.testing.assert_close(yn, ya)  # same shuffle, labels untouched by the transforms
    assert not torch.equal(xn, xa)
    assert plain.mirror_invariant and len(first(1, [HFlip(1.0)])[0]) == 16


def test_mismatched_channels_size_or_labels_are_data_errors() -> None:
    with pytest.raises(DataError, match="in_channels"):
        ClassificationDataModule(dataset=partial(Digits), num_classes=10, in_channels=3, image_size=16)
    with pytest.raises(DataError, match="image_size"):
        ClassificationDataModule(
            dataset=partial(Digits, image_size=8), num_classes=10, in_channels=1, image_size=16
        )
    with pytest.raises(DataError, match="num_classes"):
        ClassificationDataModule(dataset=partial(Digits), num_classes=5, in_channels=1, image_size=16)


# -- CIFAR-10 -------------------------------------------------------------------------------------------
def test_cifar10_reads_the_real_pickle_format(tmp_path: Path) -> None:
    written = _write_cifar(tmp_path / FOLDER, per_batch=20)
    for root in (tmp_path, tmp_path / FOLDER):  # the parent folder, or the batches folder itself
        test = CIFAR10("test", root=root)
        assert len(test) == 20
        data, labels = written[TEST_FILE]
        image, label = test.raw(3)
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == labels[3]
        np.testing.assert_array_equal(image[..., 0], data[3, :1024].reshape(32, 32))  # red plane
        np.testing.assert_array_equal(image[..., 2], data[3, 2048:].reshape(32, 32))  # blue plane
    train, val = CIFAR10("train", root=tmp_path, num_val=10), CIFAR10("val", root=tmp_path, num_val=10)
    assert len(train) == 90 and len(val) == 10
    assert not set(train.indices.tolist()) & set(val.indices.tolist())
    np.testing.assert_array_equal(CIFAR10("val", root=tmp_path, num_val=10).indices, val.indices)  # seeded
    all_train = np.concatenate([written[n][0] for n in TRAIN_FILES])
    i = int(val.indices[0])
    np.testing.assert_array_equal(val.raw(0)[0].transpose(2, 0, 1).reshape(-1), all_train[i])
    assert val.raw(0)[1] == np.concatenate([written[n][1] for n in TRAIN_FILES])[i]
    assert len(CIFAR10("train", root=tmp_path, num_val=10, num_train=7)) == 7
    assert len(CIFAR10("test", root=tmp_path, num_test=5)) == 5
    assert CIFAR10("test", root=tmp_path, image_size=16).raw(0)[0].shape == (16, 16, 3)


def test_cifar10_option_file_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path / FOLDER, per_batch=20)
    cfg = _compose(
        "cifar10",
        dataset={"root": str(tmp_path), "batch_size": 8, "num_workers": 0, "dataset": {"num_val": 10}},
    )
    dm = hydra.utils.instantiate(cfg.dataset, augment=[RandomCrop(4), HFlip(0.5)])
    assert dm.in_channels == 3 and dm.num_classes == 10 and dm.class_names[0] == "airplane"
    assert len(dm.augment) == 2  # CIFAR-10 is mirror-invariant: the flip stays
    x, y = next(iter(dm.train_dataloader()))
    assert (
        x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,) and y.dtype == torch.int64
    )
    assert sum(len(y) for _, y in dm.test_dataloader()) == 20


@pytest.mark.parametrize("case", ["unset", "missing", "no batches folder", "incomplete", "not a batch"])
def test_cifar10_bad_root_is_a_data_error_naming_the_key_and_the_source(tmp_path: Path, case: str) -> None:
    root: Path | None = tmp_path
    if case == "unset":
        root = None
    elif case == "missing":
        root = tmp_path / "nope"
    elif case == "incomplete":
        _write_cifar(tmp_path / FOLDER, per_batch=2)
        (tmp_path / FOLDER / "data_batch_3").unlink()
    elif case == "not a batch":
        _write_cifar(tmp_path / FOLDER, per_batch=2)
        (tmp_path / FOLDER / TEST_FILE).write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError) as err:
        CIFAR10("test", root=root)
    text = str(err.value)
    assert err.value.key == "dataset.root" and "[dataset.root]" in text
    assert "cifar-10-python.tar.gz" in text and "download=True" in text
    if case == "incomplete":
        assert "data_batch_3" in text and "data_batch_1" in text  # what is missing, and what is needed
    if case == "no batches folder":
        assert FOLDER in text


def test_cifar10_option_file_without_root_fails_at_construction() -> None:
    with pytest.raises(Exception, match="dataset.root") as err:
        hydra.utils.instantiate(_compose("cifar10").dataset)
    assert isinstance(err.value, DataError) or isinstance(err.value.__cause__, DataError)


# -- augmentations without a mask -----------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_transforms_take_grayscale_and_rgb_images_without_masks(channels: int) -> None:
    image = np.random.default_rng(0).integers(0, 256, (16, 16, channels), dtype=np.uint8)
    image.flags.writeable = False
    for t in (
        HFlip(1.0),
        HFlipSwap(1.0),
        RandomCrop(4),
        ScaleCropJitter((0.7, 1.3)),
        ColorJitter(0.5, 0.5, 0.5),
    ):
        out, mask = t(image, None, np.random.default_rng(1))
        assert out.shape == image.shape and out.dtype == np.uint8 and mask is None
    np.testing.assert_array_equal(HFlip(1.0)(image, None, np.random.default_rng(0))[0], image[:, ::-1])


def test_random_crop_shifts_content_and_pads_with_fill() -> None:
    image = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
    mask = np.arange(64, dtype=np.uint8).reshape(8, 8)
    seen_shift = False
    for seed in range(20):
        out, m = RandomCrop(padding=2, fill=200)(image, mask, np.random.default_rng(seed))
        assert out.shape == image.shape and m.shape == mask.shape
        content = m != 255
        np.testing.assert_array_equal(out[..., 0][content], m[content])  # image and mask moved together
        assert (out[..., 0][~content] == 200).all()
        seen_shift |= bool((~content).any())
    assert seen_shift

"""Benchmark: how fast procedural faces are drawn, and how fast augmented batches come out.

Prints figures only (no assertions). Usage::

    .venv/bin/python bench/bench_data.py --num 2000 --size 64
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np

from hwnas.data.datamodule import SegmentationDataModule
from hwnas.data.synthetic_faces import SyntheticFaces
from hwnas.tricks.augment import ColorJitter, Cutout, HFlipSwap, ScaleCropJitter


def main() -> None:
    """Time generation, then two epochs of augmented loading (the first includes generation)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=2000, help="images to generate")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    ds = SyntheticFaces(image_size=args.size, num_train=args.num, seed=0, in_memory=False)
    t0 = time.perf_counter()
    for i in range(args.num):
        ds.render(i)
    gen = time.perf_counter() - t0
    print(f"generate {args.num} images {args.size}x{args.size}: {gen:.2f} s = {args.num / gen:.0f} images/s")

    augment = [HFlipSwap(0.5), ScaleCropJitter((0.85, 1.15)), ColorJitter(0.2, 0.2, 0.2), Cutout(0.5, 0.25)]
    factory = partial(SyntheticFaces, image_size=args.size, num_train=args.num, num_val=8, seed=0)
    dm = SegmentationDataModule(
        dataset=factory, image_size=args.size, batch_size=args.batch_size, augment=augment
    )
    loader = dm.train_dataloader()
    for epoch in range(2):
        t0 = time.perf_counter()
        n = sum(len(x) for x, _ in loader)
        dt = time.perf_counter() - t0
        what = "generate + augment" if epoch == 0 else "augment (cached)"
        print(f"epoch {epoch} ({what}): {n} images in {dt:.2f} s = {n / dt:.0f} images/s")

    rng = np.random.default_rng(0)
    image, mask = ds.raw(0)
    for t in augment:
        t0 = time.perf_counter()
        for _ in range(500):
            t(image, mask, rng)
        print(f"{t!r}: {(time.perf_counter() - t0) / 500 * 1e6:.0f} us/sample")


if __name__ == "__main__":
    main()

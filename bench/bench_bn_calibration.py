"""Weight sharing: does re-estimating BatchNorm on more images change how the supernet ranks sub-networks?

``evaluator=supernet`` scores each sub-network with inherited weights after re-estimating its BatchNorm
statistics on ``evaluator.calibration_batches`` × ``calibration_batch_size`` training images (default
2 × 32). This bench trains (or loads from the cache) the mini-mode supernet once, scores the same N
sampled architectures at several calibration sizes, and prints each size's Kendall tau and Spearman rho
against the largest size, the top-25 % overlap, the mean |ΔmIoU| and the scoring seconds per architecture.

    make bench-bn-calibration ARGS="--n 40 --sizes 1,2,4,16"
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import open_dict
from scipy.stats import kendalltau, spearmanr

from bench_proxy import ROOT, compose_cfg, sample_unique
from hwnas.utils.cli import quiet_third_party
from hwnas.utils.config import build, build_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="sampled architectures")
    ap.add_argument(
        "--sizes", default="1,2,4,16", help="calibration batches (of calibration_batch_size) to compare"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_bn_calibration")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the search config")
    args = ap.parse_args()
    quiet_third_party()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose_cfg(["evaluator=supernet", *args.overrides], args.out)
    with open_dict(cfg):
        cfg.paths.output_dir = str(args.out / "outputs")
    space = build_space(cfg)
    ev = build(cfg.evaluator, "evaluator")
    t0 = time.perf_counter()
    ev.setup(cfg=cfg, space=space, run_dir=args.out / "run")
    print(f"supernet {ev.key} ready in {time.perf_counter() - t0:.0f} s", flush=True)
    specs = sample_unique(space, args.n, args.seed)
    dm = ev.train_datamodule
    sizes = [int(v) for v in args.sizes.split(",")]
    scores, secs = {}, {}
    for n in sizes:
        ev._calib = [
            torch.from_numpy(b) for b in dm.calibration_batches(n, ev.calibration_batch_size, split="train")
        ]
        t0 = time.perf_counter()
        scores[n] = np.array([ev.expensive(s)["val/miou"] for s in specs])
        secs[n] = (time.perf_counter() - t0) / len(specs)
    ref = max(sizes)
    top = int(np.ceil(0.25 * len(specs)))
    top_ref = set(np.argsort(-scores[ref])[:top])
    print(f"\n{len(specs)} architectures; reference: {ref} x {ev.calibration_batch_size} images")
    print("batches x size | tau vs ref | rho vs ref | top-25 % overlap | mean |dmIoU| | s/arch")
    for n in sizes:
        tau, rho = kendalltau(scores[n], scores[ref])[0], spearmanr(scores[n], scores[ref])[0]
        overlap = len(top_ref & set(np.argsort(-scores[n])[:top])) / top
        diff = float(np.abs(scores[n] - scores[ref]).mean())
        print(
            f"{n:>3} x {ev.calibration_batch_size:<10} | {tau:10.3f} | {rho:10.3f} | {overlap:16.0%} | "
            f"{diff:13.4f} | {secs[n]:.2f}"
        )


if __name__ == "__main__":
    main()

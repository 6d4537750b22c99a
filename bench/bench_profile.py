"""Benchmark the profilers: repeatability, wall time per candidate, estimate-vs-measured rank agreement.

``make bench-profile ARGS="--n 30 --size 128"``. Prints a table of figures; ``--out`` also writes JSON.
Figures, never assertions: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hwnas.hardware.estimate import EstimateProfiler
from hwnas.hardware.export import export_onnx
from hwnas.hardware.onnxruntime import OnnxRuntimeProfiler

ROOT = Path(__file__).resolve().parents[1]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho from numpy ranks (average ranks for ties), no scipy needed."""

    def ranks(x: np.ndarray) -> np.ndarray:
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # average ties
            idx = x == v
            r[idx] = r[idx].mean()
        return r

    ra, rb = ranks(np.asarray(a, float)), ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=30, help="random architectures for the rank agreement")
    ap.add_argument("--size", type=int, default=128, help="input H=W")
    ap.add_argument("--reps", type=int, default=5, help="repeated profiles for the CV")
    ap.add_argument("--repeats", type=int, default=30, help="timed runs inside one profile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    space = instantiate(OmegaConf.load(ROOT / "conf/search_space/hourglass.yaml"))
    shape = (1, 3, args.size, args.size)
    rng = np.random.default_rng(args.seed)
    calib = [rng.random((4, *shape[1:]), dtype=np.float32) for _ in range(2)]
    fig: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = space.build(space.baseline(), num_classes=19).eval()
        for prec in ("fp32", "int8"):
            prof = OnnxRuntimeProfiler(precision=prec, warmup=5, repeats=args.repeats)
            meds, walls = [], []
            for _ in range(args.reps):
                t0 = (
                    time.perf_counter()
                )  # a fresh candidate each time: export + (quantise) + session + timing
                meds.append(prof.profile(base, shape, calibration=calib).median_ms)  # no key: temp export
                walls.append(time.perf_counter() - t0)
            fig[f"{prec}_median_ms"] = float(np.median(meds))
            fig[f"{prec}_cv_pct"] = float(100 * np.std(meds) / np.mean(meds))
            fig[f"{prec}_wall_s_per_candidate"] = float(np.median(walls))
        est_prof = EstimateProfiler()
        int8 = OnnxRuntimeProfiler(precision="int8", warmup=2, repeats=10)
        est, meas, est_wall = [], [], []
        for i in range(args.n):
            spec = space.sample(rng)
            model = space.build(spec, num_classes=19).eval()
            path = export_onnx(model, shape, Path(tmp) / f"a{i}.onnx")
            t0 = time.perf_counter()
            est.append(est_prof.profile(model, shape, onnx_path=path).median_ms)
            est_wall.append(time.perf_counter() - t0)
            meas.append(int8.profile(model, shape, onnx_path=path, calibration=calib).median_ms)
        fig["estimate_wall_s_per_candidate"] = float(np.median(est_wall))
        fig["spearman_estimate_vs_host_int8"] = spearman(np.array(est), np.array(meas))
        fig["n_archs"] = args.n
    print(f"{'figure':<36} value   (input {shape}, {args.reps} profiles x {args.repeats} runs)")
    for k, v in fig.items():
        print(f"{k:<36} {v:.4g}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()

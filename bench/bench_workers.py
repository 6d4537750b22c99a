"""Latency agreement of a multi-worker search with the same architectures measured alone.

``make bench-workers ARGS="--workers 2 --n 12"``: runs a real search with ``search.n_workers=K`` (host
latency measured in-run, never from the cache), then re-measures every evaluated architecture alone, one
at a time, with the same hardware target, and prints each architecture's two figures and their relative
difference. With the machine-wide timing lock (``hwnas.utils.timing_lock``) no timing loop overlaps a
training or another timing, so the two should agree to the profiler's own repeatability. Figures, never
assertions; run it on an otherwise quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def run_search(run_dir: Path, workers: int, n: int, extra: list[str]) -> float:
    cmd = [
        sys.executable, "src/search.py", f"search.n_workers={workers}", f"search.n_trials={n}",
        "evaluator.latency_cache=false", "final.enabled=false", f"hydra.run.dir={run_dir}", *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "WANDB_MODE": "disabled"})
    return time.perf_counter() - t0


def measure_alone(run_dir: Path, trials: pd.DataFrame) -> list[float]:
    from hwnas.hardware.build import build_profiler
    from hwnas.utils.config import build_space

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    space = build_space(cfg)
    profiler = build_profiler(cfg.hardware, cache_dir=None)
    out = []
    for _, row in trials.iterrows():
        spec = space.parse(row["arch"])
        model = space.build(spec, num_classes=int(cfg.dataset.num_classes)).eval()
        shape = tuple(int(d) for d in str(row["hw/input_shape"]).split("x"))
        out.append(float(profiler.profile(model, shape, arch_key=spec.key).median_ms))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=12, help="unique architectures in the search")
    ap.add_argument("--tol", type=float, default=0.05, help="relative difference counted as agreeing")
    ap.add_argument("--extra", nargs="*", default=["evaluator.max_epochs=1"], help="more search overrides")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        wall = run_search(run_dir, args.workers, args.n, args.extra)
        trials = pd.read_csv(run_dir / "trials.csv")
        trials = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_key")
        alone = np.array(measure_alone(run_dir, trials))
        again = np.array(measure_alone(run_dir, trials))  # the profiler's own repeatability: the floor
    in_run = trials["hw/latency_ms"].to_numpy(float)
    rel = np.abs(in_run - alone) / alone
    floor = np.abs(again - alone) / alone
    print(f"search with {args.workers} workers: {len(trials)} architectures in {wall:.0f} s")
    print(
        f"{'architecture':24s} {'in run ms':>10s} {'alone ms':>10s} {'again ms':>10s} {'diff %':>8s} {'floor %':>8s}"
    )
    for key, a, b, c, r, f in zip(trials["arch_key"], in_run, alone, again, rel, floor, strict=True):
        print(f"{key:24s} {a:10.3f} {b:10.3f} {c:10.3f} {100 * r:8.2f} {100 * f:8.2f}")
    fig = {
        "workers": args.workers,
        "n": int(len(trials)),
        "median_diff_pct": round(100 * float(np.median(rel)), 2),
        "max_diff_pct": round(100 * float(rel.max()), 2),
        "within_tol": f"{int((rel <= args.tol).sum())}/{len(rel)}",
        "alone_twice_median_diff_pct": round(100 * float(np.median(floor)), 2),
        "alone_twice_within_tol": f"{int((floor <= args.tol).sum())}/{len(floor)}",
    }
    print(json.dumps(fig))
    if args.out:
        args.out.write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()

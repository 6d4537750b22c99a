"""Latency agreement of a multi-worker search with the same architectures measured alone.

``make bench-workers ARGS="--workers 2 --n 12"``: runs a real search with ``search.n_workers=K`` (host
latency measured in-run, never from the cache), then re-measures every evaluated architecture alone, one
at a time, with the same hardware target, and prints each architecture's two figures and their relative
difference. With the machine-wide timing lock (``hwnas.utils.timing_lock``) no timing loop overlaps a
training or another timing, so the two should agree to the profiler's own repeatability (the "floor":
the same architectures measured alone twice). At the end a probe times one model back to back for
``--drift-s`` seconds and prints how much the machine's own speed drifted: when it is not quiet, no
agreement figure taken meanwhile means much. Figures, never assertions; run it on an otherwise quiet
machine.
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
from typing import Any

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


def run_models(
    run_dir: Path, trials: pd.DataFrame, **hardware: Any
) -> tuple[Any, list[tuple[Any, tuple[int, ...], str]]]:
    """The run's hardware profiler (uncached; ``hardware`` overrides its settings) and each trial's
    ``(model, input shape, arch key)``, built from the run's saved config as the search built them."""
    from hwnas.hardware.build import build_profiler
    from hwnas.utils.config import build_space

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    space = build_space(cfg)
    profiler = build_profiler(OmegaConf.merge(cfg.hardware, hardware), cache_dir=None)
    models = []
    for _, row in trials.iterrows():
        spec = space.parse(row["arch"])
        model = space.build(spec, num_classes=int(cfg.dataset.num_classes)).eval()
        models.append((model, tuple(int(d) for d in str(row["hw/input_shape"]).split("x")), spec.key))
    return profiler, models


def measure_alone(run_dir: Path, trials: pd.DataFrame) -> list[float]:
    profiler, models = run_models(run_dir, trials)
    return [float(profiler.profile(m, shape, arch_key=key).median_ms) for m, shape, key in models]


def machine_drift(run_dir: Path, trials: pd.DataFrame, seconds: float) -> np.ndarray:
    """The machine's own speed over ``seconds``: the first architecture timed back to back, run by run
    with the profiler's own session and timer, the median of each 0.25 s window divided by the fastest
    window's. On a quiet machine these stay within a few %; on a shared VM whose neighbours load the
    host they drift by 15-25 % (measured here: 2026-11-26), and no profiler can then agree with itself,
    or a 2-worker run with a 1-worker one, within 5 %."""
    from hwnas.hardware.export import export_onnx

    profiler, [(model, shape, _)] = run_models(run_dir, trials.head(1), repeats=1, warmup=0)
    path = export_onnx(model, shape, run_dir / "drift.onnx")
    for _ in range(5):  # warm-up
        profiler.time_onnx(path, shape)
    windows, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        window, stop = [], time.perf_counter() + 0.25
        while time.perf_counter() < stop:
            window += profiler.time_onnx(path, shape)
        windows.append(float(np.median(window)))
    w = np.array(windows)
    return w / w.min()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=12, help="unique architectures in the search")
    ap.add_argument("--tol", type=float, default=0.05, help="relative difference counted as agreeing")
    ap.add_argument("--extra", nargs="*", default=["evaluator.max_epochs=1"], help="more search overrides")
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    ap.add_argument(
        "--drift-s", type=float, default=30.0, help="seconds of the machine-speed probe at the end (0: none)"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        wall = run_search(run_dir, args.workers, args.n, args.extra)
        trials = pd.read_csv(run_dir / "trials.csv")
        trials = trials[trials["state"] == "COMPLETE"].drop_duplicates("arch_key")
        alone = np.array(measure_alone(run_dir, trials))
        again = np.array(measure_alone(run_dir, trials))  # the profiler's own repeatability: the floor
        drift = machine_drift(run_dir, trials, args.drift_s) if args.drift_s > 0 else None
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
    if drift is not None:
        fig["machine_speed_p50_p90_pct"] = [
            round(100 * (float(np.percentile(drift, q)) - 1), 1) for q in (50, 90)
        ]
        quiet = float(np.percentile(drift, 90)) <= 1 + args.tol / 2
        print(
            f"machine speed over {args.drift_s:.0f} s ({len(drift)} windows of 0.25 s): median window "
            f"{fig['machine_speed_p50_p90_pct'][0]:+.1f} %, p90 {fig['machine_speed_p50_p90_pct'][1]:+.1f} % "
            "slower than the fastest: "
            + ("quiet enough to judge agreement." if quiet else
               f"NOT quiet: the machine's own speed drifts more than {100 * args.tol / 2:.1f} %, so agreement "
               f"within {100 * args.tol:.0f} % cannot be shown now (see the floor column).")
        )  # fmt: skip
        fig["machine_quiet"] = quiet
    print(json.dumps(fig))
    if args.out:
        args.out.write_text(json.dumps(fig, indent=2) + "\n")


if __name__ == "__main__":
    main()

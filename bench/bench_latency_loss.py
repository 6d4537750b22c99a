"""Latency-aware losses of the gradient strategies: does the finalized architecture land on its target?

For each strategy x latency-loss form x seed, one real mini-mode search (``experiment=darts_digits``: the
DARTS cell space on the embedded digits) with one latency target, then per run:

* the finalized architecture's table latency against the target (``table_latency_ms`` / target);
* the mixture's expected latency (``E[latency]``), whose gap to the finalized figure is the discretisation
  gap;
* ``none``'s mean softmax weight at the start (uniform: 1/8) and at the end (a latency term that can be
  met by raising ``none`` shows here);
* the found architecture's validation accuracy after the evaluator's partial training, against the run
  without a latency term of the same strategy and seed (the accuracy cost of the term).

Uses ``hardware=snapdragon888`` (a deterministic estimate) so the figures do not depend on this machine's
noise. Prints one row per run and a summary per strategy and form.

    make bench-latency-loss ARGS="--strategies darts,gdas --forms abs,mul_clamped,none --seeds 0,1,2"
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import open_dict

from bench_proxy import ROOT, compose_cfg
from hwnas.tasks import search


def run_one(
    strategy: str, form: str, estimate: str, seed: int, target: float, out: Path, extra: list[str]
) -> dict:
    run_dir = out / f"{strategy}-{form}-{estimate}-s{seed}"
    overrides = [
        "experiment=darts_digits",
        f"search={strategy}",
        "hardware=snapdragon888",
        f"search.latency_loss={form}",
        f"search.latency_estimate={estimate}",
        f"search.latency_targets=[{target}]",
        f"seed={seed}",
        f"paths.cache_dir={out}/cache",
        "logger=csv",
        *extra,
    ]
    cfg = compose_cfg(overrides, run_dir)  # bench_proxy's: conf/search.yaml outside @hydra.main
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir / "outputs")
    t0 = time.perf_counter()
    if not (run_dir / "trials.csv").is_file():  # a finished run of an interrupted bench is read, not rerun
        search.run(cfg)
    seconds = time.perf_counter() - t0
    point = json.loads((run_dir / "dnas" / "point-0.json").read_text())
    attrs = point["attrs"]
    none_end = float(
        np.mean([_softmax(np.array(a))[:, 0].mean() for a in point["alphas"].values()])
    )  # OPS[0] is `none`
    trials = pd.read_csv(run_dir / "trials.csv")
    acc = float(trials["val/acc"].iloc[0]) if "val/acc" in trials else float("nan")
    row = {
        "strategy": strategy,
        "form": form if form == "none" else f"{form}/{estimate}",
        "seed": seed,
        "target_ms": attrs.get("latency_target_ms"),
        "table_ms": attrs.get("table_latency_ms"),
        "expected_ms": attrs.get("expected_latency_ms"),
        "none_end": none_end,
        "val_acc": acc,
        "seconds": seconds,
    }
    return row


def _softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="darts,gdas")
    ap.add_argument("--forms", default="abs,mul,add,mul_clamped,add_clamped,none")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--estimates",
        default="expected",
        help="latency the term sees: expected,finalized (forms other than none)",
    )
    ap.add_argument("--target", type=float, default=0.5, help="relative target: 0 fastest, 1 slowest")
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench_latency_loss")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run")
    args = ap.parse_args()
    rows = []
    for strategy in args.strategies.split(","):
        combos = [
            (form, est)
            for form in args.forms.split(",")
            for est in (["expected"] if form == "none" else args.estimates.split(","))
        ]
        for form, estimate in combos:
            for seed in (int(s) for s in args.seeds.split(",")):
                row = run_one(strategy, form, estimate, seed, args.target, args.out, list(args.overrides))
                rows.append(row)
                print(
                    f"{strategy:6s} {row['form']:22s} seed {seed}: target {row['target_ms'] or float('nan'):.3f} ms, "
                    f"finalized {row['table_ms'] or float('nan'):.3f} ms, E {row['expected_ms'] or float('nan'):.3f} ms, "
                    f"none {row['none_end']:.3f}, val acc {row['val_acc']:.3f} ({row['seconds']:.0f} s)",
                    flush=True,
                )
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "results.csv", index=False)
    print("\nsummary (finalized / target per seed; none weight at the end, 1/8 = 0.125 at the start)")
    for (strategy, form), g in df.groupby(["strategy", "form"], sort=False):
        base = df[(df.strategy == strategy) & (df.form == "none")].set_index("seed")["val_acc"]
        ratios = (g["table_ms"] / g["target_ms"]).tolist() if form != "none" else []
        within = sum(abs(r - 1) <= 0.15 for r in ratios)
        cost = [
            float(base[s]) - float(a) for s, a in zip(g["seed"], g["val_acc"], strict=True) if s in base.index
        ]
        print(
            f"{strategy:6s} {form:22s} ratio {', '.join(f'{r:.2f}' for r in ratios) or '-':22s} "
            f"within ±15 %: {within}/{len(ratios)}  none {g['none_end'].mean():.3f}  "
            f"val acc {g['val_acc'].mean():.3f}"
            + (f" (cost vs no term {statistics.mean(cost):+.3f})" if cost and form != "none" else "")
        )


if __name__ == "__main__":
    main()

"""Does the search beat the hand-designed baseline on the face task, after full training?

``make bench-face [ARGS="--seeds 0,1 --strategies evolution_pareto --evaluators train"]``. Runs the real
search command (``src/search.py``, its final stage included: the front's picks and the baseline at
``final.baseline_seeds`` training seeds, fully trained, tested, timed in one interleaved pass) for every
strategy × evaluator × seed, and prints for each run:

- the hypervolume of its fully trained final front on (test mIoU ↑, latency / the baseline's latency in the
  same interleaved pass ↓) against one fixed reference point (mIoU 0, ``--ref-ratio`` × the baseline's
  latency): ratios, so the machine's drift between runs does not move it;
- whether a searched model beats the baseline (``hwnas.final.compare``: ≤ 0.85× its latency at ≥ its mean
  test mIoU − 0.005, or ≥ its mean + 0.01 at ≤ its latency), the baseline's mean ± sd over training seeds;
- search and final-stage seconds.

Every run keeps its run dir under ``--out``; a finished run is read back, an interrupted one resumes
(``search.resume``), and all runs share one ``final.cache`` (full trainings by architecture, recipe and
seed), so the bench can be stopped and re-run. The search budget is each evaluator's own default
(``evaluator=train``: the strategy's ``n_trials``, 56 for both defaults; ``evaluator=supernet``: 500), the same for every strategy and seed,
unless ``--n-trials`` sets one for all.

``--variants`` adds configurations as rows beside each strategy × evaluator: a JSON object of name →
list of overrides, e.g. ``'{"fidelity": ["search.fidelity={rungs: [{max_epochs: 3, limit_train_batches:
32}], eta: 3}"], "prescreen": ["search.prescreen={score: naswot}"]}'``; ``""`` (no overrides, the
default configuration) is always the first row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def hypervolume(miou: np.ndarray, ratio: np.ndarray, ref_ratio: float) -> float:
    """2-D hypervolume of points (mIoU ↑, latency ratio ↓) against (0, ``ref_ratio``)."""
    keep = (ratio < ref_ratio) & (miou > 0)
    pts = sorted(zip(ratio[keep], miou[keep], strict=True))
    hv, best = 0.0, 0.0
    for i, (r, m) in enumerate(pts):  # sweep by latency: each point adds its accuracy above the best so far
        nxt = pts[i + 1][0] if i + 1 < len(pts) else ref_ratio
        best = max(best, m)
        hv += (nxt - r) * best
    return float(hv)


def run_one(run_dir: Path, overrides: list[str], cache: Path) -> float:
    """Run (or resume) one search + final stage; returns its wall seconds (0 when it had finished)."""
    summary = run_dir / "summary.json"
    if summary.is_file() and "final" in json.loads(summary.read_text()):
        return 0.0
    cmd = [sys.executable, str(ROOT / "src" / "search.py"), *overrides, f"final.cache={cache}",
           f"hydra.run.dir={run_dir}"]  # fmt: skip
    if (run_dir / "study.journal").is_file():
        cmd.append(f"search.resume={run_dir}")
    t0 = time.perf_counter()
    with open(run_dir.parent / f"{run_dir.name}.log", "a") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    return time.perf_counter() - t0


def score(run_dir: Path, ref_ratio: float) -> dict[str, Any]:
    """The figures of one finished run (``error`` when it did not finish)."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
        final = summary["final"]
        df = pd.read_csv(run_dir / "final" / "final.csv")
    except (OSError, KeyError, ValueError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    failed = df["error"].notna() & df["error"].astype(str).ne("")
    ok = df[~failed & df["latency_vs_baseline"].notna()]
    base = final.get("baseline") or {}
    return {
        "hv": hypervolume(
            ok["full_miou_fp32"].to_numpy(float), ok["latency_vs_baseline"].to_numpy(float), ref_ratio
        ),
        "beats": bool(final.get("beats_baseline")),
        "winners": final.get("winners") or [],
        "baseline": f"{base.get('mean', float('nan')):.3f} ± {base.get('std', float('nan')):.3f} (n={base.get('n')})",
        "searched": ", ".join(
            f"{r.full_miou_fp32:.3f}@{r.latency_vs_baseline:.2f}x"
            for r in ok[ok["role"] == "front"].itertuples()
        ),
        "search_s": float(summary.get("wall_seconds", np.nan)),
        "final_s": float(final.get("wall_seconds", np.nan)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strategies", default="evolution_pareto,surrogate_pareto")
    ap.add_argument("--evaluators", default="train,supernet")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--n-trials",
        type=int,
        default=None,
        help="one search budget for every run (default: the evaluator's)",
    )
    ap.add_argument(
        "--variants",
        default="{}",
        help='JSON {name: [overrides]}: configurations besides the default, e.g. {"fidelity": ["search.fidelity=..."]}',
    )
    ap.add_argument(
        "--ref-ratio", type=float, default=2.0, help="reference latency, as a multiple of the baseline's"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "face")
    ap.add_argument(
        "overrides", nargs="*", help="Hydra overrides for every run (e.g. hardware=snapdragon888)"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "final_cache"
    rows = []
    variants = {"": [], **json.loads(args.variants)}
    for strategy, evaluator, (variant, extra) in itertools.product(
        args.strategies.split(","), args.evaluators.split(","), variants.items()
    ):
        for seed in [int(s) for s in args.seeds.split(",")]:
            label = f"{evaluator}+{variant}" if variant else evaluator
            name = f"{strategy}-{label}-s{seed}"
            over = [f"search={strategy}", f"evaluator={evaluator}", f"seed={seed}", *args.overrides, *extra]
            if args.n_trials:
                over.append(f"search.n_trials={args.n_trials}")
            wall = run_one(args.out / name, over, cache)
            row = {"strategy": strategy, "evaluator": label, "seed": seed, "wall_s": wall,
                   **score(args.out / name, args.ref_ratio)}  # fmt: skip
            rows.append(row)
            print(f"{name}: {json.dumps(row, default=str)}", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "results.csv", index=False)
    print(f"\nbench-face: {len(df)} run(s); hypervolume of the fully trained final front on (test mIoU, latency / "
          f"baseline's) against (0, {args.ref_ratio:g}x)\n")  # fmt: skip
    print("| strategy | evaluator | seed | final-front HV | beats baseline | searched (mIoU@latency ratio) | "
          "baseline test mIoU | search s | final s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in df.to_dict("records"):
        if r.get("error") and not isinstance(r.get("hv"), float):
            print(f"| {r['strategy']} | {r['evaluator']} | {r['seed']} | failed: {r['error']} | | | | | |")
            continue
        print(f"| {r['strategy']} | {r['evaluator']} | {r['seed']} | {r['hv']:.4f} | {'**yes**' if r['beats'] else 'no'} "
              f"| {r['searched']} | {r['baseline']} | {r['search_s']:.0f} | {r['final_s']:.0f} |")  # fmt: skip
    if "hv" in df.columns:
        agg = (
            df.dropna(subset=["hv"])
            .groupby(["strategy", "evaluator"])
            .agg(median_hv=("hv", "median"), beats=("beats", "sum"), runs=("hv", "size"))
        )
        print("\n| strategy | evaluator | median HV | runs beating the baseline |\n|---|---|---|---|")
        for (s, e), a in agg.iterrows():
            print(f"| {s} | {e} | {a['median_hv']:.4f} | {int(a['beats'])}/{int(a['runs'])} |")


if __name__ == "__main__":
    main()

"""Benchmark search strategies on the NAS-Bench-201 x hardware ground truth (HV ratio, IGD+, true-front hits).

``make bench-search ARGS="--strategies random motpe --seeds 10"``. Every (strategy, seed) is ONE real
search (``hwnas.tasks.search.run`` on a config composed with ``experiment=nb201``) at the largest budget;
the score at a smaller budget B comes from the first B unique architectures that run evaluated (trials
in order, duplicates excluded). That is the same as a run stopped at B because no sampler knows its budget.

Writes ``results.md`` (also printed), ``results.csv`` (one row per strategy, seed and budget) and
``hv_curve.png`` (median HV ratio vs unique evaluations, IQR bands) under ``--out``. Finished runs are
reused when the bench is run again with the same settings (``--fresh`` reruns them), so a slow strategy
can be added later with its own ``--seeds``. Figures, never assertions: timings depend on machine and load.
"""

from __future__ import annotations

import os

# Before numpy/torch load: BLAS threads on a few busy cores slow the GP-based samplers ~35x.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwnas.benchmark.table import DIRECTIONS, load_table, reference_point, score, true_front  # noqa: E402
from hwnas.pareto import hypervolume_2d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"
ALL_STRATEGIES = (
    "random",
    "evolution_pareto",
    "nsga3",
    "regularized_evolution",
    "local_search",
    "motpe",
    "gp",
    "surrogate_pareto",
)
# Overrides per strategy (printed in results.md); empty: every strategy runs as shipped in conf/search/.
DEFAULT_OVERRIDES: dict[
    str, list[str]
] = {}  # every strategy runs with its conf/search/<name>.yaml as shipped
# The figures (median of 20 seeds, HV ratio, CIFAR-10 x Pixel 3).
TO_BEAT = [
    ("random", "0.892", "0.929", ""),
    ("NSGA-II pop50", "0.877", "0.954", ""),
    ("NSGA-II pop20", "0.917", "0.970", ""),
    ("MO-TPE", "0.932", "0.971", "6.40"),
    ("Archai EvolutionPareto", "0.925", "0.965", ""),
]
STORAGE_NOTE = {
    "journal": "the CLI default, the journal file in the run dir (hwnas.search.storage.journal: ~3-5 ms/trial; append-only, resumable)",
    "sqlite": "SQLite in the run dir (~40 ms/trial, dominates a table search)",
    "memory": "in-memory (fastest; not resumable, so not what a user's search runs on)",
}


@dataclass(frozen=True)
class Strategy:
    """One benchmarked configuration: a ``conf/search`` option plus overrides, with a display label."""

    name: str
    overrides: tuple[str, ...] = ()
    label: str = ""

    @classmethod
    def parse(cls, text: str) -> Strategy:
        """``name`` or ``name@key=value,key=value`` (keys under ``search.``, e.g. ``sampler.population_size=10``)."""
        name, _, rest = text.partition("@")
        if name not in ALL_STRATEGIES and not (ROOT / "conf" / "search" / f"{name}.yaml").is_file():
            raise SystemExit(f"unknown strategy {name!r}; choices: {', '.join(ALL_STRATEGIES)}")
        if rest:
            ovr = tuple(f"search.{kv.strip()}" for kv in rest.split(",") if kv.strip())
            return cls(name, ovr, text)
        return cls(name, tuple(DEFAULT_OVERRIDES.get(name, ())), name)


@dataclass
class RunSpec:
    """Everything a worker needs to run one search."""

    strategy: Strategy
    seed: int
    n_trials: int
    accuracy: str
    latency: str
    storage: str
    run_dir: Path
    extra: list[str] = field(default_factory=list)

    def overrides(self) -> list[str]:
        """Hydra overrides for ``conf/search.yaml``, exactly as the CLI would take them."""
        storage = {
            "journal": f"search.storage=journal:{self.run_dir / 'study.journal'}",
            "sqlite": f"search.storage=sqlite:///{self.run_dir / 'study.db'}",
            "memory": "search.storage=memory",
        }
        out = [
            "experiment=nb201",
            f"search={self.strategy.name}",
            f"search.n_trials={self.n_trials}",
            f"seed={self.seed}",
            f"benchmark.accuracy={self.accuracy}",
            f"benchmark.latency={self.latency}",
            f"benchmark.path={TABLE}",
            *self.strategy.overrides,
            *self.extra,
        ]
        if self.storage in storage:
            out.append(storage[self.storage])
        return out


def run_search(spec: RunSpec) -> dict[str, Any]:
    """Run one search in this (worker) process; return its timings. Outputs land in ``spec.run_dir``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from hwnas.tasks.search import run

    spec.run_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("study.journal", "study.db", "trials.csv", "summary.json"):
        (spec.run_dir / stale).unlink(missing_ok=True)  # a fresh run, never a resume of an old one
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=spec.overrides())
    with open_dict(cfg):
        cfg.run_dir = str(spec.run_dir)
        cfg.paths.root_dir = str(ROOT)
        cfg.paths.output_dir = str(spec.run_dir / "outputs")
    t0 = time.perf_counter()
    summary = run(cfg)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "loop_s": float(summary["wall_seconds"])}


def unique_evaluations(trials: pd.DataFrame) -> pd.DataFrame:
    """Evaluated architectures in the order the search found them: trials by number, duplicates dropped."""
    df = trials.sort_values("number")
    dup = df["duplicate"].astype(str).str.lower().isin(("true", "1"))
    df = df[~dup & (df["state"] == "COMPLETE")]
    return df.drop_duplicates("arch_key").reset_index(drop=True)


def score_run(
    trials: pd.DataFrame,
    front: pd.DataFrame,
    *,
    accuracy: str,
    latency: str,
    budgets: list[int],
    ref: tuple[float, float],
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Score one run at each budget, and its HV-ratio curve over unique evaluations 1..max(budgets).

    Returns:
        One dict per budget (``budget``, ``unique``, ``duplicates`` suggested before the budget was
        reached, and :func:`hwnas.benchmark.table.score`'s fields), and the curve (NaN past the run's end).
    """
    uniq = unique_evaluations(trials)
    # trials.csv's own ``arch`` column is the spec as JSON; the table keys architectures by the NB201 string.
    found = uniq.drop(columns=["arch"], errors="ignore")
    found = found.rename(columns={"arch_key": "arch", "accuracy": accuracy, "latency_ms": latency})
    found = found[["arch", "number", accuracy, latency]]
    dup = trials["duplicate"].astype(str).str.lower().isin(("true", "1")).to_numpy()
    numbers = trials["number"].to_numpy()
    rows = []
    for b in budgets:
        sub = found.iloc[:b]
        last = int(sub["number"].max()) if len(sub) else -1
        row = {"budget": b, "unique": len(sub), "duplicates": int(dup[numbers <= last].sum())}
        row.update(score(sub, front, accuracy=accuracy, latency=latency, key="arch", ref=ref))
        rows.append(row)
    hv_true = hypervolume_2d(front[[accuracy, latency]].to_numpy(float), ref, DIRECTIONS)
    pts = found[[accuracy, latency]].to_numpy(float)
    curve = np.full(max(budgets), np.nan)
    for i in range(min(len(pts), len(curve))):
        curve[i] = hypervolume_2d(pts[: i + 1], ref, DIRECTIONS) / hv_true
    return rows, curve


def overhead(trials: pd.DataFrame, loop_s: float) -> dict[str, float]:
    """Framework overhead: search-loop wall time minus the evaluator's time, per trial (duplicates included)."""
    eval_s = float(trials[["seconds_cheap", "seconds_expensive"]].fillna(0).to_numpy().sum())
    n = max(len(trials), 1)
    return {
        "eval_s": eval_s,
        "overhead_s": loop_s - eval_s,
        "overhead_ms_per_trial": 1000 * (loop_s - eval_s) / n,
    }


def _q(x: pd.Series, q: float) -> float:
    return float(np.nanquantile(x.to_numpy(float), q)) if x.notna().any() else float("nan")


def aggregate(raw: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """One row per strategy: median [IQR] HV ratio, median IGD+, mean/median true-front hits per budget, timings."""
    out = []
    for label, g in raw.groupby("strategy", sort=False):
        row: dict[str, Any] = {"strategy": label, "seeds": g["seed"].nunique()}
        for b in budgets:
            s = g[g["budget"] == b]
            row[f"hv@{b}"] = _q(s["hv_ratio"], 0.5)
            row[f"hv_q25@{b}"] = _q(s["hv_ratio"], 0.25)
            row[f"hv_q75@{b}"] = _q(s["hv_ratio"], 0.75)
            row[f"igd@{b}"] = _q(s["igd_plus"], 0.5)
            row[f"tf_mean@{b}"] = float(s["true_front_found"].mean())
            row[f"tf_median@{b}"] = _q(s["true_front_found"], 0.5)
        last = g[g["budget"] == max(budgets)]
        row["duplicates"] = float(last["duplicates"].mean())
        row["wall_s"] = _q(last["wall_s"], 0.5)
        row["overhead_ms_per_trial"] = _q(last["overhead_ms_per_trial"], 0.5)
        row["overhead_s"] = _q(last["overhead_s"], 0.5)
        out.append(row)
    return pd.DataFrame(out)


def markdown(agg: pd.DataFrame, budgets: list[int]) -> str:
    """The results table: rows = strategies, budgets side by side, then timings."""
    head = ["strategy", "seeds"]
    for b in budgets:
        head += [f"HV@{b} median [IQR]", f"IGD+@{b}", f"front hits@{b} mean / median"]
    head += ["dups/run", "wall s/run", "overhead ms/trial", "overhead s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for _, r in agg.iterrows():
        cells = [f"{r['strategy']}", f"{r['seeds']}"]
        for b in budgets:
            cells += [
                f"{r[f'hv@{b}']:.3f} [{r[f'hv_q25@{b}']:.3f}, {r[f'hv_q75@{b}']:.3f}]",
                f"{r[f'igd@{b}']:.4f}",
                f"{r[f'tf_mean@{b}']:.2f} / {r[f'tf_median@{b}']:.1f}",
            ]
        cells += [
            f"{r['duplicates']:.1f}",
            f"{r['wall_s']:.1f}",
            f"{r['overhead_ms_per_trial']:.1f}",
            f"{r['overhead_s']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, list[np.ndarray]], path: Path, title: str) -> None:
    """Median HV ratio vs unique evaluations per strategy, with interquartile bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, runs in curves.items():
        arr = np.vstack(runs)
        x = np.arange(1, arr.shape[1] + 1)
        med = np.nanmedian(arr, axis=0)
        (line,) = ax.plot(x, med, label=label, lw=1.5)
        ax.fill_between(
            x,
            np.nanquantile(arr, 0.25, axis=0),
            np.nanquantile(arr, 0.75, axis=0),
            color=line.get_color(),
            alpha=0.15,
            lw=0,
        )
    ax.set(xlabel="unique architectures evaluated", ylabel="HV ratio (found / true)", title=title)
    ax.set_ylim(0.5, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accuracy", default="cifar10_test_acc", help="accuracy column (maximised)")
    ap.add_argument("--latency", default="pixel3_latency_ms", help="latency column (minimised)")
    ap.add_argument(
        "--strategies",
        nargs="+",
        default=list(ALL_STRATEGIES),
        help="conf/search options; NAME@key=val,... overrides keys under search. (a variant)",
    )
    ap.add_argument("--budgets", nargs="+", type=int, default=[100, 300], help="unique evaluations scored")
    ap.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per strategy")
    ap.add_argument(
        "--seeds-for",
        nargs="*",
        default=[],
        metavar="STRATEGY=N",
        help="fewer (or more) seeds for some strategies, e.g. gp=3 (a slow sampler)",
    )
    ap.add_argument("--jobs", type=int, default=2, help="searches run in parallel (worker processes)")
    ap.add_argument(
        "--storage",
        choices=sorted(STORAGE_NOTE),
        default="journal",
        help="study storage: journal (the CLI's default, resumable and ~3-5 ms/trial), sqlite "
        "(~40 ms/trial), memory",
    )
    ap.add_argument(
        "--overhead-at",
        nargs="*",
        type=int,
        default=[300, 2000, 10000],
        help="study sizes (unique table trials) at which to measure the per-trial framework overhead, one "
        "search each, run one at a time (none: skip)",
    )
    ap.add_argument(
        "--overhead-strategies", nargs="+", default=["random", "evolution_pareto"], help="strategies timed"
    )
    ap.add_argument(
        "--overhead-repeats",
        type=int,
        default=3,
        help="searches per size; the median is reported (a 300-trial loop lasts ~2 s: one run is noisy)",
    )
    ap.add_argument(
        "--overhead-only",
        action="store_true",
        help="only the per-trial overhead at scale (no strategy scores)",
    )
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/<accuracy>__<latency>/")
    ap.add_argument("--fresh", action="store_true", help="rerun searches whose results already exist")
    args = ap.parse_args()

    budgets = sorted(set(args.budgets))
    n_trials = budgets[-1]
    out: Path = args.out or ROOT / "bench" / "results" / f"{args.accuracy}__{args.latency}"
    out.mkdir(parents=True, exist_ok=True)
    if args.overhead_only:
        text = overhead_at_scale(args, out)
        (out / "overhead.md").write_text(text)
        print(text)
        return
    strategies = [Strategy.parse(s) for s in args.strategies]
    n_seeds = {st.label: args.seeds for st in strategies}
    for item in args.seeds_for:
        label, _, n = item.rpartition("=")
        if label not in n_seeds or not n.isdigit():
            raise SystemExit(
                f"--seeds-for {item!r}: expected STRATEGY=N with STRATEGY one of {list(n_seeds)}"
            )
        n_seeds[label] = int(n)
    table = load_table(TABLE, accuracy=args.accuracy, latency=args.latency)
    front = true_front(table, args.accuracy, args.latency)
    ref = reference_point(front, args.accuracy, args.latency)
    hv_true = hypervolume_2d(front[[args.accuracy, args.latency]].to_numpy(float), ref, DIRECTIONS)

    specs, timings = [], {}
    for st in strategies:
        for seed in range(n_seeds[st.label]):
            safe = st.label.replace("@", "__").replace("=", "-").replace(",", "_").replace("/", "_")
            spec = RunSpec(
                st,
                seed,
                n_trials,
                args.accuracy,
                args.latency,
                args.storage,
                out / "runs" / args.storage / safe / f"seed{seed}",
            )
            done = spec.run_dir / "bench.json"
            if not args.fresh and done.is_file():
                rec = json.loads(done.read_text())
                if rec.get("overrides") == spec.overrides():
                    timings[(st.label, seed)] = rec
                    continue
            specs.append(spec)
    print(
        f"{len(specs)} searches to run ({len(timings)} reused), {args.jobs} at a time, storage={args.storage}",
        flush=True,
    )
    t_bench = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(run_search, s): s for s in specs}
        for fut in as_completed(futs):
            s = futs[fut]
            rec = {**fut.result(), "overrides": s.overrides()}
            (s.run_dir / "bench.json").write_text(json.dumps(rec, indent=1) + "\n")
            timings[(s.strategy.label, s.seed)] = rec
            print(f"  {s.strategy.label:28s} seed {s.seed:2d}: {rec['wall_s']:6.1f} s", flush=True)
    bench_s = time.perf_counter() - t_bench

    raw, curves = [], {st.label: [] for st in strategies}
    for st in strategies:
        for seed in range(n_seeds[st.label]):
            safe = st.label.replace("@", "__").replace("=", "-").replace(",", "_").replace("/", "_")
            run_dir = out / "runs" / args.storage / safe / f"seed{seed}"
            trials = pd.read_csv(run_dir / "trials.csv")
            rec = timings[(st.label, seed)]
            rows, curve = score_run(
                trials, front, accuracy=args.accuracy, latency=args.latency, budgets=budgets, ref=ref
            )
            curves[st.label].append(curve)
            extra = {
                "strategy": st.label,
                "seed": seed,
                "wall_s": rec["wall_s"],
                "loop_s": rec["loop_s"],
                "trials": len(trials),
                "storage": args.storage,
                **overhead(trials, rec["loop_s"]),
            }
            raw += [{**extra, **r} for r in rows]
    raw_df = pd.DataFrame(raw)
    raw_df.to_csv(out / "results.csv", index=False)
    agg = aggregate(raw_df, budgets)
    title = f"{args.accuracy} (max) x {args.latency} (min)"
    plot_curves(curves, out / "hv_curve.png", title)

    over = {st.label: list(st.overrides) for st in strategies if st.overrides}
    to_beat = "\n".join(f"| {n} | {a} | {b} | {c} |" for n, a, b, c in TO_BEAT)
    text = f"""# Search strategies on NAS-Bench-201: {title}

Ground truth: `{TABLE.name}`, true front of {len(front)} architectures (chance-level cells excluded).
Reference point ({ref[0]:.6g} %, {ref[1]:.6g} ms), HV_true = {hv_true:.6g}.
Each (strategy, seed) is one search of {n_trials} unique architectures; the score at a smaller budget B
uses that run's first B unique evaluations (trials in order, duplicates excluded), which is valid because
no sampler knows its budget. Medians over seeds; [IQR] = 25th, 75th percentiles. IGD+ is normalised
(0 = perfect). Front hits = true-front members evaluated (of {len(front)}).
Storage: {args.storage}: {STORAGE_NOTE[args.storage]}. Overrides beyond the conf/search presets:
{json.dumps(over) if over else "none"}. Overhead = search-loop wall time minus evaluator time, per trial
(sampler + storage + bookkeeping); wall s/run = the whole `run(cfg)` incl. setup, plots and export.

{markdown(agg, budgets)}

To beat (issue, median of 20 seeds, CIFAR-10 x Pixel 3):

| method | HV@100 | HV@300 | front hits@300 (of 42) |
|---|---|---|---|
{to_beat}

Bench wall time {bench_s:.0f} s for {len(specs)} new searches ({args.jobs} parallel jobs).
"""
    if args.overhead_at:
        text += "\n" + overhead_at_scale(args, out)
    (out / "results.md").write_text(text)
    print(text)


def overhead_at_scale(args: argparse.Namespace, out: Path) -> str:
    """Per-trial framework overhead of table searches of growing size (one at a time, so no search
    competes with another for the CPU); a markdown section. It must not grow with the study."""
    rows = []
    for name in args.overhead_strategies:
        st = Strategy.parse(name)
        for n in sorted(set(args.overhead_at)):
            runs = []
            for rep in range(max(1, args.overhead_repeats)):
                run_dir = out / "runs" / "overhead" / args.storage / st.label / f"n{n}-r{rep}"
                shutil.rmtree(run_dir, ignore_errors=True)  # a fresh study: resuming would time nothing
                spec = RunSpec(st, 0, n, args.accuracy, args.latency, args.storage, run_dir)
                rec = run_search(spec)
                trials = pd.read_csv(run_dir / "trials.csv")
                o = overhead(trials, rec["loop_s"])
                runs.append({"trials": len(trials), "loop_s": rec["loop_s"], **o})
                print(f"  overhead {st.label:18s} {n:6d} unique: {o['overhead_ms_per_trial']:6.2f} ms/trial "
                      f"({len(trials)} trials, loop {rec['loop_s']:.1f} s)", flush=True)  # fmt: skip
            med = sorted(runs, key=lambda r: r["overhead_ms_per_trial"])[len(runs) // 2]
            rows.append({"strategy": st.label, "unique": n, "runs": len(runs), **med})
    df = pd.DataFrame(rows)
    df.to_csv(out / "overhead.csv", index=False)
    lines = [
        f"## Per-trial overhead at scale (storage {args.storage}, one search at a time, median of "
        f"{max(1, args.overhead_repeats)} runs)",
        "",
        "| strategy | unique | trials | loop s | overhead ms/trial | × the smallest |",
        "|---|---|---|---|---|---|",
    ]
    for label, part in df.groupby("strategy", sort=False):
        first = float(part["overhead_ms_per_trial"].iloc[0])
        for _, r in part.iterrows():
            lines.append(
                f"| {label} | {int(r['unique'])} | {int(r['trials'])} | {r['loop_s']:.1f} | "
                f"{r['overhead_ms_per_trial']:.2f} | {r['overhead_ms_per_trial'] / first:.2f} |"
            )
    return "\n".join(lines) + "\n"
    print(f"wrote {out / 'results.md'}, {out / 'results.csv'}, {out / 'hv_curve.png'}")


if __name__ == "__main__":
    main()

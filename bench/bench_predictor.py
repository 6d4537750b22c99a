"""Benchmark ``hardware=predictor`` on the NAS-Bench-201 hardware table, one device at a time as unseen.

``make bench-predictor`` (``ARGS="--seeds 5 --devices raspi4_latency_ms"``). For every latency column of
``nb201_hw.csv.gz`` and every seed, the predictor starts knowing nothing about the device: it measures a
well-spread seed set (10, then 20 architectures, farthest-first in feature space), then batches drawn
with probability proportional to the model's predictive spread (``select.by_uncertainty``), up to 200. At 10, 20, 50 and 200 measurements it predicts
every architecture it has not measured; the scores are over those:

* Spearman rho between predicted and true latency;
* the share of architectures predicted within ±10 % of their true latency;
* the coverage of the stated 90 % intervals (the share of true latencies inside them).

Baselines, fitted on the same measured architectures (``log t = a + b log x``, Theil-Sen): FLOPs only,
params only (the table's ``flops_m`` / ``params``), and the Snapdragon 888 roofline estimate of this
project's NB201 export (``hwnas.hardware.estimate``). Exporting costs ~0.5 s per architecture, so the
roofline baseline is scored on a fixed random subset (``--roofline-n``; cached under ``--cache``): its
rank correlation on that subset, its ±10 % share fitted on ``n`` subset members and scored on the rest.

Tuning devices (``--tune``): Pixel 3, FPGA, GTX 1080 Ti batch 1; every other column is reported as an
unseen device. Writes ``results.csv`` (one row per device, seed, budget and method), ``results.md``
(also printed) and ``summary.json`` under ``--out``. Figures, never assertions.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr, theilslopes  # noqa: E402

from hwnas.hardware.predictor.features import NB201Features  # noqa: E402
from hwnas.hardware.predictor.model import LatencyModel  # noqa: E402
from hwnas.hardware.predictor.select import by_uncertainty, spread  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_hw.csv.gz"
TUNE = ("pixel3_latency_ms", "fpga_latency_ms", "gtx1080ti_b1_latency_ms")
BUDGETS = (10, 20, 50, 200)
#: Measurement counts at which the model is refitted on the way to the largest budget.
STEPS = (10, 20, 30, 40, 50, 70, 100, 140, 200, 300, 400, 500)
SEED_SET = 20

_STATE: dict[str, Any] = {}  # the table and features, shared with forked workers


def _loglinear(x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``exp(a + b log x)``, Theil-Sen fitted on the measured pairs (robust to a few degenerate cells)."""
    ok = (x_fit > 0) & (y_fit > 0)
    b, a, _, _ = theilslopes(np.log(y_fit[ok]), np.log(x_fit[ok]))
    return np.exp(a + b * np.log(np.maximum(x, 1e-12)))


def _scores(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    return float(spearmanr(pred, true)[0]), float(np.mean(np.abs(pred / true - 1.0) <= 0.10))


def trajectory(device: str, seed: int, budgets: tuple[int, ...], selection: str) -> list[dict[str, Any]]:
    """One device, one seed: measure, fit, predict at every budget; baselines on the same measurements."""
    X, df, fx = _STATE["X"], _STATE["df"], _STATE["fx"]
    roof = _STATE["roofline"]
    y = df[device].to_numpy(dtype=float)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(seed)
    seed_set = spread(X, SEED_SET, seed=seed)
    order = rng.permutation(len(y))
    taken = order[: budgets[0]] if selection == "random" else seed_set[: min(budgets[0], SEED_SET)]
    steps = [s for s in STEPS if s <= max(budgets)] + [b for b in budgets if b not in STEPS]
    steps = sorted(set(steps) | set(budgets))
    t0 = time.perf_counter()
    for i, n in enumerate(steps):
        if n < len(taken):
            continue
        model = LatencyModel(level=0.9, prior=fx.prior_index(), seed=seed).fit(X[taken], y[taken])
        if n in budgets:
            pred = model.predict(X)
            rest = np.setdiff1d(np.arange(len(y)), taken)
            rho, w10 = _scores(pred.median_ms[rest], y[rest])
            inside = (y[rest] >= pred.lo_ms[rest]) & (y[rest] <= pred.hi_ms[rest])
            common = {"device": device, "seed": seed, "n": n, "selection": selection}
            rows.append({**common, "method": "predictor", "rho": rho, "within10": w10,
                         "coverage90": float(inside.mean()),
                         "halfwidth": float(np.median(pred.rel_halfwidth[rest])),
                         "seconds": round(time.perf_counter() - t0, 2)})  # fmt: skip
            for name, col in (("flops_only", "flops_m"), ("params_only", "params")):
                x = df[col].to_numpy(dtype=float)
                base = _loglinear(x[taken], y[taken], x[rest])
                rows.append({**common, "method": name, **dict(zip(("rho", "within10"), _scores(base, y[rest]), strict=True))})  # fmt: skip
            if roof is not None:
                idx = roof["index"].to_numpy()
                fit = rng.permutation(len(idx))[: min(n, len(idx) - 20)]
                test = np.setdiff1d(np.arange(len(idx)), fit)
                r = roof["roofline_ms"].to_numpy()
                base = _loglinear(r[fit], y[idx[fit]], r[test])
                rows.append({**common, "method": "roofline", "rho": float(spearmanr(r, y[idx])[0]),
                             "within10": _scores(base, y[idx[test]])[1]})  # fmt: skip
        if i + 1 >= len(steps):
            break
        want = steps[i + 1]
        if selection == "random":
            taken = order[:want]
        elif selection == "uncertain" and want > SEED_SET:  # ablation: the most uncertain first
            pred = model.predict(X)
            free = np.setdiff1d(np.arange(len(y)), taken)
            taken = np.r_[taken, free[np.argsort(-pred.log_sd[free], kind="stable")[: want - len(taken)]]]
        elif want <= SEED_SET:
            taken = seed_set[:want]
        else:
            pred = model.predict(X)
            extra = by_uncertainty(pred.log_sd, want - len(taken), taken=taken, seed=seed * 1000 + want)
            taken = np.r_[taken, extra]
    return rows


def roofline_subset(n: int, cache: Path, seed: int = 0) -> pd.DataFrame | None:
    """The Snapdragon 888 roofline estimate of ``n`` random NB201 architectures (exported once, cached)."""
    if n <= 0:
        return None
    import onnx

    from hwnas.hardware.estimate import estimate_onnx
    from hwnas.hardware.export import export_onnx
    from hwnas.search_space.nb201 import NB201Space

    df = _STATE["df"]
    path = cache / f"nb201_roofline_{n}_seed{seed}.csv"
    if path.is_file():
        return pd.read_csv(path)
    cache.mkdir(parents=True, exist_ok=True)
    idx = np.sort(np.random.default_rng(seed).choice(len(df), n, replace=False))
    space, rows, t0 = NB201Space(), [], time.perf_counter()
    print(f"roofline baseline: exporting {n} NB201 architectures once (cached in {path}) ...", flush=True)
    for i in idx:
        model = space.build(space.from_arch_string(df["arch"].iloc[i])).eval()
        onnx_path = export_onnx(model, (1, 3, 32, 32), cache / "tmp.onnx")
        rows.append({"index": int(i), "roofline_ms": estimate_onnx(onnx.load(str(onnx_path)))[0]})
    (cache / "tmp.onnx").unlink(missing_ok=True)
    out = pd.DataFrame(rows)
    out.to_csv(path, index=False)
    print(f"  done in {time.perf_counter() - t0:.0f}s", flush=True)
    return out


def _table(res: pd.DataFrame, devices: list[str], budgets: tuple[int, ...]) -> list[str]:
    """Markdown rows: predictor rho / within-10 % / coverage per budget, baselines at the largest."""
    top = max(budgets)
    head = (
        ["device"]
        + [f"ρ@{b}" for b in budgets]
        + [f"±10%@{b}" for b in budgets]
        + [f"cov90@{b}" for b in budgets]
    )
    head += [f"{m} ρ / ±10%@{top}" for m in ("flops_only", "params_only", "roofline")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mean = res.groupby(["device", "method", "n"])[["rho", "within10", "coverage90"]].mean()

    def cell(dev: str, method: str, n: int, col: str, fmt: str = "{:.3f}") -> str:
        try:
            v = mean.loc[(dev, method, n), col]
        except KeyError:
            return "—"
        return "—" if pd.isna(v) else fmt.format(v)

    for dev in devices:
        row = [dev.replace("_latency_ms", "")]
        row += [cell(dev, "predictor", b, "rho") for b in budgets]
        row += [cell(dev, "predictor", b, "within10", "{:.0%}") for b in budgets]
        row += [cell(dev, "predictor", b, "coverage90", "{:.0%}") for b in budgets]
        row += [
            f"{cell(dev, m, top, 'rho')} / {cell(dev, m, top, 'within10', '{:.0%}')}"
            for m in ("flops_only", "params_only", "roofline")
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _medians(res: pd.DataFrame, devices: list[str], budgets: tuple[int, ...]) -> dict[str, Any]:
    """Per method and budget: the median over ``devices`` of each device's mean over seeds."""
    sub = res[res["device"].isin(devices)]
    per_dev = sub.groupby(["method", "n", "device"])[["rho", "within10", "coverage90"]].mean()
    med = per_dev.groupby(["method", "n"]).median()
    out: dict[str, Any] = {}
    for (method, n), r in med.iterrows():
        out.setdefault(method, {})[int(n)] = {
            k: (None if pd.isna(v) else round(float(v), 4)) for k, v in r.items()
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", type=Path, default=TABLE)
    ap.add_argument("--devices", nargs="*", default=None, help="latency columns (default: every one)")
    ap.add_argument("--tune", nargs="*", default=list(TUNE), help="tuning devices (reported apart)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", type=int, nargs="*", default=list(BUDGETS))
    ap.add_argument("--selection", choices=("al", "random", "uncertain"), default="al",
                    help="al: spread seed set, then draws weighted by uncertainty (the predictor's way); "
                    "ablations: random (uniform draws), uncertain (spread seed set, then the most uncertain)")  # fmt: skip
    ap.add_argument(
        "--roofline-n", type=int, default=400, help="architectures exported for the roofline baseline"
    )
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--cache", type=Path, default=ROOT / "outputs" / "cache" / "bench_predictor")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "predictor")
    args = ap.parse_args()
    if not args.table.is_file():
        raise SystemExit(f"NB201 table not found at {args.table} (it lives in ../shared/data/nb201/)")
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    df = pd.read_csv(args.table)
    devices = args.devices or [c for c in df.columns if c.endswith("_latency_ms")]
    missing = [d for d in devices if d not in df.columns]
    if missing:
        raise SystemExit(f"unknown latency columns {missing}")
    fx = NB201Features()
    _STATE.update(df=df, fx=fx, X=fx.matrix(df["arch"].tolist()), roofline=None)
    _STATE["roofline"] = roofline_subset(args.roofline_n, args.cache)
    budgets = tuple(sorted(args.budgets))
    jobs = [(d, s, budgets, args.selection) for d in devices for s in range(args.seeds)]
    rows: list[dict[str, Any]] = []
    print(
        f"{len(devices)} devices x {args.seeds} seeds, budgets {budgets}, {args.jobs} processes", flush=True
    )
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for out in pool.map(trajectory, *zip(*jobs, strict=True)):
            rows += out
            print(f"  {out[0]['device']} seed {out[0]['seed']}: ρ@{budgets[1] if len(budgets) > 1 else budgets[0]} "
                  f"{[r['rho'] for r in out if r['method'] == 'predictor'][min(1, len(budgets) - 1)]:.3f}", flush=True)  # fmt: skip
    res = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    res.to_csv(args.out / "results.csv", index=False)
    tune = [d for d in devices if d in args.tune]
    unseen = [d for d in devices if d not in args.tune]
    summary = {"unseen": _medians(res, unseen, budgets), "tuning": _medians(res, tune, budgets),
               "unseen_devices": unseen, "tuning_devices": tune, "seeds": args.seeds, "budgets": list(budgets),
               "selection": args.selection, "roofline_subset": args.roofline_n,
               "wall_seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    md = [f"# hardware=predictor on NB201 ({args.seeds} seeds, selection {args.selection})", ""]
    for title, devs in (("Unseen devices", unseen), ("Tuning devices", tune)):
        if not devs:
            continue
        md += [f"## {title}", "", *_table(res, devs, budgets), ""]
        med = _medians(res, devs, budgets)
        md.append(f"Median over {len(devs)} devices:")
        md.append("")
        md.append("| method | " + " | ".join(f"ρ@{b}" for b in budgets) + " | " + " | ".join(f"±10%@{b}" for b in budgets) + " |")  # fmt: skip
        md.append("|" + "---|" * (1 + 2 * len(budgets)))
        for method in ("predictor", "flops_only", "params_only", "roofline"):
            m = med.get(method, {})
            rho = [f"{m[b]['rho']:.3f}" if b in m and m[b]["rho"] is not None else "—" for b in budgets]
            w10 = [
                f"{m[b]['within10']:.0%}" if b in m and m[b]["within10"] is not None else "—" for b in budgets
            ]
            md.append(f"| {method} | " + " | ".join(rho + w10) + " |")
        if "predictor" in med:
            cov = " / ".join(
                f"{med['predictor'][b]['coverage90']:.0%}" for b in budgets if b in med["predictor"]
            )
            md += ["", f"Coverage of the stated 90 % intervals (median): {cov} at {budgets}.", ""]
    md.append(f"Wall time {summary['wall_seconds']:.0f} s.")
    (args.out / "results.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()

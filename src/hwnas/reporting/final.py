"""The final stage's outputs: ``final.csv``, ``final_front.csv``, two charts and report.md's "pick a model".

Only draws and tabulates what ``tasks/final.py`` measured; computes no new numbers besides the front.
Columns are named after the run's headline metric (:func:`metric_of`): ``*_miou*`` for segmentation,
``*_acc*`` (top-1 accuracy) for classification.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from hwnas.pareto import pareto_mask  # noqa: E402
from hwnas.utils.io import write_atomic  # noqa: E402

#: Headline metric -> (its name in charts and tables, the classes F1 averages over).
METRICS = {"miou": ("mIoU", "classes 1–17"), "acc": ("top-1 accuracy", "every class")}


def metric_of(task: str) -> str:
    """The headline metric of a datamodule's ``task``: ``acc`` for classification, else ``miou``."""
    return "acc" if task == "classification" else "miou"


def columns(metric: str = "miou") -> list[str]:
    """final.csv's columns, in order, for a run scored by ``metric`` (files follow as ``file_<kind>``)."""
    m = metric
    return [
        "arch_key", "role", "init", f"proxy_{m}", f"full_{m}_fp32", f"onnx_{m}_fp32", f"int8_{m}", "int8_drop",
        "f1_fp32", "f1_int8_host", "f1", "f1_source", "latency_ms", "latency_p10_ms", "latency_p90_ms",
        "latency_source", "latency_input", "train_size", "search_latency_ms", f"val_{m}", "params",
        "train_seconds", "n_test", "on_final_front", "latency_vs_baseline", "latency_vs_baseline_p25",
        "latency_vs_baseline_p75", f"{m}_vs_baseline", "beats_baseline", "pick_reason", "error",
    ]  # fmt: skip


#: final.csv columns of a segmentation run.
COLUMNS = columns("miou")
MARK_BEGIN, MARK_END = "<!-- final stage: begin -->", "<!-- final stage: end -->"


def final_frame(rows: Sequence[dict[str, Any]], *, metric: str = "miou") -> pd.DataFrame:
    """One row per model; ``on_final_front`` = non-dominated on (F1 on the target ↑, target latency ↓)."""
    cols = columns(metric)
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("files", "reused")}
        row |= {f"file_{k}": v for k, v in (r.get("files") or {}).items()}
        flat.append(row)
    df = pd.DataFrame(flat)
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan if c != "error" else ""
    ok = df["error"].fillna("").eq("") & df["f1"].notna() & df["latency_ms"].notna()
    df["on_final_front"] = False
    if ok.any():
        vals = df.loc[ok, ["f1", "latency_ms"]].to_numpy(float)
        df.loc[ok, "on_final_front"] = pareto_mask(vals, ["maximize", "minimize"])
    extra = [c for c in df.columns if c not in cols]
    return (
        df[cols + extra].sort_values("latency_ms", kind="stable", na_position="last").reset_index(drop=True)
    )


def _init_note(r: Any) -> str:
    init = r.get("init")
    return f", {init}" if isinstance(init, str) and init != "scratch" else ""


def _short(key: str) -> str:
    return key.split("-")[-1][:6]


def _save(fig: Any, ax: Any, path: Path, *, x: str, y: str, title: str) -> Path:
    """Label, grid and legend the axes, write the PNG, free the figure."""
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_full_training(df: pd.DataFrame, path: Path, *, latency_label: str, metric: str = "miou") -> Path:
    """Proxy (search) and full-training ``metric`` against target latency, each model's pair joined by a line."""
    proxy, full = f"proxy_{metric}", f"full_{metric}_fp32"
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = df[df[full].notna() & df["latency_ms"].notna()]
    for _, r in ok.iterrows():
        x = r["latency_ms"]
        if not math.isnan(r[proxy]):
            ax.plot([x, x], [r[proxy], r[full]], "-", c="0.6", lw=1, zorder=1)
        ax.annotate(
            _short(r["arch_key"]),
            (x, r[full]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    prox = ok[ok[proxy].notna()]
    ax.scatter(
        prox["latency_ms"],
        prox[proxy],
        s=36,
        facecolors="none",
        edgecolors="tab:blue",
        label="search proxy (val)",
        zorder=2,
    )
    front = ok[ok["role"] != "baseline"]
    ax.scatter(
        front["latency_ms"],
        front[full],
        s=40,
        c="tab:orange",
        label="full training (test, fp32)",
        zorder=3,
    )
    base = ok[ok["role"].str.contains("baseline")]
    if len(base):
        ax.scatter(
            base["latency_ms"],
            base[full],
            s=120,
            marker="*",
            c="tab:green",
            label="baseline (full, test)",
            zorder=4,
        )
    return _save(fig, ax, path, x=f"latency, ms ({latency_label}) ↓", y=f"{METRICS[metric][0]} ↑",
                 title="Full training of the front: proxy vs final accuracy")  # fmt: skip


def plot_final_results(
    df: pd.DataFrame, path: Path, *, latency_label: str, f1_label: str, metric: str = "miou"
) -> Path:
    """F1 on the target against target latency (p10–p90 as error bars); the final front joined."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = df[df["f1"].notna() & df["latency_ms"].notna()].sort_values("latency_ms")
    xerr = np.vstack([ok["latency_ms"] - ok["latency_p10_ms"], ok["latency_p90_ms"] - ok["latency_ms"]]).clip(
        min=0
    )
    ax.errorbar(
        ok["latency_ms"],
        ok["f1"],
        xerr=xerr,
        fmt="o",
        c="tab:blue",
        ecolor="0.5",
        capsize=3,
        label="models (p10–p90)",
    )
    front = ok[ok["on_final_front"].astype(bool)]
    ax.plot(
        front["latency_ms"], front["f1"], "-", c="tab:orange", lw=1.5, label=f"final front ({len(front)})"
    )
    base = ok[ok["role"].str.contains("baseline")]
    if len(base):
        ax.scatter(
            base["latency_ms"], base["f1"], s=120, marker="*", c="tab:green", label="baseline", zorder=4
        )
    for _, r in ok.iterrows():
        ax.annotate(
            f"{_short(r['arch_key'])} {r['f1']:.3f}",
            (r["latency_ms"], r["f1"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    return _save(fig, ax, path, x=f"latency, ms ({latency_label}) ↓", y=f"F1, {METRICS[metric][1]} ({f1_label}) ↑",
                 title="Final results: F1 on the target vs latency")  # fmt: skip


def _rel(path: Any, run_dir: Path) -> str:
    p = Path(str(path))
    return str(p.relative_to(run_dir)) if p.is_relative_to(run_dir) else str(p)


def pick_table(
    df: pd.DataFrame, run_dir: Path, budgets: Sequence[float] | None = None, *, metric: str = "miou"
) -> list[str]:
    """Markdown rows: for each latency budget, the model with the best F1 within it, and its files."""
    ok = df[df["error"].fillna("").eq("") & df["f1"].notna() & df["latency_ms"].notna()]
    if ok.empty:
        return ["No model finished the final stage: see `error` in `final/final.csv`."]
    budgets = sorted(budgets) if budgets else sorted(ok.loc[ok["on_final_front"].astype(bool), "latency_ms"])
    lines = [
        f"| latency budget | model | F1 (target) | test {METRICS[metric][0]} fp32 / int8 | latency, ms (p10–p90) "
        "| files |",
        "|---|---|---|---|---|---|",
    ]
    for b in budgets:
        within = ok[ok["latency_ms"] <= b + 1e-12]
        if within.empty:
            lines.append(f"| ≤ {b:.3g} ms | none fits | | | | |")
            continue
        r = within.sort_values(["f1", "latency_ms"], ascending=[False, True]).iloc[0]
        files = " ".join(
            f"[{label}]({_rel(r[col], run_dir)})"
            for label, col in (
                (
                    "onnx int8",
                    "file_deploy_onnx_int8"
                    if isinstance(r.get("file_deploy_onnx_int8"), str)
                    else "file_onnx_int8",
                ),
                (
                    "onnx fp32",
                    "file_deploy_onnx_fp32"
                    if isinstance(r.get("file_deploy_onnx_fp32"), str)
                    else "file_onnx_fp32",
                ),
                ("weights", "file_weights"),
                ("arch", "file_arch"),
            )
            if isinstance(r.get(col), str)
        )
        lines.append(
            f"| ≤ {b:.3g} ms | `{r['arch_key']}` ({r['role']}{_init_note(r)}) | {r['f1']:.3f} ({r['f1_source']}) | "
            f"{r[f'full_{metric}_fp32']:.3f} / {r[f'int8_{metric}']:.3f} | {r['latency_ms']:.3g} "
            f"({r['latency_p10_ms']:.3g}–{r['latency_p90_ms']:.3g}) | {files} |"
        )
    return lines


def _flag(value: Any) -> bool | None:
    """A yes/no column's value (a bool, numpy's, or read back from CSV), ``None`` when empty."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str) and value in ("True", "False"):
        return value == "True"
    return None


def baseline_table(df: pd.DataFrame, stats: dict[str, Any] | None, *, metric: str = "miou") -> list[str]:
    """Markdown: why each model was picked, its test score against the baseline's mean (± its spread over
    training seeds) and its latency against the baseline's in the same interleaved pass, and the verdict."""
    if stats is None:
        return ["No baseline was trained (final.baseline=false, or it failed): nothing to compare against."]
    name = METRICS[metric][0]
    vals = ", ".join(f"{v:.3f}" for v in stats["values"])
    lines = [
        f"Baseline `{stats['arch_key']}`: test {name} **{stats['mean']:.3f} ± {stats['std']:.3f}** (sd over "
        f"{stats['n']} training seed(s): {vals}). A searched model beats it at ≤ 0.85× its latency with "
        f"{name} ≥ mean − 0.005, or at ≤ its latency with {name} ≥ mean + 0.01 (latency ratios from one "
        "interleaved pass, p25–p75 over its rounds).",
        "",
        f"| model | role | why picked | test {name} (vs baseline mean) | latency vs baseline | beats it |",
        "|---|---|---|---|---|---|",
    ]
    for _, r in df.iterrows():
        if str(r.get("error") or "") not in ("", "nan"):
            lines.append(f"| `{r['arch_key']}` | {r['role']} | {r.get('pick_reason', '')} | failed | | |")
            continue
        delta = r.get(f"{metric}_vs_baseline")
        margin = f" ({delta:+.3f})" if isinstance(delta, float) and not math.isnan(delta) else ""
        q = r.get("latency_vs_baseline")
        ratio = (f"{q:.2f}× ({r['latency_vs_baseline_p25']:.2f}–{r['latency_vs_baseline_p75']:.2f})"
                 if isinstance(q, float) and not math.isnan(q) else "")  # fmt: skip
        beats = _flag(r.get("beats_baseline"))
        verdict = "**yes**" if beats is True else ("no" if beats is False else "")
        lines.append(
            f"| `{r['arch_key']}` | {r['role']} | {r.get('pick_reason', '')} | {r[f'full_{metric}_fp32']:.3f}{margin} "
            f"| {ratio} | {verdict} |"
        )
    return lines


def report_section(
    df: pd.DataFrame,
    run_dir: Path,
    budgets: Sequence[float] | None,
    *,
    metric: str = "miou",
    baseline: dict[str, Any] | None = None,
) -> str:
    ok = df[df["error"].fillna("").eq("")]
    lines = [
        MARK_BEGIN,
        "## Final stage: trained, int8-checked, measured",
        "",
        f"{len(ok)} of {len(df)} model(s) trained fully and scored on the held-out test split "
        f"({int(ok['n_test'].max()) if len(ok) and ok['n_test'].notna().any() else 0} images); "
        f"latency re-measured on the target at {ok['latency_input'].iloc[0] if len(ok) else '?'} "
        f"({ok['latency_source'].iloc[0] if len(ok) else '?'}). Table: [final/final.csv](final/final.csv).",
        "",
        "### Against the baseline",
        "",
        *baseline_table(df, baseline, metric=metric),
        "",
        "### Pick a model",
        "",
        *pick_table(df, run_dir, budgets, metric=metric),
        "",
        "![Full training](final/full_training.png)",
        "",
        "![Final results](final/final_results.png)",
        MARK_END,
        "",
    ]
    return "\n".join(lines)


def update_report(run_dir: Path, section: str) -> Path:
    """Put ``section`` into report.md, replacing an earlier final-stage section (re-runs stay single)."""
    path = run_dir / "report.md"
    text = path.read_text() if path.is_file() else "# Search report\n"
    pattern = re.compile(re.escape(MARK_BEGIN) + r".*?" + re.escape(MARK_END) + r"\n?", re.S)
    text = pattern.sub("", text).rstrip("\n") + "\n\n" + section
    write_atomic(path, text)
    return path


def write_final_outputs(
    run_dir: Path,
    rows: Sequence[dict[str, Any]],
    *,
    budgets: Sequence[float] | None,
    latency_label: str,
    metric: str = "miou",
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write every final-stage output once; return a summary for summary.json (``metric``: the headline
    metric the rows' columns are named after, ``miou`` or ``acc``)."""
    out_dir = run_dir / "final"
    out_dir.mkdir(parents=True, exist_ok=True)
    df = final_frame(rows, metric=metric)
    for col in [c for c in df.columns if c.startswith("file_")]:  # relative: the run dir can move
        df[col] = [_rel(v, run_dir) if isinstance(v, str) else v for v in df[col]]
    write_atomic(out_dir / "final.csv", df.to_csv(index=False))
    front = df[df["on_final_front"].astype(bool)]
    write_atomic(out_dir / "final_front.csv", front.to_csv(index=False))
    ok = df[df["error"].fillna("").eq("")]
    cols = columns(metric)
    f1_label = ",".join(sorted(set(ok["f1_source"].dropna().astype(str)))) or "n/a"
    charts = {}
    if len(ok):
        charts["full_training_png"] = plot_full_training(
            df, out_dir / "full_training.png", latency_label=latency_label, metric=metric
        )
        charts["final_results_png"] = plot_final_results(
            df, out_dir / "final_results.png", latency_label=latency_label, f1_label=f1_label, metric=metric
        )
    update_report(run_dir, report_section(df, run_dir, budgets, metric=metric, baseline=baseline))
    winners = [str(k) for k, b in zip(df["arch_key"], df["beats_baseline"], strict=True) if _flag(b) is True]
    return {
        "n_models": int(len(df)),
        "n_failed": int(len(df) - len(ok)),
        "front_size": int(len(front)),
        "f1_source": f1_label,
        "metric": metric,
        "baseline": baseline,
        "beats_baseline": bool(winners) if baseline is not None else None,
        "winners": winners,
        "models": [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items() if k in cols}
            for r in df.to_dict("records")
        ],
        "outputs": {
            "final_csv": str(out_dir / "final.csv"),
            "final_front_csv": str(out_dir / "final_front.csv"),
            **{k: str(v) for k, v in charts.items()},
        },
    }

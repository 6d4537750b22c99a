"""Plots drawn once at the end of a search (or every K trials): the front and its evolution."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from hwnas.pareto import pareto_mask  # noqa: E402
from hwnas.search.objectives import Objective  # noqa: E402


def _axes(objectives: Sequence[Objective]) -> tuple[Objective, Objective]:
    """x = the last objective (latency by convention), y = the first (accuracy)."""
    return objectives[-1], objectives[0]


def _label(obj: Objective, source: str | None) -> str:
    arrow = "↑ better" if obj.direction == "maximize" else "↓ better"
    src = f" [{source}]" if source else ""
    return f"{obj.name}{src} ({arrow})"


def _draw(
    ax: plt.Axes, df: pd.DataFrame, objectives: Sequence[Objective], *, title: str, source: str | None
) -> None:
    xo, yo = _axes(objectives)
    real = df[~df["duplicate"].astype(bool)]
    ok = real[(real["state"] == "COMPLETE") & real["feasible"].astype(bool)]
    bad = real[(real["state"] == "COMPLETE") & ~real["feasible"].astype(bool)]
    failed = real[real["state"] == "FAIL"]
    ax.scatter(ok[xo.name], ok[yo.name], s=22, c="tab:blue", alpha=0.6, label=f"feasible ({len(ok)})")
    if len(bad):
        ax.scatter(
            bad[xo.name],
            bad[yo.name].fillna(np.nanmin(df[yo.name]) if df[yo.name].notna().any() else 0),
            s=22,
            marker="x",
            c="tab:red",
            alpha=0.7,
            label=f"infeasible ({len(bad)})",
        )
    front = ok[ok["is_pareto"]].sort_values(xo.name)
    ax.plot(
        front[xo.name],
        front[yo.name],
        "-o",
        c="tab:orange",
        ms=7,
        lw=1.5,
        label=f"Pareto front ({len(front)})",
    )
    _draw_strategies(ax, df, xo.name, yo.name)
    if len(failed):
        ax.plot([], [], " ", label=f"failed: {len(failed)}")
    ax.set_xlabel(_label(xo, source))
    ax.set_ylabel(_label(yo, None))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


_STRATEGY_STYLES = (("*", "tab:green"), ("P", "tab:purple"), ("D", "tab:brown"), ("^", "tab:pink"))


def _draw_strategies(ax: plt.Axes, df: pd.DataFrame, x: str, y: str) -> None:
    """When one study holds several strategies, mark every strategy but the most frequent one (e.g. a
    gradient search's few architectures among an evolutionary run's trials), duplicates included: an
    architecture a second strategy found again is still its result. Sweep points are labelled."""
    if "strategy" not in df.columns or df["strategy"].dropna().nunique() < 2:
        return
    counts = df["strategy"].dropna().value_counts()
    done = df[(df["state"] == "COMPLETE") & df[[x, y]].notna().all(axis=1)]
    for (marker, color), name in zip(_STRATEGY_STYLES, list(counts.index[1:]), strict=False):
        part = done[done["strategy"] == name]
        if part.empty:
            continue
        ax.scatter(part[x], part[y], s=140, marker=marker, c=color, edgecolors="black", linewidths=0.6,
                   zorder=5, label=f"{name} ({len(part)})")  # fmt: skip
        if "latency_target" in part.columns:
            for _, r in part.iterrows():
                if pd.notna(r.get("latency_target")):
                    ax.annotate(f"t={float(r['latency_target']):g}", (r[x], r[y]), textcoords="offset points",
                                xytext=(6, 6), fontsize=7, color=color)  # fmt: skip


def plot_front(
    df: pd.DataFrame, objectives: Sequence[Objective], path: Path, *, title: str, source: str | None = None
) -> Path:
    """All trials (feasible / infeasible marked), the front highlighted, latency source in the axis label."""
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    _draw(ax, df, objectives, title=title, source=source)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_evolution(
    df: pd.DataFrame,
    objectives: Sequence[Objective],
    path: Path,
    *,
    step: int,
    title: str,
    source: str | None = None,
    max_frames: int = 40,
) -> Path:
    """An animated GIF: the front after every ``step`` unique evaluations (a generation); with more than
    ``max_frames`` generations, after every k-th one (a 500-trial search stays a few seconds of drawing)."""
    xo, yo = _axes(objectives)
    real = df[~df["duplicate"].astype(bool)].sort_values("number").reset_index(drop=True)
    xlim = _limits(real[xo.name])
    ylim = _limits(real[yo.name])
    frames: list[Image.Image] = []
    step = max(1, step)
    step *= max(1, -(-len(real) // (step * max(1, max_frames))))  # whole generations per frame
    cuts = list(range(step, len(real) + 1, step))
    if not cuts or cuts[-1] != len(real):
        cuts.append(len(real))
    for gen, n in enumerate(cuts, start=1):
        part = real.iloc[:n].copy()
        ok = (part["state"] == "COMPLETE") & part["feasible"].astype(bool)
        vals = part[[o.name for o in objectives]].to_numpy(float)
        ok &= np.isfinite(vals).all(axis=1)
        mask = np.zeros(len(part), bool)
        if ok.any():
            mask[ok.to_numpy()] = pareto_mask(vals[ok.to_numpy()], [o.direction for o in objectives])
        part["is_pareto"] = mask
        fig, ax = plt.subplots(figsize=(6, 4.5), dpi=80)
        _draw(ax, part, objectives, title=f"{title} — generation {gen} ({n} evaluated)", source=source)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        buf.seek(0)
        frames.append(Image.open(buf).convert("P", palette=Image.ADAPTIVE))
    if frames:
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=700, loop=0)
    return path


def _limits(values: pd.Series) -> tuple[float, float]:
    v = values.to_numpy(float)
    v = v[np.isfinite(v)]
    if not len(v):
        return (0.0, 1.0)
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.05 or 0.05
    return lo - pad, hi + pad

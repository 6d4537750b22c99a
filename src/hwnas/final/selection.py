"""Which models the final stage trains: the front models with the best chance to be on the fully trained
front, each with the reason it was picked, and the baseline.

Full training is the expensive step, so the picks follow the search's evidence rather than the ends of
the front (the fastest front member is often the one with the run's worst proxy). With the baseline's own
proxy point in the study (``search.seed_baseline``), the first picks aim at the two ways to beat it: the
most accurate searched model at ≤ ``FASTER`` × its latency, and the most accurate one at ≤ its latency
when its proxy is above the baseline's, then the runner-up to that one among all searched models (a
proxy lead of a few thousandths is noise, so the second best near the baseline is worth a full training).
The remaining picks go by exclusive hypervolume contribution on (proxy accuracy ↑, log latency ↓) over the
searched front: knees, not extremes (the two ends contribute nothing against the front's own corner).
Seeded models (the baseline, ``search.seed_architectures``) are never picked as searched ones, and the
searched front is that of the searched trials alone, so a baseline that dominates them all still leaves a
gallery of the best the search found.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from hwnas.pareto import pareto_mask
from hwnas.search_space.base import ArchSpec
from hwnas.utils.errors import InvalidArchError

log = logging.getLogger("hwnas.final")

#: A searched model "beats the baseline" faster when its latency is at most this share of the baseline's.
FASTER = 0.85


@dataclass(frozen=True)
class Pick:
    """One model the stage trains: its architecture, role (``front``, ``baseline``, ``front+baseline``) and
    why it was picked (one sentence for report.md)."""

    spec: ArchSpec
    role: str
    reason: str


def _seeded(df: pd.DataFrame) -> pd.Series:
    if "seeded" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["seeded"].fillna("").astype(str).ne("")


def searched(front: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``front`` the strategy found (not seeded)."""
    return front[~_seeded(front)]


def searched_rows(trials: pd.DataFrame, *, acc: str, latency: str) -> pd.DataFrame:
    """The searched trials: complete, feasible, not a repeat, not seeded."""
    if trials.empty or not {acc, latency, "state", "arch"} <= set(trials.columns):
        return pd.DataFrame()
    ok = trials["state"].eq("COMPLETE") & ~_seeded(trials)
    for col in ("feasible", "duplicate"):
        if col in trials.columns:
            ok &= trials[col].astype(bool) if col == "feasible" else ~trials[col].astype(bool)
    return trials[ok].dropna(subset=[acc, latency])


def searched_front(trials: pd.DataFrame, *, acc: str, latency: str) -> pd.DataFrame:
    """The front of the searched trials alone: when the baseline dominates every searched model, the
    gallery is still made of the best the search found."""
    rows = searched_rows(trials, acc=acc, latency=latency)
    if rows.empty:
        return rows
    mask = pareto_mask(rows[[acc, latency]].to_numpy(float), ["maximize", "minimize"])
    return rows[mask]


def baseline_point(trials: pd.DataFrame, *, acc: str, latency: str) -> tuple[float, float] | None:
    """``(proxy accuracy, latency)`` of the seeded baseline's trial, or ``None`` when it was not evaluated."""
    if trials.empty or "seeded" not in trials.columns or acc not in trials.columns:
        return None
    rows = trials[(trials["seeded"].fillna("") == "baseline") & (trials["state"] == "COMPLETE")]
    rows = rows.dropna(subset=[acc, latency])
    if rows.empty:
        return None
    return float(rows[acc].iloc[0]), float(rows[latency].iloc[0])


def hv_contributions(acc: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Exclusive hypervolume contribution of each point of a 2-D front (``acc`` ↑, ``log latency`` ↓), both
    axes scaled to [0, 1] over the front, the reference point at its worst corner."""
    n = len(acc)
    if n == 0:
        return np.zeros(0)
    x = np.log(np.maximum(latency.astype(float), 1e-12))
    y = acc.astype(float)
    xs = (x - x.min()) / max(float(np.ptp(x)), 1e-12)
    ys = (y - y.min()) / max(float(np.ptp(y)), 1e-12)
    order = np.argsort(xs, kind="stable")  # on a front: faster = less accurate
    out = np.zeros(n)
    for j, i in enumerate(order):
        right = xs[order[j + 1]] if j + 1 < n else 1.0
        below = ys[order[j - 1]] if j > 0 else 0.0
        out[i] = max(0.0, right - xs[i]) * max(0.0, ys[i] - below)
    return out


def choose(
    front: pd.DataFrame,
    k: int,
    *,
    acc: str,
    latency: str,
    base: tuple[float, float] | None,
    others: pd.DataFrame | None = None,
) -> list[tuple[Any, str]]:
    """Up to ``k`` rows of the searched ``front`` as ``(row, reason)``, by the rules of the module docstring;
    ``others`` (every searched trial) offers the runner-up at the baseline's latency."""
    rows = front.dropna(subset=[acc, latency]).sort_values(latency, kind="stable").reset_index(drop=True)
    picked: list[tuple[Any, str]] = []
    taken: set[int] = set()
    if base is not None:
        b_acc, b_lat = base
        for limit, floor, goal in (  # no slower than the baseline: only a proxy above the baseline's can win
            (FASTER * b_lat, -np.inf, f"≤ {FASTER:g}× the baseline's latency"),
            (b_lat, b_acc, "≤ the baseline's latency"),
        ):
            pool = rows[(rows[latency] <= limit + 1e-12) & (rows[acc] > floor) & ~rows.index.isin(taken)]
            if pool.empty or len(picked) >= k:
                continue
            i = int(pool.sort_values([acc, latency], ascending=[False, True], kind="stable").index[0])
            r = rows.loc[i]
            picked.append((r, f"the best proxy {acc} {r[acc]:.4g} (baseline {b_acc:.4g}) among searched models at "
                              f"{goal} ({r[latency] / b_lat:.2f}×): its best chance to beat it"))  # fmt: skip
            taken.add(i)
        runner = _runner_up(others, picked, acc=acc, latency=latency, base=base)
        if runner is not None and len(picked) < k:
            picked.append((runner, f"the runner-up proxy {acc} {runner[acc]:.4g} (baseline {b_acc:.4g}) at ≤ the "
                                   f"baseline's latency ({runner[latency] / b_lat:.2f}×), from all searched models: "
                                   "a proxy lead of a few thousandths is noise"))  # fmt: skip
            taken.update(int(i) for i in rows.index[rows["arch"].astype(str) == str(runner["arch"])])
    hv = hv_contributions(rows[acc].to_numpy(float), rows[latency].to_numpy(float))
    for i in np.argsort(-hv, kind="stable"):
        if len(picked) >= k:
            break
        if int(i) in taken:
            continue
        r = rows.loc[int(i)]
        share = hv[int(i)] / max(float(hv.sum()), 1e-12)
        why = (f"{100 * share:.0f} % of the searched front's exclusive hypervolume (a knee)" if share > 0
               else "an end of the searched front (no exclusive hypervolume; picked as there are few models)")  # fmt: skip
        picked.append((r, why))
        taken.add(int(i))
    return sorted(picked, key=lambda p: float(p[0][latency]))


def _runner_up(
    others: pd.DataFrame | None,
    picked: list[tuple[Any, str]],
    *,
    acc: str,
    latency: str,
    base: tuple[float, float],
) -> Any | None:
    """The most accurate searched model at ≤ the baseline's latency with a proxy above the baseline's that is
    not picked yet, on the front or not (``None`` if there is none)."""
    if others is None or others.empty or not picked:
        return None
    keys = {str(r["arch"]) for r, _ in picked}
    pool = others[
        (others[latency] <= base[1] + 1e-12)
        & (others[acc] > base[0])
        & ~others["arch"].astype(str).isin(keys)
    ]
    if pool.empty:
        return None
    return pool.sort_values([acc, latency], ascending=[False, True], kind="stable").iloc[0]


def baseline_of(space: Any) -> ArchSpec | None:
    """The space's hand-designed baseline, or ``None`` (with a warning) when the ranges leave it out."""
    try:
        return space.baseline()
    except InvalidArchError as exc:
        log.warning(
            "final: the baseline is outside this search space's ranges (%s); it is not trained. Set "
            "search_space.baseline.* to an architecture of the space, or final.baseline=false",
            exc,
        )
        return None


def pick_models(
    front: pd.DataFrame,
    space: Any,
    *,
    top_k: int,
    baseline: bool,
    acc: str,
    latency: str,
    trials: pd.DataFrame | None = None,
) -> list[Pick]:
    """Every model the stage trains: up to ``top_k`` searched models, mostly of the front (from ``trials``; role
    ``front``, see :func:`choose`), and with ``baseline`` the space's baseline (``baseline``, or ``front+baseline`` when
    the search found it itself)."""
    picked: list[Pick] = []
    trials = trials if trials is not None else pd.DataFrame()
    pool = searched_front(trials, acc=acc, latency=latency)
    if pool.empty and not front.empty and {acc, latency} <= set(front.columns):
        pool = searched(front)  # no trials.csv (an old run): the front's searched rows
    if not pool.empty:
        base = baseline_point(trials, acc=acc, latency=latency)
        everyone = searched_rows(trials, acc=acc, latency=latency)
        for row, why in choose(pool, top_k, acc=acc, latency=latency, base=base, others=everyone):
            picked.append(Pick(space.parse(row["arch"]), "front", why))
    spec = baseline_of(space) if baseline else None
    if spec is not None:
        picked = [Pick(p.spec, "front+baseline", p.reason) if p.spec.key == spec.key else p for p in picked]
        if spec.key not in {p.spec.key for p in picked}:
            picked.append(Pick(spec, "baseline", "the hand-designed reference (search_space.baseline)"))
    return picked

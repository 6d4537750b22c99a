"""``report.md``: a one-page, human-readable summary of a search (the front as a table, the plots)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.search.objectives import Objective

EXTRA_COLUMNS = (
    "seeded",
    "params",
    "macs",
    "peak_act_mb",
    "hw/latency_p10_ms",
    "hw/latency_p90_ms",
    "hw/source",
)


def number(v: float) -> str:
    """A figure for a table: large whole numbers with thousands separators, others to 4 significant digits."""
    if math.isnan(v):
        return ""
    return f"{v:,.0f}" if abs(v) >= 1e4 and v.is_integer() else f"{v:.4g}"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return number(v)  # NaN (e.g. an empty `seeded`) -> ""
    return "" if v is None else str(v).replace("|", "\\|")


def write_report(
    run_dir: Path, *, summary: dict[str, Any], front: pd.DataFrame, objectives: Sequence[Objective]
) -> Path:
    """Write ``<run dir>/report.md`` from what the search already computed (no new numbers)."""
    cols = ["arch_key", *[o.name for o in objectives], *[c for c in EXTRA_COLUMNS if c in front.columns]]
    lines = [
        f"# Search report: {summary['study_name']}",
        "",
        f"- search space: `{summary['search_space']}`; sampler: `{summary['sampler']}`",
        f"- objectives: {', '.join(f'{o.direction} `{o.name}`' for o in objectives)}",
        f"- latency source: **{summary.get('latency_source') or 'n/a'}**",
        f"- budget {summary['n_trials_budget']} unique architectures: {summary['unique_evaluated']} evaluated, "
        f"{summary['duplicates']} repeats reused, {summary['failed']} failed, {summary['infeasible']} infeasible",
        f"- wall time: {summary['wall_seconds']:.1f} s",
        "- the whole run on one page, images included (to read offline or send): [report.html](report.html)",
        "",
        f"## Pareto front ({len(front)} models)",
        "",
    ]
    if len(front):
        lines += ["| " + " | ".join(cols) + " | files |", "|" + "---|" * (len(cols) + 1)]
        files = {f["arch_key"]: f.get("files", {}) for f in summary.get("front", [])}
        for _, row in front.iterrows():
            fl = files.get(row["arch_key"], {})
            links = " ".join(
                f"[{k}]({Path(v).relative_to(run_dir) if Path(v).is_relative_to(run_dir) else v})"
                for k, v in fl.items()
                if k != "error"
            )
            lines.append("| " + " | ".join(_cell(row.get(c)) for c in cols) + f" | {links} |")
    else:
        lines.append(
            "No feasible architecture: see `fail_reason` and the constraint columns in `trials.csv`."
        )
    lines += ["", "![Pareto front](pareto_front.png)", "", "![Front by generation](pareto_evolution.gif)", ""]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path

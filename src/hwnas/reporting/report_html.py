"""``report.html``: the run as one self-contained page to read offline or send (images embedded).

Everything comes from the run dir's files, so the page can be rewritten at any time (after the search,
again after the final stage): ``summary.json``, ``pareto.csv``, ``trials.csv`` (for the hypervolume),
``pareto/<stem>.png`` and ``.json`` (each front model's architecture), ``final/final.csv`` and the charts,
report.md's final-stage section (the pick-a-model table, rendered from the same Markdown), and
``.hydra/config.yaml`` / ``overrides.yaml`` (secrets already masked there). Images become ``data:`` URIs;
links to model files stay relative, so they work when the page sits in its run dir. The page is a Jinja2
template (``templates/report.html.j2``) with its styles inline: no network, no scripts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from hwnas.reporting.final import MARK_BEGIN, MARK_END
from hwnas.reporting.front_tracker import MARGIN, FrontTracker
from hwnas.reporting.report import EXTRA_COLUMNS, number
from hwnas.search_space.base import file_stem
from hwnas.utils.io import read_json, write_atomic

log = logging.getLogger("hwnas.search")

MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}  # fmt: skip
#: Distributions whose versions the page lists (those installed).
PACKAGES = (
    "hwnas",
    "torch",
    "pytorch-lightning",
    "optuna",
    "onnxruntime",
    "onnx",
    "hydra-core",
    "numpy",
    "pandas",
)
FINAL_COLUMNS = (
    "arch_key", "role", "init", "proxy_miou", "full_miou_fp32", "int8_miou", "proxy_acc", "full_acc_fp32", "int8_acc",
    "int8_drop", "f1", "f1_source",
    "latency_ms", "latency_p10_ms", "latency_p90_ms", "params", "train_seconds", "on_final_front", "error",
)  # fmt: skip


def data_uri(path: Path) -> str | None:
    """``data:<mime>;base64,...`` of an image file, or None when it is missing or not an image."""
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return None
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def text(v: Any) -> str:
    """A table cell: numbers via :func:`~hwnas.reporting.report.number`, missing values empty."""
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return number(v)
    return "" if v is None else str(v)


def _shape(v: Any) -> str:
    """``[1, 3, 64, 64]`` as ``1x3x64x64``."""
    return "x".join(str(x) for x in v) if isinstance(v, list | tuple) else ("?" if v is None else str(v))


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def _rel(path: Any, run_dir: Path) -> str:
    p = Path(str(path))
    return str(p.relative_to(run_dir)) if p.is_absolute() and p.is_relative_to(run_dir) else str(p)


def _table(df: pd.DataFrame, columns: Any) -> dict[str, Any]:
    cols = [c for c in columns if c in df.columns and df[c].notna().any()]
    return {"columns": cols, "rows": [[text(r[c]) for c in cols] for r in df.to_dict("records")]}


def hypervolume(trials: pd.DataFrame, objectives: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The front's hypervolume over every feasible evaluated trial, as the live view computes it."""
    names = [o["name"] for o in objectives]
    if len(names) != 2 or trials.empty or not set(names) <= set(trials.columns):
        return None
    ok = trials["state"].eq("COMPLETE") & trials["feasible"].astype(bool) & ~trials["duplicate"].astype(bool)
    tracker = FrontTracker([o["direction"] for o in objectives])
    for values in trials.loc[ok, names].to_numpy(float):
        tracker.add(values)
    ref = tracker.reference()
    if ref is None:
        return None
    return {"value": number(float(tracker.hypervolume() or 0.0)),
            "reference": ", ".join(f"{n} {number(float(r))}" for n, r in zip(names, ref, strict=True)),
            "margin": f"{MARGIN:.0%}"}  # fmt: skip


def _models(
    front: pd.DataFrame, summary: dict[str, Any], run_dir: Path, names: list[str]
) -> list[dict[str, Any]]:
    """One card per front model: its figures, its picture and its architecture's parameters."""
    files = {f["arch_key"]: f.get("files") or {} for f in summary.get("front", [])}
    cards = []
    for r in front.to_dict("records"):
        key = str(r["arch_key"])
        fl = files.get(key, {})
        picture = run_dir / "pareto" / f"{file_stem(key)}.png"  # here also when the run dir was moved
        if not picture.is_file() and fl.get("graph"):
            picture = Path(fl["graph"])
        try:
            arch = json.loads(r["arch"]) if isinstance(r.get("arch"), str) else {}
        except json.JSONDecodeError:
            arch = {}
        params = arch.get("params") if isinstance(arch.get("params"), dict) else {}
        figures = [(n, text(r.get(n))) for n in [*names, *EXTRA_COLUMNS] if text(r.get(n))]
        cards.append({
            "key": key, "figures": figures, "picture": data_uri(picture), "picture_name": _rel(picture, run_dir),
            "params": [(k, text(v)) for k, v in params.items()],
            "files": [(k, _rel(v, run_dir)) for k, v in fl.items() if k not in ("error", "graph")],
        })  # fmt: skip
    return cards


def _final(run_dir: Path) -> dict[str, Any] | None:
    """The final stage: report.md's section (pick-a-model table, charts) as HTML, and final.csv."""
    df = _read_csv(run_dir / "final" / "final.csv")
    if df.empty:
        return None
    md_path = run_dir / "report.md"
    md = md_path.read_text() if md_path.is_file() else ""
    section = ""
    if MARK_BEGIN in md and MARK_END in md:
        import markdown

        body = md.split(MARK_BEGIN, 1)[1].split(MARK_END, 1)[0]
        section = markdown.markdown(body, extensions=["tables"], output_format="html")
        section = re.sub(r'<img alt="([^"]*)" src="([^"]+)"', lambda m: _inline(m, run_dir), section)
    return {"section": section, "table": _table(df, FINAL_COLUMNS)}


def _inline(m: re.Match[str], run_dir: Path) -> str:
    uri = data_uri(run_dir / m.group(2)) if not re.match(r"^[a-z]+:", m.group(2)) else None
    return (
        f'<img alt="{m.group(1)}" src="{uri}"'
        if uri
        else f'<img alt="{m.group(1)} (missing: {m.group(2)})" src=""'
    )


def environment() -> list[tuple[str, str]]:
    """Python, the platform and the versions of the packages that shaped the numbers."""
    rows = [("python", sys.version.split()[0]), ("platform", platform.platform()),
            ("cpu", f"{platform.machine()} x {os.cpu_count()}")]  # fmt: skip
    for name in PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return rows


def context(run_dir: Path) -> dict[str, Any]:
    """Everything the template shows, read from ``run_dir``."""
    summary = read_json(run_dir / "summary.json") or {}
    objectives = summary.get("objectives") or []
    names = [o["name"] for o in objectives]
    front = _read_csv(run_dir / "pareto.csv")
    hydra_dir = run_dir / ".hydra"
    overrides = hydra_dir / "overrides.yaml"
    budget = summary.get("n_trials_budget")
    wall = summary.get("wall_seconds")
    facts = [
        ("search space", summary.get("search_space")),
        ("strategy", ", ".join(summary.get("strategies") or {}) or summary.get("sampler")),
        ("objectives", ", ".join(f"{o['direction']} {o['name']}" for o in objectives)),
        ("latency", summary.get("latency_source")),
        ("budget", f"{budget} unique architectures" if budget else "set by the strategy"),
        ("evaluated", f"{summary.get('unique_evaluated')} unique, {summary.get('duplicates')} repeats reused, "
                      f"{summary.get('failed')} failed, {summary.get('infeasible')} infeasible"),
        ("training / latency input", f"{_shape(summary.get('train_image_size'))} / {_shape(summary.get('latency_input_shape'))}"),
        ("search wall time", f"{float(wall):.1f} s" if isinstance(wall, int | float) else None),
        ("run dir", str(run_dir)),
    ]  # fmt: skip
    return {
        "title": summary.get("study_name") or run_dir.name,
        "facts": [(k, v) for k, v in facts if v not in (None, "")],
        "hypervolume": hypervolume(_read_csv(run_dir / "trials.csv"), objectives),
        "front_png": data_uri(run_dir / "pareto_front.png"),
        "evolution_gif": data_uri(run_dir / "pareto_evolution.gif"),
        "front": _table(front, ["arch_key", *names, *EXTRA_COLUMNS]) if not front.empty else None,
        "models": _models(front, summary, run_dir, names) if not front.empty else [],
        "final": _final(run_dir),
        "config": (hydra_dir / "config.yaml").read_text() if (hydra_dir / "config.yaml").is_file() else "",
        "overrides": overrides.read_text() if overrides.is_file() else "",
        "environment": environment(),
        "written": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    }


def render(run_dir: Path) -> str:
    """The page's HTML for ``run_dir``."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    env = Environment(
        loader=PackageLoader("hwnas.reporting", "templates"), autoescape=select_autoescape(["j2"])
    )
    ctx = context(Path(run_dir))
    if ctx["final"]:
        ctx["final"]["section"] = Markup(ctx["final"]["section"])  # noqa: S704 - rendered from our own report.md
    return env.get_template("report.html.j2").render(**ctx)


def write_html_report(run_dir: Path) -> Path:
    """Write ``<run dir>/report.html`` (replacing an earlier one) and log where it is."""
    run_dir = Path(run_dir)
    path = write_atomic(run_dir / "report.html", render(run_dir))
    log.info("report: %s (self-contained: open it in a browser, or send it)", path)
    return path

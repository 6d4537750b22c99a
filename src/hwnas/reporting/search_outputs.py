"""Every output of a finished search, written once at the end (plots are never redrawn per trial).

``trials.csv`` and ``pareto.csv`` (the study as a table), ``pareto_front.png`` and
``pareto_evolution.gif``, the front's architectures under ``pareto/`` (JSON, picture, ONNX and weights
from the evaluator), ``summary.json`` and ``report.md``. The search task calls :func:`write_search_outputs`;
everything here reads the study, never the search's internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from hwnas.evaluators.base import Evaluator
from hwnas.reporting.arch_graph import draw_arch
from hwnas.reporting.plots import plot_evolution, plot_front
from hwnas.reporting.predictor_front import check_front
from hwnas.reporting.report import write_report
from hwnas.reporting.trials import pareto_frame, trials_frame
from hwnas.search.loop import read_state
from hwnas.search.objectives import Objective
from hwnas.search_space.base import SearchSpace, file_stem

log = logging.getLogger("hwnas.search")


@dataclass
class SearchOutputs:
    """What :func:`write_search_outputs` wrote: the summary (also ``summary.json``), the tables, the plot."""

    summary: dict[str, Any]
    trials: pd.DataFrame
    front: pd.DataFrame
    front_png: Path | None


def write_search_outputs(
    cfg: DictConfig,
    *,
    study: optuna.Study,
    evaluator: Evaluator,
    space: SearchSpace,
    objectives: Sequence[Objective],
    run_dir: Path,
    run_info: dict[str, Any],
) -> SearchOutputs:
    """Write every output of the search in ``run_dir``; ``run_info`` (storage, budget, wall time, resume
    facts) goes into ``summary.json`` as it is."""
    df = trials_frame(study, objectives)
    df.to_csv(run_dir / "trials.csv", index=False)
    front = pareto_frame(df, objectives)
    front.to_csv(run_dir / "pareto.csv", index=False)
    source = None
    if "hw/source" in df.columns and df["hw/source"].notna().any():
        source = ",".join(sorted(set(df["hw/source"].dropna().astype(str))))
    # hardware=predictor: measure the front's predicted latencies; the axis says what was predicted
    predictor = check_front(evaluator, space=space, df=df, front=front, run_dir=run_dir)
    calibration = latency_calibration(cfg, source=source)
    axis = predictor["label"] if predictor else source
    if calibration.get("label") and axis:
        axis = f"{axis}, {calibration['target']}: {calibration['label']}"
    png, gif = _plots(
        cfg, df, objectives, run_dir, title=f"{space.name} · {cfg.search.study_name}", axis=axis
    )
    pareto_dir = run_dir / "pareto"
    pareto_dir.mkdir(exist_ok=True)
    exported = (
        _export_front(evaluator, space, front, pareto_dir)
        if bool(cfg.search.get("export_front", True))
        else {}
    )
    evaluator.prune_weights({file_stem(k) for k in front["arch_key"]})
    if front.empty:
        log.warning(
            "no feasible candidate: the front is empty. Every architecture failed or violated "
            "search.constraints; relax the budget (e.g. search.constraints.hw/latency_ms.max) and look "
            "at fail_reason in trials.csv"
        )
    real = df[~df["duplicate"].astype(bool)]
    done = read_state(study).done  # evaluated architectures (not stale, surplus or invalid trials)
    summary = {
        "study_name": str(cfg.search.study_name),
        "storage": run_info.pop("storage", ""),
        "search_space": space.name,
        "sampler": str(
            OmegaConf.select(cfg, "search.sampler._target_", default=None)
            or OmegaConf.select(cfg, "search.strategy._target_")
        ),  # fmt: skip
        "strategies": {str(k): int(v) for k, v in real["strategy"].value_counts().items()}
        if "strategy" in real.columns
        else {},
        "objectives": [{"name": o.name, "direction": o.direction} for o in objectives],
        "n_trials_budget": run_info.pop("n_trials_budget", None),
        "unique_evaluated": len(done),
        "duplicates": int(df["duplicate"].sum()),
        "failed": sum(t.state.name == "FAIL" for t in done.values()),
        "infeasible": int(((real["state"] == "COMPLETE") & ~real["feasible"].astype(bool)).sum()),
        "front_size": int(len(front)),
        "latency_source": source,
        **({"latency_calibration": calibration} if calibration else {}),  # device, runtime, fit data
        **({"latency_predictor": predictor} if predictor else {}),  # measured vs predicted, front check
        **evaluator.sizes(),  # train_image_size, latency_input_shape (none for evaluator=table)
        **run_info,  # recovered_stale_trials, resume_forced (when set), wall_seconds
        "front": [
            {
                "arch_key": r["arch_key"],
                **{o.name: float(r[o.name]) for o in objectives},
                **({"files": exported[r["arch_key"]]} if r["arch_key"] in exported else {}),
            }
            for _, r in front.iterrows()
        ],
        "outputs": _outputs(run_dir, png=png, gif=gif, pareto_dir=pareto_dir),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_report(run_dir, summary=summary, front=front, objectives=objectives)
    _log_done(summary, objectives, run_dir)
    return SearchOutputs(summary=summary, trials=df, front=front, front_png=png)


def latency_calibration(cfg: DictConfig, *, source: str | None = None) -> dict[str, Any]:
    """What the latency estimate was fitted to (``hardware.calibration``: device, runtime, precision, data
    set), with the target's name; ``hardware.estimate.calibration`` when every latency was ``estimated``
    (``hardware=snapdragon888`` without a device); empty for hardware options without one."""
    node = OmegaConf.select(cfg, "hardware.calibration", default=None)
    if not node and source == "estimated":
        node = OmegaConf.select(cfg, "hardware.estimate.calibration", default=None)
    if not node:
        return {}
    target = OmegaConf.select(cfg, "hardware.target", default=None) or "snapdragon888"
    return {"target": str(target), **OmegaConf.to_container(node, resolve=True)}


def _plots(
    cfg: DictConfig,
    df: pd.DataFrame,
    objectives: Sequence[Objective],
    run_dir: Path,
    *,
    title: str,
    axis: Any,
) -> tuple[Path | None, Path | None]:
    """The front and its evolution over the search (one frame per generation, or per eighth of the run)."""
    if len(objectives) < 2 or not df[[o.name for o in objectives]].notna().any().all():
        return None, None
    png = plot_front(df, objectives, run_dir / "pareto_front.png", title=title, source=axis)
    step = int(OmegaConf.select(cfg, "search.sampler.population_size", default=None) or max(4, len(df) // 8))
    gif = plot_evolution(
        df, objectives, run_dir / "pareto_evolution.gif", step=step, title=title, source=axis
    )
    return png, gif


def _export_front(
    evaluator: Evaluator, space: SearchSpace, front: pd.DataFrame, pareto_dir: Path
) -> dict[str, dict[str, str]]:
    """Each front architecture as JSON, a picture and the evaluator's deployable files (ONNX, weights)."""
    exported: dict[str, dict[str, str]] = {}
    for _, row in front.iterrows():
        spec = space.parse(row["arch"])
        spec.save(pareto_dir / f"{spec.stem}.json")
        picture: dict[str, str] = {}
        try:
            picture["graph"] = str(draw_arch(space, spec, pareto_dir / f"{spec.stem}.png"))
        except Exception as exc:  # noqa: BLE001 - a picture is never worth an output
            log.warning("drawing %s failed: %s", spec.key, exc)
        try:
            exported[spec.key] = {**evaluator.export(spec, pareto_dir), **picture}
        except Exception as exc:  # noqa: BLE001 - one bad export must not lose the others
            exported[spec.key] = {"error": str(exc), **picture}
            log.warning("export of %s failed: %s", spec.key, exc)
    return exported


def _outputs(run_dir: Path, *, png: Path | None, gif: Path | None, pareto_dir: Path) -> dict[str, str]:
    files = {"trials_csv": run_dir / "trials.csv", "pareto_csv": run_dir / "pareto.csv",
             "pareto_front_png": png, "pareto_evolution_gif": gif, "pareto_dir": pareto_dir}  # fmt: skip
    out = {k: str(v) for k, v in files.items() if v}
    out["report_md"] = str(run_dir / "report.md")
    out["report_html"] = str(run_dir / "report.html")  # written last, by the search task
    return out


def _log_done(summary: dict[str, Any], objectives: Sequence[Objective], run_dir: Path) -> None:
    log.info(
        "done in %.1fs: %d unique, %d failed, %d infeasible, front of %d -> %s",
        summary["wall_seconds"],
        summary["unique_evaluated"],
        summary["failed"],
        summary["infeasible"],
        summary["front_size"],
        run_dir,
    )
    for item in summary["front"]:
        log.info(
            "  front: %s %s", item["arch_key"], " ".join(f"{o.name}={item[o.name]:.4g}" for o in objectives)
        )

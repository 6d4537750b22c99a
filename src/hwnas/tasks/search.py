"""``search.run(cfg)``: the hardware-aware Pareto search, from config to a gallery of front models."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from hwnas.callbacks.logger_sinks import check_logger_config
from hwnas.callbacks.search_logger import SearchLogger
from hwnas.callbacks.search_progress import SearchProgress
from hwnas.lit.fit import instantiate_dict
from hwnas.reporting.arch_graph import draw_arch
from hwnas.reporting.dashboard import name_objectives
from hwnas.reporting.plots import plot_evolution, plot_front
from hwnas.reporting.report import write_report
from hwnas.reporting.report_html import write_html_report
from hwnas.reporting.trials import pareto_frame, trials_frame
from hwnas.search.evaluator import Evaluator
from hwnas.search.gradient import GradientSearch
from hwnas.search.loop import evaluate_proposals, read_state, run_loop
from hwnas.search.objectives import parse_constraints, parse_objectives
from hwnas.search.petridish import PetridishSearch
from hwnas.search.predicted_latency import check_front
from hwnas.search.resume import recover_stale_trials, resolve_run_dir
from hwnas.search.run_identity import check_resume
from hwnas.search.study import open_study, redact, storage_url
from hwnas.search.train_evaluator import TrainingEvaluator
from hwnas.search.workers import heartbeat_settings, is_main_worker, start_workers
from hwnas.search_space.base import file_stem
from hwnas.tasks import final
from hwnas.utils.checks import check_numbers
from hwnas.utils.config import build, build_space
from hwnas.utils.errors import ConfigError
from hwnas.utils.secrets import redact_config, scrub_hydra_outputs

log = logging.getLogger("hwnas.search")


def _check_budget(cfg: DictConfig) -> tuple[int, int]:
    n = cfg.search.get("n_trials")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(
            f"must be a positive integer, got {n!r}", key="search.n_trials", fix="e.g. search.n_trials=16"
        )
    factor = cfg.search.get("max_attempts_factor", 20)
    if not isinstance(factor, int | float) or factor < 1:
        raise ConfigError(f"must be >= 1, got {factor!r}", key="search.max_attempts_factor")
    return n, int(n * factor)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) the search and write trials.csv, pareto.csv, plots, the front's models, summary.json."""
    scrub_hydra_outputs()  # first: even a run that fails at start-up leaves .hydra/config.yaml behind
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_numbers(cfg)  # before anything reads them (the strategy takes `seed`, the workers n_workers)
    gradient = _gradient_strategy(cfg)
    n_trials, max_attempts = _check_budget(cfg) if gradient is None else (0, 0)
    run_dir = resolve_run_dir(cfg)
    _save_config(cfg, run_dir)
    space = build_space(cfg)
    evaluator: Evaluator = build(cfg.evaluator, "evaluator")
    if gradient is not None:
        gradient.check(space, cfg)
        if not isinstance(evaluator, TrainingEvaluator):
            raise ConfigError(
                f"a gradient search trains on images; evaluator {type(evaluator).__name__} has none",
                key="evaluator",
                fix="use evaluator=train or evaluator=supernet with search=darts / gdas / xnas / petridish",
            )
    objectives = parse_objectives(cfg.search.objectives, available=evaluator.metrics)
    constraints = parse_constraints(cfg.search.get("constraints"), available=evaluator.metrics)
    final_on = _final_enabled(cfg, evaluator)
    if final_on:  # refuse a bad final stage now, not after the search (or a supernet's training)
        final.check_settings(cfg, evaluator)
    check_logger_config(cfg.get("logger"))  # e.g. W&B online without a key: refused now
    sampler = build(cfg.search.sampler, "search.sampler")
    url = storage_url(cfg.search.get("storage"), run_dir)
    heartbeat_s, grace_s = heartbeat_settings(cfg)
    study = open_study(
        url=url,
        study_name=str(cfg.search.study_name),
        directions=[o.direction for o in objectives],
        sampler=sampler,
        heartbeat_s=heartbeat_s,
        grace_s=grace_s,
        only_study=not cfg.search.get("storage"),  # the run dir's own journal holds one study
    )
    forced = check_resume(study, cfg, force=bool(cfg.search.get("resume_force", False)))
    name_objectives(study, [o.name for o in objectives])  # optuna-dashboard's axes and columns
    evaluator.setup(cfg=cfg, space=space, run_dir=run_dir)  # may take minutes (a supernet): checks first
    if final_on:
        final.preflight(cfg, getattr(evaluator, "datamodule", None))
    main = is_main_worker(cfg)
    # Private run-dir storage, before our workers start: every RUNNING trial is a dead process's.
    recovered = recover_stale_trials(study, single_worker=main and not cfg.search.get("storage"))
    pool = start_workers(cfg, run_dir=run_dir, url=url, run=run) if gradient is None else None
    before = read_state(study).unique
    log.info(
        "search: %s over %s, %s (%d done already), objectives %s, storage %s, run dir %s",
        gradient.describe() if gradient is not None else type(sampler).__name__,
        space.name,
        f"up to {gradient.planned()} proposed architectures"
        if gradient is not None
        else f"{n_trials} unique architectures",
        before,
        ", ".join(f"{o.direction[:3]} {o.name}" for o in objectives),
        redact(url),
        run_dir,
    )
    log.info("evaluator: %s", evaluator.describe())
    worker = str(cfg.search.get("worker_id", "0"))
    budget = before + gradient.planned() if gradient is not None else n_trials
    slog = SearchLogger(instantiate_dict(cfg.get("logger")), objectives, budget)
    slog.set_unique(before)
    live = SearchProgress(objectives, total=budget, done=before, mode="auto" if main else "off")
    status = "failed"
    try:  # the loggers end with the run, also a failed one (a W&B run is finished, marked failed)
        t0 = time.perf_counter()
        shared = {"space": space, "evaluator": evaluator, "objectives": objectives, "constraints": constraints,
                  "on_trial": live.tee(slog), "worker": worker}  # fmt: skip
        if gradient is not None:
            rounds = gradient.rounds_of(
                space=space, evaluator=evaluator, cfg=cfg, run_dir=run_dir, study=study, objectives=objectives
            )
            for proposals in rounds:  # a round is evaluated before the strategy proposes the next
                evaluate_proposals(study, proposals, **shared)
        else:
            run_loop(
                study, n_trials=n_trials, max_attempts=max_attempts, strategy=strategy_name(cfg), **shared
            )
            pool.join()
        live.close()  # its last figures before the outputs are written
        wall = time.perf_counter() - t0
        if not main:  # a helper worker: the main process writes the outputs
            status = "success"
            return {
                "worker_id": str(cfg.search.worker_id),
                "unique_evaluated": read_state(study).unique,
                "front_size": 0,
            }
        summary = finalize(
            cfg,
            study=study,
            evaluator=evaluator,
            space=space,
            objectives=objectives,
            run_dir=run_dir,
            wall_s=wall,
            slog=slog,
            storage=redact(url),
            recovered=recovered,
            resume_forced=forced,
        )
        if _final_enabled(cfg, evaluator):
            summary["final"] = final.run_stage(cfg, run_dir)
            slog.log_final(summary["final"])
        elif isinstance(evaluator, TrainingEvaluator):
            log.info(
                "final stage not run (final.enabled=false%s): `python src/final.py run=%s` trains, checks "
                "and measures the gallery, or add final=default to the search command",
                ", the mini mode of the gradient strategies" if gradient is not None else "",
                run_dir,
            )
        write_html_report(run_dir)
        status = "success"
        return summary
    finally:
        live.close()
        slog.close(status)


def _gradient_strategy(cfg: DictConfig) -> GradientSearch | PetridishSearch | None:
    """``search.gradient`` (search=darts / gdas / xnas / petridish) built, or None for a sampler-driven
    search. Such a strategy proposes architectures round by round (``rounds_of``) and the loop evaluates them."""
    node = cfg.search.get("gradient")
    if not node:
        return None
    strategy = build(node, "search.gradient")
    if not isinstance(strategy, GradientSearch | PetridishSearch):
        raise ConfigError(
            f"_target_ built a {type(strategy).__name__}, not a GradientSearch or PetridishSearch",
            key="search.gradient._target_",
            choices=["hwnas.search.gradient.GradientSearch", "hwnas.search.petridish.PetridishSearch"],
        )
    return strategy


def strategy_name(cfg: DictConfig) -> str:
    """What the ``strategy`` column says for trials of this search (``search.name``, else the sampler)."""
    name = cfg.search.get("name")
    if name:
        return str(name)
    target = str(OmegaConf.select(cfg, "search.sampler._target_", default="") or "")
    return target.rsplit(".", 1)[-1] or "unknown"


def _save_config(cfg: DictConfig, run_dir: Path) -> None:
    """Keep the composed config in ``<run dir>/.hydra/config.yaml`` also when ``run(cfg)`` is called from
    Python (Hydra writes it for CLI runs): ``src/final.py run=<dir>`` reads the run's settings from it."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OmegaConf.to_yaml(redact_config(cfg)))


def _final_enabled(cfg: DictConfig, evaluator: Evaluator) -> bool:
    """The final stage runs after a training search unless ``final.enabled=false`` (table searches have no models)."""
    enabled = bool(OmegaConf.select(cfg, "final.enabled", default=False))
    if enabled and not isinstance(evaluator, TrainingEvaluator):
        log.info("final stage skipped: evaluator %s trains no models", type(evaluator).__name__)
        return False
    return enabled


def finalize(
    cfg: DictConfig,
    *,
    study: optuna.Study,
    evaluator: Evaluator,
    space: Any,
    objectives: list,
    run_dir: Path,
    wall_s: float,
    slog: SearchLogger | None = None,
    storage: str = "",
    recovered: int = 0,
    resume_forced: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write every output once, at the end (plots are never redrawn per trial)."""
    df = trials_frame(study, objectives)
    df.to_csv(run_dir / "trials.csv", index=False)
    front = pareto_frame(df, objectives)
    front.to_csv(run_dir / "pareto.csv", index=False)
    source = None
    if "hw/source" in df.columns and df["hw/source"].notna().any():
        source = ",".join(sorted(set(df["hw/source"].dropna().astype(str))))
    # hardware=predictor: measure the front's predicted latencies; the axis says what was predicted
    predictor = check_front(evaluator, space=space, df=df, front=front, run_dir=run_dir)
    axis = predictor["label"] if predictor else source
    title = f"{space.name} · {cfg.search.study_name}"
    png = gif = None
    if df[[o.name for o in objectives]].notna().any().all() and len(objectives) >= 2:
        png = plot_front(df, objectives, run_dir / "pareto_front.png", title=title, source=axis)
        step = int(OmegaConf.select(cfg, "search.sampler.population_size") or max(4, len(df) // 8))
        gif = plot_evolution(
            df, objectives, run_dir / "pareto_evolution.gif", step=step, title=title, source=axis
        )
    pareto_dir = run_dir / "pareto"
    pareto_dir.mkdir(exist_ok=True)
    exported: dict[str, Any] = {}
    if bool(cfg.search.get("export_front", True)):
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
    evaluator.prune_weights({file_stem(k) for k in front["arch_key"]})
    real = df[~df["duplicate"].astype(bool)]
    done = read_state(study).done  # evaluated architectures (not stale, surplus or invalid trials)
    if front.empty:
        log.warning(
            "no feasible candidate: the front is empty. Every architecture failed or violated "
            "search.constraints; relax the budget (e.g. search.constraints.hw/latency_ms.max) and look "
            "at fail_reason in trials.csv"
        )
    summary = {
        "study_name": str(cfg.search.study_name),
        "storage": storage,
        "search_space": space.name,
        "sampler": str(OmegaConf.select(cfg, "search.sampler._target_")),
        "strategies": {str(k): int(v) for k, v in real["strategy"].value_counts().items()}
        if "strategy" in real.columns
        else {},
        "objectives": [{"name": o.name, "direction": o.direction} for o in objectives],
        "n_trials_budget": None if cfg.search.get("gradient") else int(cfg.search.n_trials),
        "unique_evaluated": len(done),
        "duplicates": int(df["duplicate"].sum()),
        "failed": sum(t.state.name == "FAIL" for t in done.values()),
        "infeasible": int(((real["state"] == "COMPLETE") & ~real["feasible"].astype(bool)).sum()),
        "front_size": int(len(front)),
        "latency_source": source,
        **({"latency_predictor": predictor} if predictor else {}),  # measured vs predicted, front check
        **evaluator.sizes(),  # train_image_size, latency_input_shape (none for evaluator=table)
        "recovered_stale_trials": recovered,
        # search.resume_force=true continued with other settings: said where results are read
        **({"resume_forced": resume_forced} if resume_forced else {}),
        "wall_seconds": round(wall_s, 2),
        "front": [
            {
                "arch_key": r["arch_key"],
                **{o.name: float(r[o.name]) for o in objectives},
                **({"files": exported[r["arch_key"]]} if r["arch_key"] in exported else {}),
            }
            for _, r in front.iterrows()
        ],
        "outputs": {
            k: str(v)
            for k, v in {
                "trials_csv": run_dir / "trials.csv",
                "pareto_csv": run_dir / "pareto.csv",
                "pareto_front_png": png,
                "pareto_evolution_gif": gif,
                "pareto_dir": pareto_dir,
            }.items()
            if v
        },
    }
    summary["outputs"]["report_md"] = str(run_dir / "report.md")
    summary["outputs"]["report_html"] = str(run_dir / "report.html")  # written last, by run()
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_report(run_dir, summary=summary, front=front, objectives=objectives)
    if slog is not None:
        slog.log_search(df, front, png, summary)
    log.info(
        "done in %.1fs: %d unique, %d failed, %d infeasible, front of %d -> %s",
        wall_s,
        summary["unique_evaluated"],
        summary["failed"],
        summary["infeasible"],
        len(front),
        run_dir,
    )
    for item in summary["front"]:
        log.info(
            "  front: %s %s", item["arch_key"], " ".join(f"{o.name}={item[o.name]:.4g}" for o in objectives)
        )
    return summary

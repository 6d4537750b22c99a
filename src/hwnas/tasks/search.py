"""``search.run(cfg)``: the hardware-aware Pareto search, from config to a gallery of front models.

Composes what the config selects (space, evaluator, strategy, study, loggers, a fidelity schedule), checks
it all before anything expensive, runs the strategy, and asks ``reporting`` to write the outputs."""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from hwnas.callbacks.logger_sinks import check_logger_config
from hwnas.callbacks.search_logger import SearchLogger
from hwnas.callbacks.search_progress import SearchProgress
from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.train import TrainingEvaluator
from hwnas.lit.fit import instantiate_dict
from hwnas.reporting.dashboard import name_objectives
from hwnas.reporting.report_html import write_html_report
from hwnas.reporting.search_outputs import write_search_outputs
from hwnas.search.fidelity import build_schedules, schedule_summary
from hwnas.search.loop import read_state
from hwnas.search.objectives import parse_constraints, parse_objectives
from hwnas.search.resume import recover_stale_trials, resolve_run_dir, save_run_config
from hwnas.search.run_identity import check_resume
from hwnas.search.seeding import enqueue_seeds, seeds_of
from hwnas.search.storage.heartbeats import heartbeat_settings
from hwnas.search.storage.study import open_study, redact, storage_url
from hwnas.search.strategies.base import SearchContext, Strategy, build_strategy
from hwnas.search.workers import is_main_worker, start_workers
from hwnas.tasks import final
from hwnas.utils.checks import check_numbers
from hwnas.utils.config import build, build_space
from hwnas.utils.devices import take_device
from hwnas.utils.secrets import scrub_hydra_outputs

log = logging.getLogger("hwnas.search")


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) the search and write trials.csv, pareto.csv, plots, the front's models, summary.json."""
    scrub_hydra_outputs()  # first: even a run that fails at start-up leaves .hydra/config.yaml behind
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_numbers(cfg)  # before anything reads them (the strategy takes `seed`, the workers n_workers)
    take_device(cfg)  # this worker's GPU, CPU threads and loader workers, before anything touches CUDA
    strategy = build_strategy(cfg)
    ctx, facts = _start(cfg, strategy)
    main = is_main_worker(cfg)
    # Private run-dir storage, before our workers start: every RUNNING trial is a dead process's.
    recovered = recover_stale_trials(ctx.study, single_worker=main and not cfg.search.get("storage"))
    seeded = enqueue_seeds(ctx.study, facts["seeds"], strategy=strategy.name) if main else 0  # asked first
    pool = start_workers(cfg, run_dir=ctx.run_dir, url=facts["url"], run=run)
    before = read_state(ctx.study).unique
    objectives = ", ".join(f"{o.direction[:3]} {o.name}" for o in ctx.objectives)
    log.info("search: %s over %s (%d done already), objectives %s, storage %s, run dir %s", strategy.describe(),
             ctx.space.name, before, objectives, facts["storage"], ctx.run_dir)  # fmt: skip
    log.info("evaluator: %s", "; ".join(x.describe() for x in (ctx.evaluator, ctx.fidelity, ctx.prescreen) if x))  # fmt: skip
    budget = strategy.budget(before) + (seeded if strategy.n_trials is None else 0)  # n_trials holds seeds
    slog = SearchLogger(instantiate_dict(cfg.get("logger")), ctx.objectives, budget)
    slog.set_unique(before)
    live = SearchProgress(ctx.objectives, total=budget, done=before, mode="auto" if main else "off")
    live.seed(ctx.study)  # a resumed run's front and hypervolume cover the trials it continues from
    ctx.on_trial = live.tee(slog)
    status = "failed"
    try:  # the loggers end with the run, also a failed one (a W&B run is finished, marked failed)
        t0 = time.perf_counter()
        strategy.run(ctx)
        pool.join()
        live.close()  # its last figures before the outputs are written
        if not main:  # a helper worker: the main process writes the outputs
            status = "success"
            return {"worker_id": ctx.worker, "unique_evaluated": read_state(ctx.study).unique, "front_size": 0}  # fmt: skip
        info = {"storage": facts["storage"], "n_trials_budget": strategy.n_trials, "recovered_stale_trials": recovered,
                **facts["resume"], "wall_seconds": round(time.perf_counter() - t0, 2), **schedule_summary(ctx)}  # fmt: skip
        out = write_search_outputs(cfg, study=ctx.study, evaluator=ctx.evaluator, space=ctx.space,
                                   objectives=ctx.objectives, run_dir=ctx.run_dir, run_info=info)  # fmt: skip
        slog.log_search(out.trials, out.front, out.front_png, out.summary)
        _final_stage(cfg, out.summary, slog, ctx=ctx, strategy=strategy, final_on=facts["final_on"])
        write_html_report(ctx.run_dir)
        status = "success"
        return out.summary
    finally:
        live.close()
        slog.close(status)


def _start(cfg: DictConfig, strategy: Strategy) -> tuple[SearchContext, dict[str, Any]]:
    """Every check before anything expensive, then the study and the evaluator's set-up (a supernet's may
    take minutes). Returns the strategy's context and facts for the summary."""
    run_dir = resolve_run_dir(cfg)
    save_run_config(cfg, run_dir)
    space, evaluator = build_space(cfg), build(cfg.evaluator, "evaluator")
    strategy.check(space=space, evaluator=evaluator, cfg=cfg)
    seeds = seeds_of(cfg, space, evaluator)  # a bad arch file is refused before any training
    objectives = parse_objectives(cfg.search.objectives, available=evaluator.metrics)
    constraints = parse_constraints(cfg.search.get("constraints"), available=evaluator.metrics)
    fidelity, prescreen = build_schedules(cfg.search, objectives=objectives, evaluator=evaluator, space=space)
    final_on = _final_enabled(cfg, evaluator)
    if final_on:  # refuse a bad final stage now, not after the search (or a supernet's training)
        final.check_settings(cfg, evaluator)
    check_logger_config(cfg.get("logger"))  # e.g. W&B online without a key: refused now
    url = storage_url(cfg.search.get("storage"), run_dir)
    heartbeat_s, grace_s = heartbeat_settings(cfg)
    study = open_study(url=url, study_name=str(cfg.search.study_name), sampler=strategy.sampler(),
                       directions=[o.direction for o in objectives], heartbeat_s=heartbeat_s, grace_s=grace_s,
                       only_study=not cfg.search.get("storage"))  # the run dir's own journal: one study  # fmt: skip
    forced = check_resume(study, cfg, force=bool(cfg.search.get("resume_force", False)))
    name_objectives(study, [o.name for o in objectives])  # optuna-dashboard's axes and columns
    evaluator.setup(cfg=cfg, space=space, run_dir=run_dir)
    if final_on:
        final.preflight(cfg, getattr(evaluator, "datamodule", None))
    ctx = SearchContext(cfg=cfg, study=study, space=space, evaluator=evaluator, objectives=objectives,
                        constraints=constraints, run_dir=run_dir, worker=str(cfg.search.get("worker_id", "0")), fidelity=fidelity, prescreen=prescreen)  # fmt: skip
    facts = {"url": url, "storage": redact(url), "final_on": final_on, "seeds": seeds,
             "resume": {"resume_forced": forced} if forced else {}}  # fmt: skip
    return ctx, facts


def _final_stage(
    cfg: DictConfig,
    summary: dict[str, Any],
    slog: SearchLogger,
    *,
    ctx: SearchContext,
    strategy: Strategy,
    final_on: bool,
) -> None:
    """Train, check and measure the gallery now (``final.enabled``), or say how to do it later."""
    if final_on:
        summary["final"] = final.run_stage(cfg, ctx.run_dir)
        slog.log_final(summary["final"])
    elif isinstance(ctx.evaluator, TrainingEvaluator):
        log.info(
            "final stage not run (final.enabled=false%s): `python src/final.py run=%s` (installed: `python -m hwnas final`) trains, checks "
            "and measures the gallery, or add final=default to the search command",
            ", the mini mode of the gradient strategies" if strategy.n_trials is None else "",
            ctx.run_dir,
        )


def _final_enabled(cfg: DictConfig, evaluator: Evaluator) -> bool:
    """The final stage runs after a training search unless ``final.enabled=false`` (table searches have no models)."""
    enabled = bool(OmegaConf.select(cfg, "final.enabled", default=False))
    if enabled and not isinstance(evaluator, TrainingEvaluator):
        log.info("final stage skipped: evaluator %s trains no models", type(evaluator).__name__)
        return False
    return enabled

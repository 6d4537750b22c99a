"""``final.run(cfg)``: the stage after a search that turns its front into a gallery you can ship.

For up to ``final.top_k`` front models spread across the latency range (plus the space's baseline):
full training, fp32 + int8 ONNX, accuracy on the held-out test split (torch, ONNX fp32, ONNX int8, and
the phone through Qualcomm AI Hub when a token is set), latency re-measured on the ``hardware=`` target
at the deployment resolution. Writes ``<run dir>/final/`` and adds a "pick a model" table to report.md.
Run alone (``src/final.py``), it logs its results through the run's ``logger=`` choices, as a search does.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from hwnas.callbacks.logger_sinks import check_logger_config
from hwnas.callbacks.progress import NoProgress, Progress, StageProgress
from hwnas.callbacks.search_logger import SearchLogger
from hwnas.final.compare import (
    BASELINE_ROLES,
    baseline_stats,
    interleaved_latency,
    repeat_dir,
    repeat_seeds,
    score_repeats,
    verdicts,
)
from hwnas.final.ddp import check_batch, train_ddp
from hwnas.final.gallery import (
    GalleryContext,
    attach_supernet,
    build_model,
    is_trained,
    model_dir,
    params_of,
    training_recipe,
    with_seed,
)
from hwnas.final.parallel import available_cpus, plan_jobs, train_parallel
from hwnas.final.rows import describe, finished_row, model_row, stage_metric
from hwnas.final.selection import Pick, pick_models
from hwnas.final.settings import INITS, FinalSettings
from hwnas.hardware.build import build_profiler, input_shape_for
from hwnas.lit.fit import instantiate_dict
from hwnas.reporting.final import write_final_outputs
from hwnas.search_space.base import ArchSpec
from hwnas.utils.config import build_datamodule, build_space
from hwnas.utils.errors import ConfigError
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.final")

#: ``(architecture, role, init, model dir)`` of one model of the stage.
Model = tuple[ArchSpec, str, str, Path]


def run(cfg: DictConfig) -> dict[str, Any]:
    """``python src/final.py run=<search run dir>``: the run's own config, with this command's ``final.*``
    (and ``hardware=`` / ``logger=``, when given) on top; the results go to the run's loggers too."""
    run_dir, run_cfg = _run_config(cfg)
    check_logger_config(run_cfg.get("logger"))  # e.g. W&B online without a key: refused before training
    slog = SearchLogger(instantiate_dict(run_cfg.get("logger")), objectives=[], n_trials=0)
    status = "failed"
    try:
        out = run_stage(run_cfg, run_dir)
        slog.log_final(out)
        status = "success"
        return out
    finally:
        slog.close(status)


def _run_config(cfg: DictConfig) -> tuple[Path, DictConfig]:
    """``(run dir, the search's saved config with this command's choices on top)``; refuses a run dir that
    holds no finished search."""
    run_dir = Path(str(cfg.run))
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file() or not (run_dir / "summary.json").is_file():
        raise ConfigError(
            f"{run_dir} is not a finished search run (needs .hydra/config.yaml and summary.json)",
            key="run",
            fix="pass the run dir a search wrote, e.g. run=outputs/search/<time>",
        )
    run_cfg = OmegaConf.load(saved)
    with open_dict(run_cfg):
        run_cfg.run_dir = str(run_dir)
        run_cfg.final = cfg.final
        for group in ("hardware", "logger"):  # null in conf/final.yaml: the run's own choice
            if cfg.get(group) is not None:
                run_cfg[group] = cfg[group]
    return run_dir, run_cfg


def _objective_names(summary: dict[str, Any]) -> tuple[str, str]:
    objs = summary.get("objectives") or []
    acc = next((o["name"] for o in objs if o["direction"] == "maximize"), None)
    mins = [o["name"] for o in objs if o["direction"] == "minimize"]
    lat = next((n for n in mins if "latency" in n), mins[0] if mins else None)
    if acc is None or lat is None:
        raise ConfigError(
            f"the final stage needs an accuracy objective (maximize) and a latency one (minimize), got {objs}",
            key="search.objectives",
        )
    return acc, lat


def _device_runner(settings: FinalSettings, profiler: Any) -> tuple[Any, str]:
    """``(runner, device name)`` for accuracy on the phone, or ``(None, "")`` with one line saying why not."""
    from hwnas.hardware.qai_hub import TOKEN_FIX, QaiHubProfiler

    on_hub = isinstance(profiler, QaiHubProfiler)
    if settings.device_enabled == "true" and not on_hub:
        raise ConfigError(
            "device accuracy needs the Qualcomm AI Hub backend",
            key="final.device.enabled",
            fix=f"use hardware=snapdragon888 hardware.backend=qai_hub and {TOKEN_FIX}, or final.device.enabled=auto",
        )
    if settings.device_enabled == "false" or not on_hub:
        log.info(
            "final: no on-device accuracy (needs hardware=snapdragon888 with a Qualcomm AI Hub token: %s); "
            "int8 figures are onnxruntime on this host, labelled host-int8",
            TOKEN_FIX,
        )
        return None, ""
    from hwnas.hardware.qai_hub_inference import run_on_device

    def runner(onnx: Path, images: list) -> tuple[list, dict]:
        return run_on_device(profiler, onnx, images, chunk_size=settings.chunk_size)

    return runner, profiler.device_name


def check_settings(cfg: DictConfig, evaluator: Any) -> FinalSettings:
    """The final stage's settings, checked against the search's evaluator (no data needed: runs first)."""
    settings = FinalSettings.from_cfg(cfg.final)
    if "inherit" in settings.inits and not getattr(evaluator, "shares_weights", False):
        raise ConfigError(
            f"final.init={settings.init} fine-tunes weights inherited from a supernet, but "
            f"{type(evaluator).__name__} trains none",
            key="final.init",
            choices=INITS,
            fix="search with evaluator=supernet, or set final.init=scratch",
        )
    return settings


def preflight(cfg: DictConfig, datamodule: Any | None = None) -> FinalSettings:
    """Check the final stage's settings and data before a search spends anything (start-up errors)."""
    settings = FinalSettings.from_cfg(cfg.final)
    dm = datamodule if datamodule is not None else build_datamodule(cfg)
    check_batch(int(dm.batch_size), settings.ddp_processes)
    if not dm.has_split("test"):
        raise ConfigError(
            "the dataset has no held-out test split; the final stage never scores on selection data",
            key="dataset.dataset.num_test",
            fix="set dataset.dataset.num_test=512 (synthetic faces) or dataset.dataset.test_fraction=0.1, "
            "or final.enabled=false",
        )
    return settings


def build_context(cfg: DictConfig) -> GalleryContext:
    """Everything the stage's models share: data (with its test split), the target's profiler, int8
    calibration images from the training split, the device runner. Checks the preconditions up front."""
    dm = build_datamodule(cfg)
    settings = preflight(cfg, dm)
    profiler = build_profiler(cfg.hardware, cache_dir=None)  # re-measured, never from (or into) the cache
    profiler = getattr(profiler, "measurer", profiler)  # hardware=predictor: the final stage measures
    profiler.check()
    device, device_name = _device_runner(settings, profiler)
    ctx = GalleryContext(
        cfg=cfg,
        settings=settings,
        space=build_space(cfg),
        datamodule=dm,
        profiler=profiler,
        deploy_shape=input_shape_for(profiler, dm),
        calibration=dm.calibration_batches(settings.calibration_batches, split="train"),
        device=device,
        device_name=device_name,
        recipe=training_recipe(cfg, settings),
    )
    return attach_supernet(ctx)


def run_stage(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Run (or resume) the final stage on the search outputs in ``run_dir``; return its summary."""
    t0 = time.perf_counter()
    with open_dict(cfg):  # the stage (and its training workers) read the run's files, e.g. its supernet
        cfg.run_dir = str(run_dir)
    summary = read_json(run_dir / "summary.json") or {}
    acc, lat = _objective_names(summary)
    ctx = build_context(cfg)
    settings, final_dir, metric = ctx.settings, run_dir / "final", stage_metric(ctx)
    trials = _read_csv(run_dir / "trials.csv")
    picked = pick_models(_read_csv(run_dir / "pareto.csv"), ctx.space, top_k=settings.top_k,
                         baseline=settings.baseline, acc=acc, latency=lat, trials=trials)  # fmt: skip
    _log_plan(ctx, picked, latency=lat, final_dir=final_dir)
    models = [
        (p.spec, p.role, init, model_dir(final_dir, p.spec, init)) for p in picked for init in settings.inits
    ]
    base = next((p.spec for p in picked if p.role in BASELINE_ROLES), None)
    repeats = (
        [(base, repeat_dir(final_dir, base, s), s) for s in repeat_seeds(ctx)] if base is not None else []
    )
    progress, per_model, failed = _train_ahead(ctx, models, repeats)
    reasons = {p.spec.key: p.reason for p in picked}
    rows: list[dict[str, Any]] = []
    for spec, role, init, out_dir in models:
        row = model_row(
            ctx, spec, role, out_dir, per_model, init=init, acc=acc, lat=lat, trials=trials,
            failed=failed.get(str(out_dir)),
        )  # fmt: skip
        rows.append({**row, "pick_reason": reasons[spec.key]})
    scores = score_repeats(ctx, base, final_dir, per_model, metric) if base is not None else []
    progress.close()
    interleaved_latency(ctx, rows)
    stats = baseline_stats(rows, scores, metric)
    winners = verdicts(rows, stats, metric)
    for i, ((spec, role, init, _), row) in enumerate(zip(models, rows, strict=True), 1):
        log.info(
            "final [%d/%d] %-22s %-14s %-7s %s", i, len(models), spec.key, role, init, describe(row, metric)
        )
    _log_verdict(stats, winners, metric)
    out = write_final_outputs(run_dir, rows, budgets=settings.budgets, latency_label=ctx.profiler.describe(),
                              metric=metric, baseline=stats)  # fmt: skip
    out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    summary["final"] = out
    write_json(run_dir / "summary.json", summary)
    log.info(
        "final stage done in %.1fs: %d model(s), %d failed, final front of %d -> %s",
        out["wall_seconds"], out["n_models"], out["n_failed"], out["front_size"], final_dir / "final.csv",
    )  # fmt: skip
    return out


def _log_verdict(stats: dict[str, Any] | None, winners: list[dict[str, Any]], metric: str) -> None:
    if stats is None:
        return
    log.info(
        "final: baseline %s test %s %.3f ± %.3f over %d training seed(s); %s",
        stats["arch_key"], metric, stats["mean"], stats["std"], stats["n"],
        f"{len(winners)} searched model(s) beat it: " + ", ".join(
            f"{r['arch_key']} ({r[f'{metric}_vs_baseline']:+.3f} at {r['latency_vs_baseline']:.2f}x its latency)"
            for r in winners
        ) if winners else "no searched model beats it",
    )  # fmt: skip


def _read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def _log_plan(ctx: GalleryContext, picked: list[Pick], *, latency: str, final_dir: Path) -> None:
    """One line on what the stage will do (models, training, test split, target), and the int8 caveat."""
    settings = ctx.settings
    log.info(
        "final: %d model(s) (%d front, chosen by the search's evidence on %s%s), %s, test split of %d images; "
        "latency on %s at %s, all models in one interleaved pass -> %s",
        len(picked) * len(settings.inits),
        sum(p.role != "baseline" for p in picked),
        latency,
        f" + baseline x {settings.baseline_seeds} training seed(s)" if settings.baseline else "",
        " and ".join(
            f"{settings.epochs_for(i)} epochs {'from scratch' if i == 'scratch' else 'fine-tuning supernet weights'}"
            for i in settings.inits
        ),
        len(ctx.datamodule.split("test")),
        ctx.profiler.describe(),
        "x".join(map(str, ctx.deploy_shape)),
        final_dir,
    )
    for p in picked:
        log.info("final: picked %s (%s): %s", p.spec.key, p.role, p.reason)
    if settings.reduce_range:
        log.info(
            "final: int8 weights quantised to 7 bits (final.int8.reduce_range): onnxruntime's U8S8 kernels "
            "saturate with 8-bit weights on this x86 CPU without VNNI; set final.int8.reduce_range=false "
            "for full 8-bit weights"
        )


def _train_ahead(
    ctx: GalleryContext, models: list[Model], repeats: list[tuple[ArchSpec, Path, int]] | None = None
) -> tuple[StageProgress, Progress, dict[str, str]]:
    """Train the unfinished models before any is evaluated when ``final.ddp.processes`` (each by a DDP
    group, one at a time) or ``final.jobs`` (side by side) asks for it; else each trains in its turn.

    ``repeats`` (the baseline at its extra training seeds: ``(spec, dir, seed)``) train beside the models.
    Returns the stage's progress, the progress each model's own training reports to, and the reason each
    model (by its dir) already failed.
    """
    settings = ctx.settings
    todo = [(s, init, d) for s, _, init, d in models if finished_row(ctx, s, init, d) is None]
    to_train = [(s, init, d) for s, init, d in todo if not is_trained(ctx, s, d, init)]
    again = [(s, d, seed) for s, d, seed in repeats or [] if not is_trained(with_seed(ctx, seed), s, d)]
    progress = StageProgress(
        sum(settings.epochs_for(init) for _, init, _ in to_train) + settings.epochs * len(again)
    )
    jobs, threads = plan_jobs(settings.jobs, len(to_train) + len(again))
    if settings.ddp_processes > 1 and to_train:
        threads = max(1, available_cpus() // settings.ddp_processes)
        work = [(s, d, init) for s, init, d in to_train]
        failed = train_ddp(
            ctx.cfg, work, processes=settings.ddp_processes, threads=threads, progress=progress
        )
        return progress, NoProgress(), failed
    if jobs > 1:  # train side by side first; evaluate and time one at a time after, on a quiet machine
        work_p: list[Any] = [(s, d, params_of(build_model(ctx, s)), init) for s, init, d in to_train]
        work_p += [(s, d, params_of(build_model(ctx, s)), "scratch", seed) for s, d, seed in again]
        failed = train_parallel(ctx.cfg, work_p, jobs=jobs, threads=threads, progress=progress)
        return progress, NoProgress(), failed
    return progress, progress, {}

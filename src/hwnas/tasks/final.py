"""``final.run(cfg)``: the stage after a search that turns its front into a gallery you can ship.

For up to ``final.top_k`` front models spread across the latency range (plus the space's baseline):
full training, fp32 + int8 ONNX, accuracy on the held-out test split (torch, ONNX fp32, ONNX int8, and
the phone through Qualcomm AI Hub when a token is set), latency re-measured on the ``hardware=`` target
at the deployment resolution. Writes ``<run dir>/final/`` and adds a "pick a model" table to report.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from hwnas.callbacks.progress import NoProgress, Progress, StageProgress
from hwnas.final.ddp import check_batch, train_ddp
from hwnas.final.gallery import (
    INITS,
    MODEL_ERRORS,
    FinalSettings,
    GalleryContext,
    attach_supernet,
    build_model,
    evaluate,
    failure_reason,
    fingerprint,
    is_trained,
    measure,
    model_dir,
    params_of,
    train_full,
    training_recipe,
)
from hwnas.final.parallel import available_cpus, plan_jobs, train_parallel
from hwnas.final.selection import spread_across
from hwnas.hardware.build import build_profiler, input_shape_for
from hwnas.reporting.final import write_final_outputs
from hwnas.search_space.base import ArchSpec
from hwnas.utils.config import build_datamodule, build_space
from hwnas.utils.errors import ConfigError, InvalidArchError
from hwnas.utils.io import read_json, write_json

log = logging.getLogger("hwnas.final")


def run(cfg: DictConfig) -> dict[str, Any]:
    """``python src/final.py run=<search run dir>``: the run's own config, with this command's ``final.*``
    (and ``hardware=``, when given) on top."""
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
        if cfg.get("hardware") is not None:
            run_cfg.hardware = cfg.hardware
    return run_stage(run_cfg, run_dir)


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


def _lookup(trials: pd.DataFrame, key: str, column: str) -> float:
    if column not in trials.columns:
        return math.nan
    rows = trials[(trials["arch_key"] == key) & (trials["state"] == "COMPLETE")]
    vals = pd.to_numeric(rows[column], errors="coerce").dropna()
    return float(vals.iloc[0]) if len(vals) else math.nan


def _baseline(space: Any) -> ArchSpec | None:
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


def _result_key(ctx: GalleryContext, spec: ArchSpec, init: str) -> str:
    blob = {
        "train": fingerprint(ctx, spec, init),
        "hardware": ctx.profiler.cache_identity(),
        "deploy_shape": list(ctx.deploy_shape),
        "int8": [
            ctx.settings.calibration_batches,
            ctx.settings.calibration_method,
            ctx.settings.per_channel,
            ctx.settings.reduce_range,
        ],
        "device": ctx.device_name,
        "max_images": ctx.settings.max_images,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    trials = pd.read_csv(run_dir / "trials.csv") if (run_dir / "trials.csv").is_file() else pd.DataFrame()
    front = pd.read_csv(run_dir / "pareto.csv") if (run_dir / "pareto.csv").is_file() else pd.DataFrame()
    ctx = build_context(cfg)
    settings, space, dm, profiler = ctx.settings, ctx.space, ctx.datamodule, ctx.profiler
    picked: list[tuple[ArchSpec, str]] = []
    if not front.empty and lat in front.columns:
        picked = [
            (space.parse(a), "front") for a in spread_across(front, settings.top_k, latency=lat)["arch"]
        ]
    base = _baseline(space) if settings.baseline else None
    if base is not None:
        picked = [(s, "front+baseline" if s.key == base.key else r) for s, r in picked]
        if base.key not in {s.key for s, _ in picked}:
            picked.append((base, "baseline"))
    final_dir = run_dir / "final"
    log.info(
        "final: %d model(s) (%d front, spread across %s%s), %s, test split of %d images; "
        "latency on %s at %s -> %s",
        len(picked) * len(settings.inits),
        sum(r != "baseline" for _, r in picked),
        lat,
        " + baseline" if settings.baseline else "",
        " and ".join(
            f"{settings.epochs_for(i)} epochs {'from scratch' if i == 'scratch' else 'fine-tuning supernet weights'}"
            for i in settings.inits
        ),
        len(dm.split("test")),
        profiler.describe(),
        "x".join(map(str, ctx.deploy_shape)),
        final_dir,
    )
    if settings.reduce_range:
        log.info(
            "final: int8 weights quantised to 7 bits (final.int8.reduce_range): onnxruntime's U8S8 kernels "
            "saturate with 8-bit weights on this x86 CPU without VNNI; set final.int8.reduce_range=false "
            "for full 8-bit weights"
        )
    models = [(s, r, init, model_dir(final_dir, s, init)) for s, r in picked for init in settings.inits]
    todo = [
        (s, init, d)
        for s, _, init, d in models
        if (read_json(d / "result.json") or {}).get("key") != _result_key(ctx, s, init)
    ]
    to_train = [(s, init, d) for s, init, d in todo if not is_trained(ctx, s, d, init)]
    progress = StageProgress(sum(settings.epochs_for(init) for _, init, _ in to_train))
    jobs, threads = plan_jobs(settings.jobs, len(to_train))
    failed: dict[str, str] = {}
    per_model: Progress = progress
    if settings.ddp_processes > 1 and to_train:  # each model by a DDP group, one model at a time
        threads = max(1, available_cpus() // settings.ddp_processes)
        failed = train_ddp(
            cfg,
            [(s, d, init) for s, init, d in to_train],
            processes=settings.ddp_processes,
            threads=threads,
            progress=progress,
        )
        per_model = NoProgress()
    elif jobs > 1:  # train side by side first; evaluate and time one at a time below, on a quiet machine
        work = [(s, d, params_of(build_model(ctx, s)), init) for s, init, d in to_train]
        failed = train_parallel(cfg, work, jobs=jobs, threads=threads, progress=progress)
        per_model = NoProgress()
    rows: list[dict[str, Any]] = []
    for i, (spec, role, init, out_dir) in enumerate(models, 1):
        rows.append(
            _one_model(
                ctx,
                spec,
                role,
                out_dir,
                per_model,
                init=init,
                acc=acc,
                lat=lat,
                trials=trials,
                failed=failed.get(str(out_dir)),
            )
        )
        r = rows[-1]
        log.info(
            "final [%d/%d] %-22s %-14s %-7s %s",
            i,
            len(models),
            spec.key,
            role,
            init,
            r["error"]
            if r.get("error")
            else (
                f"test mIoU fp32 {r['full_miou_fp32']:.3f} int8 {r['int8_miou']:.3f} F1 {r['f1']:.3f} ({r['f1_source']}) "
                + (f"acc fp32 {r['acc_fp32']:.3f} int8 {r['int8_acc']:.3f} " if "acc_fp32" in r else "")
                + f"latency {r['latency_ms']:.3g} ms ({r['latency_source']}) {r['train_seconds']:.0f}s"
                + (" [reused]" if r.get("reused") else "")
            ),
        )
    progress.close()
    out = write_final_outputs(run_dir, rows, budgets=settings.budgets, latency_label=profiler.describe())
    out["wall_seconds"] = round(time.perf_counter() - t0, 2)
    summary["final"] = out
    write_json(run_dir / "summary.json", summary)
    log.info(
        "final stage done in %.1fs: %d model(s), %d failed, final front of %d -> %s",
        out["wall_seconds"], out["n_models"], out["n_failed"], out["front_size"], final_dir / "final.csv",
    )  # fmt: skip
    return out


def _one_model(
    ctx: GalleryContext,
    spec: ArchSpec,
    role: str,
    out_dir: Path,
    progress: Progress,
    *,
    init: str = "scratch",
    acc: str,
    lat: str,
    trials: pd.DataFrame,
    failed: str | None = None,
) -> dict[str, Any]:
    """One model's row: reused from ``result.json`` when finished before, else trained (or its weights
    from the parallel training reused) and measured; ``failed`` = the reason its training already failed."""
    key = _result_key(ctx, spec, init)
    done = read_json(out_dir / "result.json")
    if done and done.get("key") == key:
        return {**done["row"], "reused": True}
    row: dict[str, Any] = {
        "arch_key": spec.key,
        "role": role,
        "init": init,
        "proxy_miou": _lookup(trials, spec.key, acc),
        "search_latency_ms": _lookup(trials, spec.key, lat),
    }
    if failed:
        return {**row, "error": failed}
    try:
        spec.save(out_dir / "arch.json")
        model, info = train_full(ctx, spec, out_dir, progress, init)
        ev = evaluate(ctx, model, out_dir)
        report = measure(ctx, model, ev["files"])
    except MODEL_ERRORS as exc:  # one model never sinks the stage
        reason = failure_reason(exc)
        log.warning("final: %s failed: %s", spec.key, reason)
        return {**row, "error": reason}
    row |= {
        "full_miou_fp32": ev["torch/miou"],
        "onnx_miou_fp32": ev["onnx_fp32/miou"],
        "int8_miou": ev["int8/miou"],
        "int8_drop": 100.0 * (ev["torch/miou"] - ev["int8/miou"]),
        "f1_fp32": ev["torch/f1"],
        "f1_int8_host": ev["int8/f1"],
        "f1": ev["f1"],
        "f1_source": ev["f1_source"],
        "latency_ms": report.median_ms,
        "latency_p10_ms": report.p10_ms,
        "latency_p90_ms": report.p90_ms,
        "latency_source": f"{report.source} ({report.backend}, {report.precision})",
        "latency_input": "x".join(map(str, ctx.deploy_shape)),
        "train_size": "x".join(map(str, ctx.eval_shape[-2:])),
        "val_miou": info.get("val_miou"),
        "params": params_of(model),
        "train_seconds": info.get("train_seconds"),
        "n_test": ev["n_test"],
        "files": {**ev["files"], "weights": str(out_dir / "weights.pt"), "arch": str(out_dir / "arch.json")},
    }
    if getattr(ctx.datamodule, "task", "") == "classification":  # top-1 accuracy, as classifiers quote
        row |= {"acc_fp32": ev["torch/acc"], "int8_acc": ev["int8/acc"]}
    write_json(out_dir / "result.json", {"key": key, "row": row})
    return {**row, "reused": bool(info.get("reused"))}

"""How well does the search's cheap accuracy proxy rank architectures the way full training does?

``make bench-proxy [ARGS="--n 14 --proxies e1b32,e2b24@optim.lr=0.008"]``. Samples ``--n`` architectures across
the whole search space (not only front members), trains each at the final stage's setting (the very
code of ``src/final.py``: full training, test-split mIoU) and at each proxy setting (the search's
``TrainingEvaluator``: partial training, validation mIoU), and prints Kendall's tau and Spearman's rho
with bootstrap 95 % intervals, and the share of the proxy front (proxy mIoU vs latency) that is still
on the front after full training. Figures, never assertions. Trained models and proxy scores are kept
under ``--out`` and reused on the next run, so adding a proxy variant costs only its own training.

A proxy is ``e<epochs>b<batches>`` with optional ``@key=value`` overrides of the search config, e.g.
``e2b24@optim.lr=0.008``, ``e3b32@evaluator.image_size=32`` (the default: the search's own proxy) or
``e1b48@tricks.schedule.warmup_frac=0.2``; or ``supernet`` (``evaluator=supernet``: weights inherited from
a supernet trained once, its training counted in "set-up s"), e.g. ``supernet@evaluator.kernel_mode=separate``.
``make bench-supernet`` runs the search's own partial-training proxy and the supernet side by side.

Multi-fidelity rungs and zero-cost scores (issue 31): ``R:<rung>+<rung>...`` trains every architecture
through the default proxy (rung 0) and then each promotion rung in turn (``e<epochs>b<batches>[s<size>]``,
e.g. ``R:e3b32s64``), scoring every rung (rows ``R:...#r0``, ``#r1``, ...), as the search's
``search.fidelity`` would for a candidate promoted all the way; ``zc:<score>`` is a zero-cost score
(``hwnas.evaluators.zero_cost``: synflow, naswot, grad_norm, snip, meco, params, flops).

The architectures: ``--n`` sampled uniformly, plus, with ``--archs-from <run dirs>``, the searched
architectures of those runs that already have a full training in ``final.cache`` (bench-face's and the
searches' cached trainings, same recipe and seed), plus ``--runs-extra`` more of them spread by latency
(trained here). Kendall's tau is given overall and pooled within ``--bins`` latency bins (quantiles), with
bootstrap intervals, and each row's within-bin tau minus the first row's with a paired interval.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]

import hwnas  # noqa: E402,F401
from hwnas.callbacks.progress import StageProgress  # noqa: E402
from hwnas.evaluators.train import TrainingEvaluator  # noqa: E402
from hwnas.final.gallery import (  # noqa: E402
    FinalSettings,
    build_model,
    config_recipe,
    params_of,
    train_full,
)
from hwnas.final.parallel import plan_jobs, train_parallel  # noqa: E402
from hwnas.final.predict import evaluate_torch, split_batches  # noqa: E402
from hwnas.pareto import pareto_mask  # noqa: E402
from hwnas.tasks.final import build_context  # noqa: E402
from hwnas.utils.cli import quiet_third_party  # noqa: E402
from hwnas.utils.config import build  # noqa: E402
from hwnas.utils.io import read_json, write_json  # noqa: E402
from proxy_stats import bootstrap_ci, latency_bins, paired_diff_ci, tau_overall, tau_within  # noqa: E402

PROXY = re.compile(r"^e(\d+)b(\d+)((?:@[^@]+)*)$")
SUPERNET = re.compile(r"^supernet((?:@[^@]+)*)$")


def compose_cfg(overrides: list[str], out: Path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    with open_dict(cfg):
        cfg.run_dir = str(out)
        cfg.paths.root_dir = str(ROOT)
    return cfg


def sample_unique(space, n: int, seed: int) -> list:  # noqa: ANN001 - a SearchSpace
    """``n`` distinct architectures sampled from ``space`` (the same ones for the same seed)."""
    rng = np.random.default_rng(seed)
    specs, seen = [], set()
    while len(specs) < n:
        s = space.sample(rng)
        if s.key not in seen:
            seen.add(s.key)
            specs.append(s)
    return specs


def runs_archs(space, runs: list[Path], ctx, extra: int) -> list:  # noqa: ANN001
    """Searched architectures of ``runs`` (their trials.csv) with a full training in ``final.cache`` under
    the current recipe, plus ``extra`` more spread evenly by latency (they get trained)."""
    import json

    import pandas as pd

    from hwnas.final.gallery import _cache_entry, fingerprint

    seen: dict[str, tuple] = {}
    for run in runs:
        df = pd.read_csv(run / "trials.csv")
        df = df[df["state"].eq("COMPLETE") & df["arch"].notna() & df["hw/latency_ms"].notna()]
        for a, lat in zip(df["arch"], df["hw/latency_ms"], strict=True):
            spec = space.make(json.loads(a)["params"])
            seen.setdefault(spec.key, (spec, float(lat)))
    cached, rest = [], []
    for spec, lat in seen.values():
        entry = _cache_entry(ctx, fingerprint(ctx, spec))
        (cached if entry is not None and (entry / "weights.pt").is_file() else rest).append(
            (lat, spec.key, spec)
        )
    rest.sort()
    picks = [rest[int(i)] for i in np.linspace(0, len(rest) - 1, extra)] if extra and rest else []
    return [s for _, _, s in sorted(cached)] + [s for _, _, s in picks]


RUNG = re.compile(r"^e(\d+)b(\d+)(?:s(\d+))?(?:l([0-9.e-]+))?$")


def parse_rungs_text(text: str) -> list[dict]:
    """``e3b32s64+e2b32`` -> search.fidelity.rungs entries."""
    out = []
    for part in text.split("+"):
        m = RUNG.match(part)
        if not m:
            raise SystemExit(
                f"bad rung {part!r}: expected e<epochs>b<batches>[s<size>][l<lr>], e.g. e3b32s64"
            )
        out.append({"max_epochs": int(m.group(1)), "limit_train_batches": int(m.group(2)),
                    "image_size": int(m.group(3)) if m.group(3) else None,
                    "lr": float(m.group(4)) if m.group(4) else None})  # fmt: skip
    return out


def parse_proxy(text: str) -> list[str]:
    """The search-config overrides of a proxy: ``e<epochs>b<batches>[@k=v...]`` (partial training) or
    ``supernet[@k=v...]`` (inherited weights from ``evaluator=supernet``)."""
    m = SUPERNET.match(text)
    if m:
        return ["evaluator=supernet", *[o for o in m.group(1).split("@") if o]]
    m = PROXY.match(text)
    if not m:
        raise SystemExit(
            f"bad proxy {text!r}: expected e<epochs>b<batches>[@key=value...] (e.g. e2b24@optim.lr=0.008) "
            "or supernet[@key=value...] (e.g. supernet@evaluator.kernel_mode=separate)"
        )
    extra = [o for o in m.group(3).split("@") if o]
    return [f"evaluator.max_epochs={m.group(1)}", f"evaluator.limit_train_batches={m.group(2)}", *extra]


def top_recall(proxy: np.ndarray, final: np.ndarray, share: float = 0.25) -> float:
    """Share of the truly best ``share`` of architectures that the proxy also puts in its best ``share``."""
    k = max(1, int(round(share * len(final))))
    return len(set(np.argsort(-proxy)[:k]) & set(np.argsort(-final)[:k])) / k


def front_retention(proxy: np.ndarray, final: np.ndarray, latency: np.ndarray) -> tuple[int, int]:
    dirs = ["maximize", "minimize"]
    pf = pareto_mask(np.column_stack([proxy, latency]), dirs)
    ff = pareto_mask(np.column_stack([final, latency]), dirs)
    return int((pf & ff).sum()), int(pf.sum())


def finetune(ctx, ev, specs, final_a, lat_a, k: int, out: Path) -> None:
    """Fine-tune ``k`` architectures (spread across latency) from the supernet; print inherit vs scratch."""
    ictx = dataclasses.replace(ctx, supernet=ev.supernet, supernet_key=ev.key)
    order = np.argsort(lat_a)
    picks = sorted({int(order[int(round(i))]) for i in np.linspace(0, len(order) - 1, k)})
    progress = StageProgress(len(picks) * ictx.settings.epochs_for("inherit"), desc="fine-tune")
    print(
        f"\nfine-tuning inherited weights: {ictx.settings.epochs_for('inherit')} epochs, "
        f"lr {ictx.settings.optim_for('inherit')['lr']} (scratch: {ictx.settings.epochs} epochs, "
        f"lr {ictx.settings.optim['lr']})"
    )
    print("| architecture | latency ms | scratch test mIoU | fine-tuned test mIoU | fine-tune s |")
    print("|---|---|---|---|---|")
    for i in picks:
        spec = specs[i]
        model, info = train_full(ictx, spec, out / spec.stem, progress, "inherit")
        cm = evaluate_torch(
            model, split_batches(ictx.datamodule, "test"), num_classes=ictx.datamodule.num_classes
        )
        print(
            f"| {spec.key} | {lat_a[i]:.3g} | {final_a[i]:.3f} | {cm.miou():.3f} | "
            f"{info.get('train_seconds', float('nan')):.0f} |",
            flush=True,
        )
    progress.close()


def score_proxy(proxy: str, args, space, specs, ctx, base: list[str]) -> list:  # noqa: ANN001
    """``[(row name, scores, s per architecture, set-up s)]`` of one proxy (a rung schedule gives a row per
    rung). Scores are cached under ``--out`` by proxy and recipe, so adding a proxy costs only its own."""
    from hwnas.evaluators.rungs import parse_rungs

    zc = proxy.startswith("zc:")
    rungs = parse_rungs(parse_rungs_text(proxy[2:])) if proxy.startswith("R:") else []
    pcfg = compose_cfg([*args.overrides, *(base if zc or rungs else parse_proxy(proxy))], args.out)
    recipe = config_recipe(pcfg, ("evaluator", "tricks", "optim", "trainer", "dataset", "seed"))
    ev = build(pcfg.evaluator, "evaluator")  # the search's own evaluator, at this proxy setting
    t0 = time.perf_counter()
    ev.setup(cfg=pcfg, space=space, run_dir=args.out / "proxy_runs" / re.sub(r"[^\w.-]", "_", proxy))
    setup_s = time.perf_counter() - t0
    names = [f"{proxy}#r{i}" for i in range(len(rungs) + 1)] if rungs else [proxy]
    scores: list[list[float]] = [[] for _ in names]
    secs: list[float] = []
    for spec in specs:
        path = args.out / "proxy" / re.sub(r"[^\w.@=+-]", "_", proxy) / f"{spec.stem}.json"
        rec = read_json(path)
        if not rec or rec.get("recipe") != recipe:  # a cached score of another recipe is not reused
            t0 = time.perf_counter()
            if zc:
                name = proxy[3:]
                vals = [
                    float(ev.cheap(spec)[name]) if name in ("params", "flops") else ev.zero_cost(spec, name)
                ]
            else:
                vals = [ev.expensive(spec)["val/miou"]]
                vals += [ev.promote(spec, r)["val/miou"] for r in rungs]
            rec = {"scores": vals, "seconds": time.perf_counter() - t0, "recipe": recipe}
            write_json(path, rec)
        for i, v in enumerate(rec.get("scores") or [rec.get("val_miou")]):
            scores[i].append(v)
        secs.append(rec["seconds"])
    if args.finetune and getattr(ev, "shares_weights", False):
        fctx = dataclasses.replace(ctx, settings=FinalSettings.from_cfg(pcfg.final))  # e.g. final.inherit.*
        final_a = np.array(
            [read_json(args.out / "final" / x.stem / "bench.json")["test_miou"] for x in specs]
        )
        lat_a = np.array([read_json(args.out / "final" / x.stem / "bench.json")["latency_ms"] for x in specs])
        finetune(fctx, ev, specs, final_a, lat_a, args.finetune, args.out / "finetune" / proxy)
    return [
        (n, np.array(sc, float), float(np.mean(secs)), setup_s) for n, sc in zip(names, scores, strict=True)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="architectures sampled uniformly from the space")
    ap.add_argument("--seed", type=int, default=0, help="seed of the architecture sample")
    ap.add_argument(
        "--proxies",
        default=None,
        help="comma-separated proxy settings; 'default' = the search's own (the default)",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "proxy")
    ap.add_argument(
        "--finetune",
        type=int,
        default=0,
        help="for supernet proxies: also fine-tune this many architectures (spread across latency) from "
        "their inherited weights with final.inherit.* and compare test mIoU with training from scratch",
    )
    ap.add_argument("--archs-from", default="", help="comma-separated run dirs whose searched "
                    "architectures with a cached full training (final.cache) join the sample")  # fmt: skip
    ap.add_argument("--runs-extra", type=int, default=0, help="more of those runs' architectures (spread by "
                    "latency) to train fully here")  # fmt: skip
    ap.add_argument("--archs-file", type=Path, default=None, help="a JSON list of architectures' parameters "
                    "(an earlier run's <out>/archs.json) instead of --n/--archs-from")  # fmt: skip
    ap.add_argument("--bins", type=int, default=4, help="latency bins (quantiles) of the within-bin tau")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the search config (data, final.*, ...)")
    args = ap.parse_args()
    quiet_third_party()
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = compose_cfg(list(args.overrides), args.out)
    ctx = build_context(cfg)
    space = ctx.space
    specs = sample_unique(space, args.n, args.seed) if args.n else []
    if args.archs_file:  # the exact set of an earlier run (its --out/archs.json)
        specs = [space.make(params) for params in read_json(args.archs_file)]
    elif args.archs_from:
        keys = {x.key for x in specs}
        runs = [Path(r) for r in args.archs_from.split(",") if r]
        specs += [x for x in runs_archs(space, runs, ctx, args.runs_extra) if x.key not in keys]
    write_json(args.out / "archs.json", [dict(x.values) for x in specs])  # --archs-file reruns this set
    default_proxy = f"e{int(cfg.evaluator.max_epochs)}b{int(cfg.evaluator.limit_train_batches)}"
    if cfg.evaluator.get("image_size"):
        default_proxy += f"@evaluator.image_size={cfg.evaluator.image_size}"
    proxies = [default_proxy if p == "default" else p for p in (args.proxies or "default").split(",")]
    base_overrides = parse_proxy(default_proxy)
    epochs = int(ctx.settings.trainer.get("max_epochs", 1))
    print(
        f"bench-proxy: {len(specs)} architectures, final setting {epochs} epochs, proxies {proxies}",
        flush=True,
    )

    # Latency (the search's cheap stage, on cfg.hardware) and the final-setting test mIoU.
    ev0 = TrainingEvaluator(max_epochs=1, limit_train_batches=1)
    ev0.setup(cfg=cfg, space=space, run_dir=args.out / "proxy_runs")
    todo = [
        s
        for s in specs
        if (read_json(args.out / "final" / s.stem / "bench.json") or {}).get("recipe") != ctx.recipe
    ]
    progress = StageProgress(len(todo) * epochs, desc="final setting")
    jobs, threads = plan_jobs(ctx.settings.jobs, len(todo))
    if jobs > 1:  # side by side, as the final stage trains (the test scores below reuse the weights)
        work = [(s, args.out / "final" / s.stem, params_of(build_model(ctx, s)), "scratch") for s in todo]
        train_parallel(cfg, work, jobs=jobs, threads=threads, progress=progress)
    final, lat, secs = [], [], []
    for spec in specs:
        d = args.out / "final" / spec.stem
        rec = read_json(d / "bench.json")
        if not rec or rec.get("recipe") != ctx.recipe:
            t0 = time.perf_counter()
            model, info = train_full(ctx, spec, d, progress)
            cm = evaluate_torch(
                model, split_batches(ctx.datamodule, "test"), num_classes=ctx.datamodule.num_classes
            )
            rec = {
                "arch_key": spec.key,
                "test_miou": cm.miou(),
                "latency_ms": ev0.cheap(spec)["hw/latency_ms"],
                "train_seconds": info.get("train_seconds", time.perf_counter() - t0),
                "recipe": ctx.recipe,
            }
            write_json(d / "bench.json", rec)
        final.append(rec["test_miou"])
        lat.append(rec["latency_ms"])
        secs.append(rec["train_seconds"])
        print(
            f"  final {spec.key}: test mIoU {rec['test_miou']:.3f}, latency {rec['latency_ms']:.3g} ms, {rec['train_seconds']:.0f}s",
            flush=True,
        )
    progress.close()
    final_a, lat_a = np.array(final), np.array(lat)

    bins = latency_bins(lat_a, args.bins)
    scored: list[tuple[str, np.ndarray, float, float]] = []  # (name, scores, s / arch, set-up s)
    for proxy in proxies:
        scored += score_proxy(proxy, args, space, specs, ctx, base_overrides)
    rows = []
    ref = scored[0][1]
    for name, p, per_arch, setup_s in scored:
        kept, pf = front_retention(p, final_a, lat_a)
        rows.append(
            {
                "proxy": name,
                "tau": tau_overall(p, final_a, bins),
                "tau_ci": bootstrap_ci(tau_overall, p, final_a, bins),
                "tau_bin": tau_within(p, final_a, bins),
                "tau_bin_ci": bootstrap_ci(tau_within, p, final_a, bins),
                "vs_first": paired_diff_ci(tau_within, p, ref, final_a, bins),
                "rho": spearmanr(p, final_a)[0],
                "front_kept": kept,
                "top25_recall": top_recall(p, final_a),
                "setup_s": setup_s,
                "proxy_front": pf,
                "proxy_s_per_arch": per_arch,
                "proxy_miou_range": [float(p.min()), float(p.max())],
            }
        )
    print()
    print(
        f"final setting: {epochs} epochs, test mIoU {final_a.min():.3f}–{final_a.max():.3f}, "
        f"{np.mean(secs):.0f} s per model (mean)"
    )
    print(
        f"{len(specs)} architectures, {args.bins} latency bins (quantiles); intervals: 95 % bootstrap over "
        "architectures; 'within-bin - first row': paired\n"
    )
    print(
        "| proxy | Kendall tau [95% CI] | within-bin tau [95% CI] | within-bin - first row [95% CI] | Spearman rho "
        "| top-25 % recall | proxy front kept | s / arch | set-up s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        d = r["vs_first"]
        print(
            f"| {r['proxy']} | {r['tau']:.3f} [{r['tau_ci'][0]:.2f}, {r['tau_ci'][1]:.2f}] | "
            f"{r['tau_bin']:.3f} [{r['tau_bin_ci'][0]:.2f}, {r['tau_bin_ci'][1]:.2f}] | "
            f"{d[0]:+.3f} [{d[1]:+.2f}, {d[2]:+.2f}] | {r['rho']:.3f} | {100 * r['top25_recall']:.0f} % | "
            f"{r['front_kept']}/{r['proxy_front']} | {r['proxy_s_per_arch']:.2f} | {r['setup_s']:.0f} |"
        )
    write_json(
        args.out / "results.json",
        {
            "n": len(specs),
            "final_epochs": epochs,
            "final": final,
            "latency": lat,
            "rows": rows,
            "archs": [x.key for x in specs],
            "scores": {n: [float(v) for v in p] for n, p, _, _ in scored},
        },
    )


if __name__ == "__main__":
    main()

"""How well does the offline Hexagon estimate match Qualcomm's published device latencies?

``make bench-device [ARGS="--devices all --runtimes qnn_dlc,tflite --precisions w8a8,float"]``

For each device x runtime x precision: the torchvision models of ``hwnas.hardware.zoo`` with a published
latency there (``hwnas.hardware.device_data``, read from the ``qai-hub-models`` wheel's files), their
ONNX graphs with random weights at the published input shape, and pooled out-of-fold predictions with
whole model families held out (``hwnas.hardware.device_fit``): the calibrated roofline, today's
uncalibrated one, and params / FLOPs power laws. Prints Spearman, Kendall, median absolute % error and
the share within ±10 / ±20 %, with 95 % bootstrap intervals, and the Snapdragon 888 check on the V68
(QCS6490, RB3 Gen 2) data. ``--write-options`` (re)writes the fitted ``conf/hardware/<chip>.yaml``
options from fits on every model. Writes ``bench_device.csv`` / ``bench_device.json`` / ``oof.csv``
under ``--out``. No network, no device.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from hwnas.hardware.device_data import perf_table, qai_hub_models_version
from hwnas.hardware.device_fit import (
    METHODS,
    _metrics,
    constants_dict,
    fit_device,
    graph_of,
    out_of_fold,
    scale_free,
    score,
)
from hwnas.hardware.zoo import export, zoo_models

log = logging.getLogger("bench_device")

V68 = "Dragonwing RB3 Gen 2 Vision Kit"
#: ``conf/hardware`` options fitted by ``--write-options``: name -> (device, chip, runtime, precision).
OPTIONS = {
    "qcs6490": (V68, "Qualcomm QCS6490 (Dragonwing RB3 Gen 2) Hexagon HTP v68"),
    "snapdragon8gen1": ("Samsung Galaxy S22 5G", "Snapdragon 8 Gen 1 (Galaxy S22) Hexagon HTP v69"),
    "snapdragon8gen3": ("Samsung Galaxy S24", "Snapdragon 8 Gen 3 (Galaxy S24) Hexagon HTP v75"),
    "snapdragon8elite": ("Samsung Galaxy S25", "Snapdragon 8 Elite for Galaxy (Galaxy S25) Hexagon HTP v79"),
}
DEFAULT_DEVICES = (
    V68,
    "Samsung Galaxy S22 5G",
    "Samsung Galaxy S24",
    "Samsung Galaxy S25",
    "Snapdragon X Elite CRD",
)


def load_graphs(workdir: Path, only: list[str] | None = None) -> dict:
    """Every zoo model's ``Graph``, or those named in ``only`` (exports cached in ``workdir``)."""
    graphs = {}
    zoo = zoo_models()
    unknown = sorted(set(only or ()) - set(zoo))
    if unknown:
        raise SystemExit(f"--models: unknown zoo ids {unknown}; choose from {sorted(zoo)}")
    for name, entry in zoo.items():
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        graphs[name] = graph_of(name, entry.family, entry.task, export(entry, workdir))
        log.info("graph %s: %.1fs", name, time.perf_counter() - t0)
    return graphs


def measurements(
    table: pd.DataFrame, graphs: dict, device: str, runtime: str, precision: str
) -> pd.DataFrame:
    """The single-component zoo models measured on ``device`` x ``runtime`` x ``precision``."""
    sel = table[
        (table["device"] == device)
        & (table["runtime"] == runtime)
        & (table["precision"] == precision)
        & table["model"].isin(list(graphs))
    ]
    return sel.drop_duplicates("model").reset_index(drop=True)


def evaluate(table: pd.DataFrame, graphs: dict, args: argparse.Namespace) -> tuple[list[dict], pd.DataFrame]:
    rows, oofs = [], []
    for device in args.devices:
        for runtime in args.runtimes:
            for precision in args.precisions:
                m = measurements(table, graphs, device, runtime, precision)
                if len({graphs[x].family for x in m["model"]}) < 3:
                    continue
                oof = out_of_fold([graphs[x] for x in m["model"]], m["measured_ms"].to_numpy())
                scored = score(oof, n_boot=args.n_boot, seed=args.seed)
                base = {"device": device, "runtime": runtime, "precision": precision, "n_models": len(m),
                        "n_families": int(oof["family"].nunique()),
                        "segmentation": int((oof["task"] == "segmentation").sum()),
                        "qairt": ",".join(sorted(set(m["qairt"].dropna().astype(str))))}  # fmt: skip
                for method, s in scored.items():
                    rows.append({**base, "method": method, **s})
                oofs.append(oof.assign(device=device, runtime=runtime, precision=precision))
    return rows, pd.concat(oofs, ignore_index=True) if oofs else pd.DataFrame()


def _ci(r: dict, key: str, pct: bool) -> str:
    lo, hi = r[f"{key}_ci"]
    f = (lambda v: f"{100 * v:.0f}") if pct else (lambda v: f"{v:.2f}")
    return f"{f(r[key])} [{f(lo)}, {f(hi)}]"


def print_table(rows: list[dict]) -> None:
    print(
        "| device | runtime | prec. | n (fam., seg.) | method | Spearman | Kendall | MdAPE % | ±10 % | ±20 % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['device']} | {r['runtime']} | {r['precision']} | {r['n_models']} ({r['n_families']}, "
            f"{r['segmentation']}) | {r['method']} | {_ci(r, 'spearman', False)} | {_ci(r, 'kendall', False)} | "
            f"{_ci(r, 'mdape', True)} | {_ci(r, 'within10', True)} | {_ci(r, 'within20', True)} |"
        )
    cal = [r for r in rows if r["method"] == "calibrated"]
    for r in cal:
        lo, hi = r["mdape_gain_ci"]
        print(f"- {r['device']} {r['runtime']} {r['precision']}: calibrated vs uncalibrated MdAPE gain "
              f"[{100 * lo:.0f}, {100 * hi:.0f}] points -> beats it beyond the interval: {r['beats_uncalibrated']}")  # fmt: skip
    if cal:
        print(f"- median over {len(cal)} groups: Spearman {np.median([r['spearman'] for r in cal]):.3f}, "
              f"within ±20 % {100 * np.median([r['within20'] for r in cal]):.0f} %")  # fmt: skip


def by_task(oof: pd.DataFrame) -> pd.DataFrame:
    """Held-out calibrated figures per task, pooled over every device (which kinds of graph fail)."""
    if oof.empty:
        return pd.DataFrame()
    rel = (oof["calibrated_ms"] / oof["measured_ms"] - 1.0).abs()
    t = oof.assign(rel=rel).groupby("task")
    out = pd.DataFrame({"models": t["model"].nunique(), "rows": t.size(), "mdape_pct": 100 * t["rel"].median(),
                        "within20_pct": 100 * t["rel"].apply(lambda r: (r <= 0.2).mean())})  # fmt: skip
    print("\nheld-out calibrated, pooled over devices, by task:")
    for task, r in out.iterrows():
        print(f"  {task}: {r['models']:.0f} models ({r['rows']:.0f} rows), MdAPE {r['mdape_pct']:.0f} %, "
              f"within ±20 % {r['within20_pct']:.0f} %")  # fmt: skip
    return out.round(1)


def sd888_check(oof: pd.DataFrame) -> dict:
    """Today's snapdragon888 estimate and the V68-calibrated one on the RB3 Gen 2 w8a8 qnn_dlc data."""
    v = oof[(oof["device"] == V68) & (oof["runtime"] == "qnn_dlc") & (oof["precision"] == "w8a8")]
    if v.empty:
        return {}
    meas = v["measured_ms"].to_numpy()
    out = {"n_models": len(v)}
    for m in ("uncalibrated", "calibrated"):
        pred = v[f"{m}_ms"].to_numpy()
        out[m] = {
            **_metrics(pred, meas),
            "scaled_within30": _metrics(scale_free(pred, meas), meas)["within30"],
        }
    print(f"\nsnapdragon888 on V68 (RB3 Gen 2, w8a8 qnn_dlc, {len(v)} models, families held out):")
    for m in ("uncalibrated", "calibrated"):
        s = out[m]
        print(f"  {m}: Spearman {s['spearman']:.3f}, Kendall {s['kendall']:.3f}, MdAPE {100 * s['mdape']:.0f} %, "
              f"within ±30 % {100 * s['within30']:.0f} % ({100 * s['scaled_within30']:.0f} % after scaling by the median)")  # fmt: skip
    return out


def option_yaml(name: str, device: str, chip: str, graphs: dict, table: pd.DataFrame, row: dict) -> str:
    """A ``conf/hardware`` option: the estimate with constants fitted on every model measured there."""
    m = measurements(table, graphs, device, "qnn_dlc", "w8a8")
    constants, _ = fit_device([graphs[x] for x in m["model"]], m["measured_ms"].to_numpy())
    fitted = constants_dict(constants)
    label = f"fitted on {device} w8a8 qnn_dlc ({len(m)} models, qai-hub-models {qai_hub_models_version()})"
    held = (f"Spearman {row['spearman']:.2f}, MdAPE {100 * row['mdape']:.0f} %, {100 * row['within20']:.0f} % "
            f"within ±20 % (families held out)")  # fmt: skip
    lines = [
        f"# {chip}, int8 (w8a8) on the NPU: the offline Hexagon roofline (hardware/estimate.py) with constants",
        "# fitted to Qualcomm's published latencies by `make bench-device ARGS=--write-options`.",
        "_target_: hwnas.hardware.estimate.EstimateProfiler",
        f"target: {name}   # names the target in logs, cache keys and reports",
        f'device: "{chip} (estimated)"   # the device every latency report names',
        "input_size: 256   # latency at the deployment resolution (see snapdragon888.yaml); null = the dataset's",
        "batch_size: 1   # batch size of the estimated input",
        "workdir: ${paths.cache_dir}/onnx   # where the ONNX exports the estimate reads are cached",
        "constants:   # the fitted HexagonConstants (the rest keep their documented values)",
        *[f"  {k}: {v}   # fitted (documented default {getattr(_DEFAULTS, k)})" for k, v in fitted.items()],
        "calibration:   # provenance: the data these constants were fitted on, copied into every report",
        f'  label: "{label}"   # what the latency axis and summary.json say',
        f'  device: "{device}"   # the AI Hub device measured',
        f"  chipset: {m['chipset'].iloc[0]}   # its chipset (devices_and_chipsets.yaml)",
        f"  npu_generation: {m['npu_generation'].iloc[0]}   # Hexagon HTP version",
        "  runtime: qnn_dlc   # the AI Hub runtime measured",
        "  precision: w8a8   # int8 weights and activations",
        f"  set: qai-hub-models=={qai_hub_models_version()} perf.yaml   # the data set (read from the wheel's files)",
        f'  qairt: "{row["qairt"]}"   # QAIRT versions of the measurements',
        f"  models: {len(m)}   # measured models fitted on",
        f'  held_out: "{held}"   # bench-device score with whole model families held out',
    ]
    return "\n".join(lines) + "\n"


def sync_snapdragon888(check: dict, path: Path = Path("conf/hardware/snapdragon888.yaml")) -> None:
    """Copy the freshly written V68 fit (``qcs6490.yaml``) into ``snapdragon888.yaml``'s estimate block,
    keeping its comments, and restate its held-out V68 figures (the SD888 has no published data)."""
    import re

    from omegaconf import OmegaConf

    fit = OmegaConf.load(path.parent / "qcs6490.yaml")
    text = path.read_text()
    for key, value in fit.constants.items():
        text, n = re.subn(rf"^(    {key}: )\S+", lambda m, v=value: f"{m.group(1)}{v}", text, flags=re.M)
        if n != 1:
            raise SystemExit(f"{path}: estimate.constants.{key} not found once; edit it by hand")
    cal, unc = check["calibrated"], check["uncalibrated"]
    held = (f"V68, {check['n_models']} models, families held out: Spearman {cal['spearman']:.2f}, MdAPE "
            f"{100 * cal['mdape']:.0f} %, {100 * cal['within30']:.0f} % within ±30 % (documented constants: "
            f"{unc['spearman']:.2f}, {100 * unc['mdape']:.0f} %, {100 * unc['within30']:.0f} %)")  # fmt: skip
    text = re.sub(
        r'^(    set: "[^"]*?), \d+ models"', rf'\g<1>, {fit.calibration.models} models"', text, flags=re.M
    )
    text = re.sub(r'^(    held_out: )"[^"]*"', lambda m: f'{m.group(1)}"{held}"', text, flags=re.M)
    path.write_text(text)
    print(f"wrote {path} (estimate constants and provenance from qcs6490.yaml)")


def _defaults():
    from hwnas.hardware.estimate import HexagonConstants

    return HexagonConstants()


_DEFAULTS = _defaults()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--devices", default=",".join(DEFAULT_DEVICES), help="comma list of AI Hub device names, or all"
    )
    p.add_argument("--runtimes", default="qnn_dlc", help="comma list: qnn_dlc, tflite, onnx")
    p.add_argument("--precisions", default="w8a8", help="comma list: w8a8, float, w8a16")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/bench_device")
    p.add_argument("--models", default="", help="comma list of zoo model ids to use (default: every one)")
    p.add_argument(
        "--write-options", action="store_true", help="rewrite conf/hardware/<chip>.yaml from the fits"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    table = perf_table()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    graphs = load_graphs(out / "onnx", [m for m in args.models.split(",") if m])
    if args.write_options and args.models:
        raise SystemExit("--write-options fits the shipped options on every model; drop --models")
    args.devices = sorted(set(table["device"])) if args.devices == "all" else args.devices.split(",")
    args.runtimes, args.precisions = args.runtimes.split(","), args.precisions.split(",")
    rows, oof = evaluate(table, graphs, args)
    print(f"qai-hub-models {qai_hub_models_version()}: {len(table)} published measurements, "
          f"{len(graphs)} zoo graphs, methods {', '.join(METHODS)}\n")  # fmt: skip
    print_table(rows)
    tasks = by_task(oof)
    check = sd888_check(oof)
    if args.write_options:
        by = {(r["device"], r["method"]): r for r in rows}
        for name, (device, chip) in OPTIONS.items():
            path = Path("conf/hardware") / f"{name}.yaml"
            path.write_text(option_yaml(name, device, chip, graphs, table, by[(device, "calibrated")]))
            print(f"wrote {path}")
        if check:
            sync_snapdragon888(check)
    pd.DataFrame(rows).to_csv(out / "bench_device.csv", index=False)
    oof.to_csv(out / "oof.csv", index=False)
    result = {
        "rows": rows,
        "by_task": tasks.to_dict(orient="index"),
        "snapdragon888_v68": check,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (out / "bench_device.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\n{time.perf_counter() - t0:.0f}s; files in {out}")
    return result


if __name__ == "__main__":
    main()

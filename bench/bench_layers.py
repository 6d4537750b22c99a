"""Per-layer calibration from AI Hub profiles: does fitting the roofline to each layer's device time
predict whole-model latency better than fitting it to whole-model latencies?

``make bench-layers ARGS="--profiles outputs/qai_hub_profiles"`` reads profiles kept by
``bench/collect_profiles.py`` (or by any ``hardware.qai_hub.profile_dir``) of the device zoo's graphs
(``hwnas.hardware.zoo``; a profile names its graph ``hwnas-<zoo id>``), pairs each device layer with the
roofline's rows (``hwnas.hardware.layer_fit``) and prints, with whole model families held out, the
whole-model fit (``device_fit``, as ``make bench-device``) against the per-layer fit, both scored on the
profiles' own inference times: Spearman, MdAPE, the share within ±10 / ±20 %, and how much of the device
time the pairing found.

``--synthetic`` makes the profiles instead, from a device that runs each layer as the roofline under
``conf/hardware/<--option>.yaml``'s constants with log-normal per-layer noise (and, with ``--op-factors``,
op types that cost more or less than the roofline says): a check of the pipeline on the zoo's real graphs
and names, **not** a device measurement. No network.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pandas as pd

from hwnas.hardware.device_fit import _metrics, graph_of, option_constants
from hwnas.hardware.device_fit import out_of_fold as whole_out_of_fold
from hwnas.hardware.layer_fit import match_profile, out_of_fold, synthetic_profile
from hwnas.hardware.profile_files import read_profiles
from hwnas.hardware.zoo import export, zoo_models

log = logging.getLogger("bench_layers")
PREFIX = "hwnas-"


def load_profiles(folder: Path) -> dict[str, dict]:
    """The newest profile of each zoo graph in ``folder`` (``hwnas-<zoo id>-<job>.json``)."""
    zoo, found = zoo_models(), {}
    for _, record in read_profiles(folder):
        model = str(record.get("name", "")).removeprefix(PREFIX)
        if model in zoo:
            found[model] = record
    if len(found) < 3:
        raise SystemExit(f"{folder}: {len(found)} profiles of zoo graphs; need at least 3 "
                         "(bench/collect_profiles.py makes them)")  # fmt: skip
    return found


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profiles", default="", help="folder of kept AI Hub profiles of zoo graphs")
    p.add_argument(
        "--synthetic", action="store_true", help="make profiles from a fitted option (pipeline check)"
    )
    p.add_argument("--option", default="snapdragon8gen3", help="--synthetic: the conf/hardware option")
    p.add_argument("--noise", type=float, default=0.3, help="--synthetic: per-layer log-normal spread")
    p.add_argument(
        "--op-factors",
        default="",
        help="--synthetic: the device's own op-type factors, e.g. Concat=2,Softmax=5",
    )
    p.add_argument("--models", default="", help="comma list of zoo ids (default: every one profiled)")
    p.add_argument("--out", default="outputs/bench_layers")
    args = p.parse_args(argv)
    if bool(args.profiles) == args.synthetic:
        raise SystemExit("give exactly one of --profiles <folder> or --synthetic")
    logging.basicConfig(level=logging.WARNING)
    t0, out, zoo = time.perf_counter(), Path(args.out), zoo_models()
    only = [m for m in args.models.split(",") if m] or list(zoo)
    matched, graphs, measured = [], [], []
    records = load_profiles(Path(args.profiles)) if args.profiles else {}
    factors = dict((k, float(v)) for k, v in (f.split("=") for f in args.op_factors.split(",") if f))
    truth = replace(option_constants(args.option), op_factors=factors) if args.synthetic else None
    for k, name in enumerate(m for m in only if args.synthetic or m in records):
        entry = zoo[name]
        path = export(entry, out / "onnx")
        proto = onnx.load(str(path))
        if args.synthetic:
            prof = synthetic_profile(proto, truth, noise=args.noise, seed=k)
        else:
            prof = records[name]["profile"]
        matched.append(match_profile(name, proto, prof))
        graphs.append(graph_of(name, entry.family, entry.task, path, terms=matched[-1].terms))
        measured.append(matched[-1].total_us / 1000.0)
    y = np.array(measured)
    families = [g.family for g in graphs]
    whole = whole_out_of_fold(graphs, y)["calibrated_ms"].to_numpy()
    layer = out_of_fold(matched, families)
    source = args.profiles
    if args.synthetic:
        source = f"SYNTHETIC from {args.option} (noise {args.noise}, op factors {factors or 'none'})"
    print(f"{len(y)} graphs, {len(set(families))} families; profiles: {source}")
    print(f"pairing: median {100 * np.median([m.matched_share for m in matched]):.0f} % of device layer "
          f"time on a roofline row; {sum(m.off_npu_us > 0 for m in matched)} graphs with layers off the NPU")  # fmt: skip
    rows = []
    for method, pred in (("whole-model fit", whole), ("per-layer fit", layer)):
        s = _metrics(pred, y)
        rows.append({"method": method, **s})
        print(f"  {method}: Spearman {s['spearman']:.3f}, MdAPE {100 * s['mdape']:.0f} %, "
              f"within ±10 % {100 * s['within10']:.0f} %, within ±20 % {100 * s['within20']:.0f} %")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"model": [g.model for g in graphs], "family": families, "measured_ms": y,
                  "whole_ms": whole, "layer_ms": layer}).to_csv(out / "oof_layers.csv", index=False)  # fmt: skip
    result = {
        "source": source,
        "n_models": len(y),
        "rows": rows,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    (out / "bench_layers.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['wall_s']:.0f}s; files in {out}")
    return result


if __name__ == "__main__":
    main()

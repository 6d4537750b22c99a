"""Profile the device zoo's graphs on a real phone through Qualcomm AI Hub and keep every profile with
its per-layer times (the data ``make bench-layers`` and ``hwnas.hardware.layer_fit`` fit on).

``make collect-profiles ARGS='--device "Samsung Galaxy S24" --runtime qnn_dlc'``

Opt-in and remote: it needs the ``qai-hub`` client (``pip install -e '.[qualcomm]'``) and an API token
(``qai-hub configure --api_token <TOKEN>`` or ``$QAI_HUB_API_TOKEN``), and says so before sending
anything. Each graph is quantised to int8 (w8a8) with random calibration inputs — latency does not
depend on the weights' values, nor on the calibration's — compiled and profiled with the pinned QAIRT.
Graphs already profiled in ``--out`` for this device are skipped, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from hwnas.hardware.profile_files import read_profiles
from hwnas.hardware.qai_hub import QAIRT_VERSION, QaiHubProfiler
from hwnas.hardware.zoo import build, export, zoo_models
from hwnas.utils.errors import CandidateFailed, HwnasError

log = logging.getLogger("collect_profiles")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="Samsung Galaxy S24", help="AI Hub device name")
    p.add_argument("--runtime", default="qnn_dlc", help="AI Hub target runtime")
    p.add_argument("--qairt", default=QAIRT_VERSION, help="QAIRT version compile and profile jobs pin")
    p.add_argument("--models", default="", help="comma list of zoo ids (default: every one)")
    p.add_argument("--out", default="outputs/qai_hub_profiles")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    prof = QaiHubProfiler(
        target="zoo", device=args.device, target_runtime=args.runtime, qairt_version=args.qairt,
        profile_dir=out, workdir=out / "onnx",
    )  # fmt: skip
    try:
        prof.check()
    except HwnasError as exc:
        print(f"collect-profiles needs Qualcomm AI Hub: {exc}")
        return 2
    done = {r.get("name") for _, r in read_profiles(out) if r.get("device") == args.device}
    zoo = zoo_models()
    names = [m for m in args.models.split(",") if m] or list(zoo)
    failed = []
    for name in names:
        if f"hwnas-{name}" in done:
            continue
        entry = zoo[name]
        calib = [np.random.default_rng(0).standard_normal(entry.input_shape).astype(np.float32)]
        try:
            r = prof.profile(build(entry), entry.input_shape, onnx_path=export(entry, out / "onnx"),
                             calibration=calib, arch_key=name)  # fmt: skip
            log.info("%s: %.3f ms (%s)", name, r.median_ms, r.extra.get("profile_json"))
        except (HwnasError, CandidateFailed) as exc:
            failed.append(name)
            log.warning("%s failed: %s", name, exc)
    print(
        f"{len(names) - len(failed)} of {len(names)} graphs profiled on {args.device}; failed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

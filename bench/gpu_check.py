"""The GPU check's rows (run by ``bench/gpu_check.sh``, which refuses without CUDA and installs what is missing).

Prints one markdown table, row by row; a row that fails prints its error and the next one runs. Figures
only, no pass/fail thresholds (timings depend on the machine). Rows needing two GPUs print
"skipped: 1 GPU" on a one-GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
#: ``--cpu-dry-run`` (a test of this script where there is no GPU): the same rows on the CPU, smaller.
DRY = {"on": False}
TINY = [
    "dataset.dataset.num_train=256", "dataset.dataset.num_val=64", "dataset.batch_size=32",
    "evaluator.max_epochs=1", "evaluator.limit_train_batches=8", "evaluator.limit_val_batches=2",
    "hardware.repeats=3", "hardware.warmup=1", "hardware.loop_gap_s=0", "search_space.base_channels=[8,12]",
    "search_space.max_channels=32", "search_space.layers=[1,2]", "final.enabled=false", "logger=[]",
    "search.sampler.population_size=4",
]  # fmt: skip


def accelerator() -> str:
    return "cpu" if DRY["on"] else "gpu"


def to_device(x: torch.Tensor) -> torch.Tensor:
    return x if DRY["on"] else x.cuda(non_blocking=True)


def precision() -> str:
    if DRY["on"]:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def row(name: str, fn: Callable[[], str]) -> None:
    t0 = time.perf_counter()
    try:
        text = fn()
    except Exception as exc:  # noqa: BLE001 - one row's failure is that row's result
        text = f"FAILED: {type(exc).__name__}: {str(exc)[:300]}"
    print(f"| {name} | {text} | {time.perf_counter() - t0:.1f} |", flush=True)


def device_row() -> str:
    n = torch.cuda.device_count()
    p = torch.cuda.get_device_properties(0)
    return (
        f"{n} x {p.name} ({p.total_memory / 2**30:.0f} GiB), torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{precision()}"
    )


def search(out: Path, *extra: str, n: int = 4) -> tuple[str, object]:
    import pandas as pd

    cmd = [sys.executable, "src/search.py", *TINY, f"search.n_trials={n}", f"tricks.precision={precision()}",
           f"trainer.accelerator={accelerator()}",
           f"paths.root_dir={ROOT}", f"paths.cache_dir={out}/cache", f"hydra.run.dir={out}/run", *extra]  # fmt: skip
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-400:])
    return res.stderr, pd.read_csv(out / "run" / "trials.csv")


def search_row(tmp: Path) -> str:
    _, trials = search(tmp / "search")
    ok = trials[trials["state"] == "COMPLETE"]
    peak = trials.get("peak_mem_mb")
    peaks = (
        ""
        if peak is None
        else f", peak_mem_mb per trial {sorted(peak.dropna().round().astype(int).tolist())}"
    )
    return f"{len(ok)}/{len(trials)} trials ok on {sorted(set(trials['device'].dropna()))}{peaks}"


def _supernet_fit(tmp: Path, *, epochs: int, batches: int, resume: object = None, callbacks=None) -> dict:  # noqa: ANN001
    from omegaconf import OmegaConf

    from hwnas.lit.supernet import fit_supernet
    from hwnas.search_space.hourglass import HourglassSpace

    torch.manual_seed(0)
    small = {"num_levels": 3, "base_channels": [8, 16], "layers": [1, 2], "max_channels": 32}
    net = (HourglassSpace(**small) if DRY["on"] else HourglassSpace()).supernet(num_classes=11)
    side = 32 if DRY["on"] else 128
    x = torch.randn(batches * 32, 3, side, side)
    y = torch.randint(0, 11, (batches * 32, side, side))

    class Data:
        def train_dataloader(self):  # noqa: ANN202
            ds = torch.utils.data.TensorDataset(x, y)
            return torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, pin_memory=not DRY["on"])

    tricks = OmegaConf.create({"precision": precision(), "memory_format": "channels_last"})
    trainer = OmegaConf.create(
        {"_target_": "pytorch_lightning.Trainer", "accelerator": accelerator(), "devices": 1}
    )
    return fit_supernet(
        net, datamodule=Data(), tricks=tricks, trainer_cfg=trainer, optim={"lr": 0.004, "weight_decay": 1e-4},
        run_dir=str(tmp / "lightning"), max_epochs=epochs, seed=0, resume=resume, callbacks=callbacks,
    )  # fmt: skip


def supernet_row(tmp: Path) -> str:
    from hwnas.lit.checkpoints import Resume

    n = 3 if DRY["on"] else 20
    _supernet_fit(tmp, epochs=1, batches=2)  # warm-up: CUDA context, cuDNN autotuning
    plain = _supernet_fit(tmp, epochs=3, batches=n)
    resume = Resume(tmp / "ckpt", "gpu-check")
    saved = _supernet_fit(tmp, epochs=3, batches=n, resume=resume)
    size = (resume.folder / "epoch=002.ckpt").stat().st_size / 2**20
    per = (saved["train_seconds"] - plain["train_seconds"]) / 3
    side = 32 if DRY["on"] else 128
    return (
        f"{3 * n / plain['train_seconds']:.2f} steps/s (4 sub-networks per step, {side}x{side}, batch 32, "
        f"{precision()}); a checkpoint ({size:.0f} MB) costs {per:.2f} s ({per / plain['train_seconds'] * 3:.1%} "
        "of an epoch here)"
    )


def resume_row(tmp: Path) -> str:
    import pytorch_lightning as pl

    from hwnas.lit.checkpoints import Resume

    class Stop(Exception):
        pass

    class StopAt(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            if trainer.current_epoch == 2 and batch_idx == 1:
                raise Stop

    folder = tmp / "resume"
    with contextlib.suppress(Stop):
        _supernet_fit(tmp, epochs=3, batches=6, resume=Resume(folder, "r"), callbacks=[StopAt()])
    left = sorted(p.name for p in folder.glob("*.ckpt"))
    out = _supernet_fit(tmp, epochs=3, batches=6, resume=Resume(folder, "r"))
    return f"stopped in epoch 3 with {left}; resumed and finished {int(out['epochs'])} epochs"


def data_row() -> str:
    from functools import partial

    from hwnas.data.datamodule import SegmentationDataModule
    from hwnas.data.synthetic_faces import SyntheticFaces

    out = []
    side, seconds = (64, 2) if DRY["on"] else (256, 15)
    for workers in (0, 4):
        factory = partial(SyntheticFaces, image_size=side, num_train=512, num_val=8, seed=0)
        dm = SegmentationDataModule(dataset=factory, image_size=side, batch_size=32, num_workers=workers)
        dm.setup("fit")
        n, t0 = 0, time.perf_counter()
        for x, _ in dm.train_dataloader():
            n += len(to_device(x))
            if time.perf_counter() - t0 > seconds:
                break
        if not DRY["on"]:
            torch.cuda.synchronize()
        out.append(f"{n / (time.perf_counter() - t0):.0f} images/s with {workers} loader workers")
    return f"{side}x{side} synthetic faces to the {accelerator().upper()}: " + ", ".join(out)


def oom_row() -> str:
    from hwnas.utils.devices import free_memory, is_oom

    keep = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")  # noqa: F841 - a live training's share
    try:
        torch.empty(10**14, dtype=torch.uint8, device="cuda")
    except Exception as exc:  # noqa: BLE001
        caught = is_oom(exc)
    held = torch.cuda.memory_reserved() / 2**20
    free_memory()
    return f"OOM recognised: {caught}; reserved {held:.0f} MB before free_memory(), {torch.cuda.memory_reserved() / 2**20:.0f} MB after"


def workers_row(tmp: Path) -> str:
    if torch.cuda.device_count() < 2 and not DRY["on"]:
        return "skipped: 1 GPU"
    gpus = ["search.devices=[0,1]"] if DRY["on"] else []  # the dry run: the assignment of two made-up GPUs
    _, trials = search(tmp / "workers", "search.n_workers=2", *gpus, n=6)
    ok = trials[(trials["state"] == "COMPLETE") & ~trials["duplicate"]]
    per = {str(w): sorted(map(str, d.unique())) for w, d in ok.groupby("worker")["device"]}
    return f"devices per worker: {per}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="the rows on the CPU (tests this script)")
    DRY["on"] = parser.parse_args().cpu_dry_run
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    os.environ.setdefault("WANDB_MODE", "disabled")
    print("| row | result | seconds |\n|---|---|---|", flush=True)
    if not DRY["on"]:
        row("device", device_row)
    row(
        f"tiny search, {precision()} on the {accelerator().upper()} (evaluator=train, 4 trials)",
        lambda: search_row(tmp),
    )
    row("supernet training", lambda: supernet_row(tmp))
    row("supernet checkpoint resume", lambda: resume_row(tmp))
    row("data rate", data_row)
    if not DRY["on"]:
        row("out-of-memory error, then memory freed", oom_row)
    row("search.n_workers=2: one GPU each", lambda: workers_row(tmp))
    row("final stage DDP over 2 GPUs", lambda: "skipped: 1 GPU" if torch.cuda.device_count() < 2 else
        "run: make final RUN=<run> ARGS=final.ddp=2 (not timed here)")  # fmt: skip


if __name__ == "__main__":
    main()

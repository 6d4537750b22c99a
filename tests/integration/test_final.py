"""The final stage end to end: real full training, ONNX fp32 + int8, test-split scores, target latency,
outputs, resume after a crash (``kill -9``), and its bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from PIL import Image

from hwnas.pareto import pareto_mask
from hwnas.tasks import final, search
from tests.conftest import ROOT, TINY_FINAL, TINY_SEARCH, compose_cfg

SEARCH = [*TINY_SEARCH, "search.n_trials=4", "search.sampler.population_size=2", *TINY_FINAL]


def _mtimes(run_dir: Path) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (run_dir / "final" / "models").glob("*/weights.pt")}


@pytest.mark.integration
def test_search_ends_with_a_trained_int8_checked_gallery(make_cfg, tmp_path: Path, caplog) -> None:
    cfg = make_cfg("search", SEARCH)
    with caplog.at_level("INFO", logger="hwnas.final"):
        summary = search.run(cfg)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("final [")]
    run_dir = Path(cfg.run_dir)
    df = pd.read_csv(run_dir / "final" / "final.csv")
    # Up to top_k front models plus the baseline; every one finished.
    assert 2 <= len(df) <= 3 and df["error"].isna().all()
    assert len(progress) == len(df) and all("test mIoU fp32" in line for line in progress)  # a line per model
    assert (df["role"].str.contains("baseline")).sum() == 1
    trials = pd.read_csv(run_dir / "trials.csv")
    searched = trials[(trials["state"] == "COMPLETE") & ~trials["duplicate"] & trials["seeded"].isna()]
    on_front = pareto_mask(searched[["val/miou", "hw/latency_ms"]].to_numpy(float), ["maximize", "minimize"])
    # the searched front alone (the seeded baseline, on `front` here, is never a searched pick)
    assert set(df.loc[df["role"] != "baseline", "arch_key"]) <= set(searched.loc[on_front, "arch_key"])
    assert (trials["seeded"] == "baseline").sum() == 1  # TINY_FINAL puts the baseline inside the ranges
    assert df["pick_reason"].notna().all()
    for col in ("proxy_miou", "full_miou_fp32", "int8_miou", "f1", "int8_drop", "latency_ms", "latency_source",
                "params", "train_seconds"):  # fmt: skip
        assert col in df.columns
    assert (
        df["f1_source"] == "host-int8"
    ).all()  # no AI Hub token here: labelled, not passed off as the phone
    assert df["latency_source"].str.startswith("measured").all()
    assert (df["n_test"] == 24).all()
    # ONNX fp32 scores like torch; int8 is a real, different model that still runs.
    assert np.allclose(df["onnx_miou_fp32"], df["full_miou_fp32"], atol=0.02)
    assert np.allclose(df["int8_drop"], 100 * (df["full_miou_fp32"] - df["int8_miou"]))
    for rel in df["file_onnx_int8"]:
        assert not Path(rel).is_absolute()  # the run dir can be moved or shared
        path = str(run_dir / rel)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        assert any("QuantizeLinear" in n.op_type for n in __import__("onnx").load(path).graph.node)
        assert sess.run(None, {"input": np.zeros((1, 3, 64, 64), np.float32)})[0].shape == (1, 19, 64, 64)
    # final_front.csv is exactly the non-dominated set on (F1 on the target, target latency).
    ff = pd.read_csv(run_dir / "final" / "final_front.csv")
    mask = pareto_mask(df[["f1", "latency_ms"]].to_numpy(float), ["maximize", "minimize"])
    assert (
        set(ff["arch_key"]) == set(df.loc[mask, "arch_key"]) == set(df.loc[df["on_final_front"], "arch_key"])
    )
    for png in ("full_training.png", "final_results.png"):
        assert Image.open(run_dir / "final" / png).size[0] > 300
    report = (run_dir / "report.md").read_text()
    assert "### Pick a model" in report and report.count("final stage: begin") == 1
    assert "### Against the baseline" in report and "training seed(s)" in report
    base = summary["final"]["baseline"]
    assert base["n"] == 2 and len(base["values"]) == 2  # TINY_FINAL: final.baseline_seeds=2
    assert any(p.name.endswith("-seed1") for p in (run_dir / "final" / "models").iterdir())
    for link in ("model_64x64.int8.onnx", "weights.pt", "arch.json"):
        assert link in report
    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved["final"]["n_models"] == len(df) == summary["final"]["n_models"]

    # Re-running the stage alone (src/final.py's task) trains nothing again and keeps one report section;
    # its results go to the logger chosen on its command line (the search's csv logger has no event files).
    before = _mtimes(run_dir)
    alone = [f"run={run_dir}", "logger=tensorboard", *[o for o in TINY_FINAL if o.startswith("final.")]]
    again = final.run(compose_cfg("final", alone, run_dir))
    assert _mtimes(run_dir) == before and again["n_models"] == len(df)
    assert (run_dir / "report.md").read_text().count("final stage: begin") == 1
    [events] = (run_dir / "tensorboard").glob("version_*/events.out.tfevents.*")
    tags = {"f1_vs_latency", "full_miou_fp32_vs_latency", "models/text_summary"}
    assert all(f"final/{tag}".encode() in events.read_bytes() for tag in tags)


@pytest.mark.integration
def test_an_interrupted_training_resumes_from_its_last_epoch(make_cfg, tmp_path: Path, monkeypatch) -> None:
    from hwnas.callbacks import progress as progress_mod
    from hwnas.final.gallery import train_full
    from hwnas.tasks.final import build_context

    cfg = make_cfg("search", [*SEARCH, "final.trainer.max_epochs=3"])
    ctx = build_context(cfg)
    spec = ctx.space.baseline()
    out = tmp_path / "m"
    epochs_run: list[int] = []

    def crash_in_the_second_epoch(self, trainer, module):  # epoch 0 is done and checkpointed by then
        epochs_run.append(trainer.current_epoch)
        if len(epochs_run) == 2 and trainer.current_epoch == 1:
            raise RuntimeError("simulated crash in epoch 1")

    monkeypatch.setattr(
        progress_mod._EpochTick, "on_train_epoch_start", crash_in_the_second_epoch, raising=False
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_full(ctx, spec, out, progress_mod.StageProgress(3))
    assert (out / "resume" / "last.ckpt").is_file() and not (out / "weights.pt").exists()
    model, info = train_full(ctx, spec, out, progress_mod.StageProgress(3))
    assert epochs_run == [0, 1, 1, 2] and info["resumed"] is True  # epoch 0 not run again after the crash
    assert (out / "weights.pt").is_file() and not (out / "resume").exists()


def _children(pid: int) -> set[int]:
    """Live child processes of ``pid`` (from each process's parent id in ``/proc/<pid>/stat``)."""
    kids: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.parametrize(
    ("jobs", "marker"),
    [  # sequential: after a finished model (slow tier: ~1 min); parallel: mid-training
        pytest.param(1, "result.json", marks=pytest.mark.slow),
        (2, "train.json"),
    ],
    ids=["sequential", "parallel"],
)
def test_kill_9_during_the_final_stage_then_rerun_completes_without_retraining(
    make_cfg, tmp_path: Path, jobs: int, marker: str
) -> None:
    cfg = make_cfg("search", [*SEARCH, "final.enabled=false"])
    search.run(cfg)
    run_dir = Path(cfg.run_dir)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    overrides = [o for o in TINY_FINAL if o.startswith("final.")] + [
        "final.trainer.max_epochs=3",
        f"final.jobs={jobs}",
    ]
    cmd = [
        sys.executable,
        "src/final.py",
        f"run={run_dir}",
        *overrides,
        "hydra.run.dir=" + str(tmp_path / "f"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    models = run_dir / "final" / "models"
    deadline = time.time() + 240
    workers: set[int] = set()
    try:
        while time.time() < deadline and not list(models.glob(f"*/{marker}")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            workers |= _children(proc.pid)
            time.sleep(0.05)
        workers |= _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # one model finished, the next one in flight
    finally:
        proc.wait(timeout=30)
    if jobs > 1:  # the training workers die with the stage: no orphan keeps writing into the run dir
        assert len(workers) >= 2
        end = time.time() + 10
        while time.time() < end and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers)
    trained = {p.parent.name: p.stat().st_mtime_ns for p in models.glob("*/train.json")}
    finished = {p.parent.name: p.stat().st_mtime_ns for p in models.glob("*/result.json")}
    weights = _mtimes(run_dir)
    assert trained and not (run_dir / "final" / "final.csv").exists()
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name, mtime in finished.items():  # finished models were neither retrained nor re-measured
        assert (models / name / "result.json").stat().st_mtime_ns == mtime
    for name in trained:  # trained models were not trained again
        assert (models / name / "weights.pt").stat().st_mtime_ns == weights[name]
    df = pd.read_csv(run_dir / "final" / "final.csv")
    assert len(df) == 3 and df["error"].isna().all() and df["full_miou_fp32"].notna().all()
    assert (run_dir / "final" / "final_results.png").is_file() and "Pick a model" in (
        run_dir / "report.md"
    ).read_text()


@pytest.mark.integration
def test_bad_final_settings_are_refused_before_any_training(make_cfg, tmp_path: Path) -> None:
    from hwnas.tasks.final import build_context
    from hwnas.utils.errors import ConfigError

    for override, key in (
        ("final.top_k=0", "final.top_k"),
        ("final.init=bogus", "final.init"),
        ("final.int8.calibration_method=magic", "final.int8.calibration_method"),
        ("dataset.dataset.num_test=0", "dataset.dataset.num_test"),
        ("final.device.enabled=true", "final.device.enabled"),
        ("final.jobs=0", "final.jobs"),
        ("final.int8.reduce_range=maybe", "final.int8.reduce_range"),
    ):
        with pytest.raises(ConfigError) as err:
            build_context(make_cfg("search", [*SEARCH, override]))
        assert err.value.key == key and (err.value.fix or err.value.choices), override
    r = subprocess.run(
        [sys.executable, "src/final.py", f"run={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'f'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "[run]" in r.stderr and "Fix:" in r.stderr


@pytest.mark.integration
def test_device_outputs_are_scored_on_the_host_and_labelled_with_the_device(make_cfg, tmp_path: Path) -> None:
    """The phone's outputs (here: the same int8 file run by onnxruntime, returned channels-last the way
    TFLite returns them) are scored like host int8 and labelled with the device, not host-int8."""
    from hwnas.final.gallery import build_model, evaluate
    from hwnas.final.predict import onnx_session, run_onnx
    from hwnas.tasks.final import build_context

    ctx = build_context(make_cfg("search", SEARCH))
    sent: list[int] = []

    def fake_device(onnx: Path, images: list[np.ndarray]) -> tuple[list[np.ndarray], dict]:
        sess = onnx_session(onnx)
        sent.append(len(images))
        return [np.moveaxis(run_onnx(sess, x), 1, -1) for x in images], {"inference_jobs": ["j1"]}

    ctx.device, ctx.device_name = fake_device, "Samsung Galaxy S21"
    out = evaluate(ctx, build_model(ctx, ctx.space.baseline()), tmp_path / "m")
    assert sent == [24] and out["f1_source"] == "device (Samsung Galaxy S21)"
    assert out["f1"] == pytest.approx(out["int8/f1"]) and out["device/miou"] == pytest.approx(
        out["int8/miou"]
    )


@pytest.mark.integration
def test_one_model_trains_with_ddp_over_two_cpu_processes(make_cfg, tmp_path: Path) -> None:
    """final.ddp.processes=2: two gloo ranks split every batch, average every gradient, and rank 0 leaves
    the same files as a one-process training (so evaluation, timing and resume are unchanged)."""
    from hwnas.callbacks.progress import StageProgress
    from hwnas.final.ddp import train_ddp
    from hwnas.final.gallery import is_trained
    from hwnas.tasks.final import build_context

    cfg = make_cfg("search", [*SEARCH, "final.ddp.processes=2", "final.trainer.max_epochs=1"])
    ctx = build_context(cfg)
    spec, out = ctx.space.baseline(), tmp_path / "ddp"
    errors = train_ddp(cfg, [(spec, out, "scratch")], processes=2, threads=1, progress=StageProgress(1))
    assert errors == {}
    info = json.loads((out / "train.json").read_text())
    ddp = info["ddp"]
    assert ddp["processes"] == 2 and ddp["backend"] == "gloo"
    # 64 images, global batch 16 = 8 per rank: 4 steps, as one process with batch 16 (not 2 or 8).
    assert ddp["steps"] == 64 // 16
    assert len(ddp["rank_weights"]) == 2 and len(set(ddp["rank_weights"])) == 1  # gradients were averaged
    assert is_trained(ctx, spec, out)  # the stage's own process reuses the weights rank 0 wrote
    assert not (out / "resume").exists() and not (out / "lightning").exists()


def test_a_batch_that_does_not_split_over_the_ddp_processes_is_refused(make_cfg) -> None:
    from hwnas.tasks.final import preflight
    from hwnas.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="final.ddp.processes") as err:
        preflight(make_cfg("search", [*SEARCH, "final.ddp.processes=3"]))
    assert "divisor of 16" in str(err.value)

"""``evaluator=supernet`` end to end: the supernet is trained once (never again on a re-run or a resume),
every candidate is scored with inherited weights, and the final stage fine-tunes from them and/or trains
from scratch, side by side."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from hwnas.evaluators.supernet import load_run_supernet
from hwnas.final.gallery import build_model, training_context
from hwnas.tasks import search
from tests.conftest import TINY_FINAL, TINY_SEARCH, compose_cfg

SUPERNET = [
    *TINY_SEARCH,
    "evaluator=supernet",
    "evaluator.limit_train_batches=2",
    "evaluator.calibration_batches=1",
    "evaluator.calibration_batch_size=8",
    "search.n_trials=10",
    "search.sampler.population_size=4",
]


def _cfg(tmp_path: Path, run: str, extra: list[str] | None = None):
    return compose_cfg(
        "search", [*SUPERNET, f"paths.cache_dir={tmp_path}/cache", *(extra or [])], tmp_path / run
    )


def _messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.integration
def test_supernet_search_trains_once_and_scores_every_candidate(tmp_path: Path, caplog) -> None:
    with caplog.at_level("INFO", logger="hwnas.search"):
        summary = search.run(_cfg(tmp_path, "a"))
    assert re.search(r"supernet \w+: training 1 epoch", _messages(caplog))
    run_a = tmp_path / "a"
    trials = pd.read_csv(run_a / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert done["arch_key"].nunique() == 10 == summary["unique_evaluated"]
    assert done["val/miou"].between(0, 1).all() and done["val/miou"].nunique() > 1
    assert (done["score_seconds"] > 0).all() and done["hw/latency_ms"].gt(0).all()
    assert (run_a / "supernet" / "supernet.pt").is_file()
    cached = list((tmp_path / "cache" / "supernet").glob("*/supernet.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    # The front's weights are the inherited ones (exportable like any trained candidate's).
    front = pd.read_csv(run_a / "pareto.csv")
    assert len(list((run_a / "weights").glob("*.pt"))) == len(front)  # the rest pruned
    assert list((run_a / "pareto").glob("*.onnx"))

    # A new run with the same settings loads the cached supernet; a resume loads the run's own copy.
    caplog.clear()
    with caplog.at_level("INFO", logger="hwnas.search"):
        search.run(_cfg(tmp_path, "b"))
        search.run(_cfg(tmp_path, "c", [f"search.resume={run_a}", "search.n_trials=12"]))
    text = _messages(caplog)
    assert not re.search(r"supernet \w+: training", text)
    assert text.count("loaded from") == 2 and f"loaded from {run_a / 'supernet'}" in text
    assert cached[0].stat().st_mtime_ns == stamp
    resumed = pd.read_csv(run_a / "trials.csv")
    assert resumed.loc[resumed["state"] == "COMPLETE", "arch_key"].nunique() == 12

    # Another supernet setting is another supernet: trained, cached beside the first.
    search.run(_cfg(tmp_path, "d", ["evaluator.n_random=1", "search.n_trials=2"]))
    assert len(list((tmp_path / "cache" / "supernet").glob("*/supernet.pt"))) == 2


@pytest.mark.integration
def test_final_stage_fine_tunes_inherited_weights_beside_scratch(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "run", [*TINY_FINAL, "final.top_k=1", "final.baseline=false", "final.init=both"])
    search.run(cfg)
    run_dir = tmp_path / "run"
    df = pd.read_csv(run_dir / "final" / "final.csv")
    assert df["error"].isna().all()
    assert sorted(df["init"]) == ["inherit", "scratch"] and df["arch_key"].nunique() == 1
    dirs = sorted(p.name for p in (run_dir / "final" / "models").iterdir())
    assert len(dirs) == 2 and any(d.endswith("-inherit") for d in dirs), dirs
    assert df["int8_miou"].notna().all() and df["latency_ms"].gt(0).all()
    report = (run_dir / "report.md").read_text()
    assert "Final stage" in report

    # The inherit start point is exactly the search's supernet slice (not a fresh initialisation).
    with open_dict(cfg):
        cfg.run_dir = str(run_dir)
    ctx = training_context(cfg)
    spec = ctx.space.load(run_dir / "final" / "models" / dirs[0] / "arch.json")
    assert spec.key == df["arch_key"].iloc[0]
    inherited = build_model(ctx, spec, "inherit").state_dict()
    net, _ = load_run_supernet(run_dir, ctx.space)
    expected = net.extract(ctx.space.model_config(spec)).state_dict()
    assert all(torch.equal(inherited[k], expected[k]) for k in expected)
    scratch = build_model(ctx, spec, "scratch").state_dict()
    assert not all(torch.equal(scratch[k], expected[k]) for k in expected if k.endswith("weight"))

"""Train the proxy small (32x32), the final models at the dataset's size, measure latency at the deployment
resolution (256x256 for the Snapdragon 888), and record the sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from hwnas.evaluators.train import TrainingEvaluator
from hwnas.hardware.build import build_profiler, input_shape_for
from hwnas.tasks import search
from hwnas.utils.config import build, build_datamodule, build_space
from hwnas.utils.errors import ConfigError
from tests.conftest import TINY_SEARCH

# TINY_SEARCH (no final stage) without the onnxruntime-only timing knobs the Snapdragon config lacks.
TINY_SD888 = [
    *(o for o in TINY_SEARCH if not o.startswith("hardware.")),
    "hardware=snapdragon888",
    "hardware.backend=estimate",
]


def _evaluator(cfg) -> TrainingEvaluator:
    evaluator = build(cfg.evaluator, "evaluator")
    evaluator.setup(cfg=cfg, space=build_space(cfg), run_dir=Path(cfg.run_dir))
    return evaluator


@pytest.mark.integration
def test_snapdragon888_trains_the_proxy_at_32_and_profiles_at_256(make_cfg, monkeypatch) -> None:
    import hwnas.evaluators.train as te

    seen: set[tuple[int, ...]] = set()
    original = te.fit_candidate

    def spy(model, *args, **kwargs):
        model.register_forward_pre_hook(lambda _m, inputs: seen.add(tuple(inputs[0].shape[-2:])))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(te, "fit_candidate", spy)
    overrides = [
        *TINY_SD888,
        "search.n_trials=3",
        "search.sampler.population_size=2",
        "evaluator.image_size=32",
    ]
    cfg = make_cfg("search", overrides)
    assert cfg.hardware.input_size == 256 and cfg.dataset.image_size == 64  # the shipped defaults
    summary = search.run(cfg)

    assert seen == {(32, 32)}  # every proxy training/validation batch at the proxy's size
    trials = pd.read_csv(f"{cfg.run_dir}/trials.csv")
    done = trials[(trials["state"] == "COMPLETE") & ~trials["duplicate"]]
    assert len(done) == 3
    assert set(done["train_image_size"]) == {"32x32"}
    assert set(done["hw/input_shape"]) == {"1x3x256x256"}
    assert set(done["hw/source"]) <= {"estimated"}
    saved = json.loads(Path(f"{cfg.run_dir}/summary.json").read_text())
    for s in (summary, saved):
        assert s["train_image_size"] == [32, 32]
        assert s["latency_input_shape"] == [1, 3, 256, 256]
    # The front is exported at the shape its latency refers to.
    key = pd.read_csv(f"{cfg.run_dir}/pareto.csv")["arch_key"].iloc[0]
    dims = onnx.load(f"{cfg.run_dir}/pareto/{key}.onnx").graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 256, 256]


@pytest.mark.integration
@pytest.mark.parametrize("key", ["hardware.input_size", "evaluator.image_size"])
def test_a_size_the_space_rejects_is_refused_before_any_trial(make_cfg, monkeypatch, key: str) -> None:
    calls = []
    monkeypatch.setattr(TrainingEvaluator, "cheap", lambda self, spec: calls.append(spec) or {})
    cfg = make_cfg("search", [*TINY_SD888, "search.n_trials=2", f"{key}=50"])
    with pytest.raises(ConfigError) as info:
        search.run(cfg)
    assert info.value.key == key
    assert "50x50" in info.value.message and "multiple of 32" in str(info.value)
    assert calls == [] and not Path(cfg.run_dir, "trials.csv").exists()


@pytest.mark.integration
def test_a_64x64_latency_is_never_reused_for_256x256(make_cfg) -> None:
    # One cache folder (the run's) for all three evaluators: only the input size differs.
    small = _evaluator(make_cfg("search", [*TINY_SD888, "hardware.input_size=null"]))
    spec = small.space.sample(np.random.default_rng(1))
    at64 = small.cheap(spec)
    assert at64["hw/input_shape"] == "1x3x64x64" and at64["hw/cache_hit"] is False
    assert small.sizes() == {"train_image_size": [64, 64], "latency_input_shape": [1, 3, 64, 64]}

    first = _evaluator(make_cfg("search", TINY_SD888)).cheap(spec)
    again = _evaluator(make_cfg("search", TINY_SD888)).cheap(spec)
    assert first["hw/cache_hit"] is False and first["hw/source"] == "estimated"
    assert first["hw/input_shape"] == "1x3x256x256" and first["train_image_size"] == "64x64"
    assert first["hw/latency_ms"] > at64["hw/latency_ms"]  # 16x the pixels: not the 64x64 number
    assert first["macs"] > 10 * at64["macs"]
    assert again["hw/cache_hit"] is True and again["hw/latency_ms"] == first["hw/latency_ms"]


@pytest.mark.integration
@pytest.mark.parametrize("hardware", ["cpu", "cpu_int8"])
def test_onnxruntime_targets_profile_at_an_explicit_input_size(make_cfg, hardware) -> None:
    cfg = make_cfg("search", [*TINY_SEARCH, f"hardware={hardware}", "hardware.input_size=256"])
    evaluator = _evaluator(cfg)
    metrics = evaluator.cheap(evaluator.space.sample(np.random.default_rng(0)))
    assert metrics["hw/input_shape"] == "1x3x256x256" and metrics["train_image_size"] == "64x64"
    assert metrics["hw/latency_ms"] > 0 and metrics["hw/precision"] == evaluator.profiler.precision


@pytest.mark.parametrize("hardware", ["cpu", "cpu_int8", "table"])
def test_other_targets_default_to_the_data_size_and_accept_256(make_cfg, hardware) -> None:
    for size, expected in ((None, (1, 3, 64, 64)), (256, (1, 3, 256, 256))):
        overrides = [f"hardware={hardware}"] + ([f"hardware.input_size={size}"] if size else [])
        cfg = make_cfg("search", overrides)
        profiler = build_profiler(cfg.hardware)
        assert input_shape_for(profiler, build_datamodule(cfg)) == expected

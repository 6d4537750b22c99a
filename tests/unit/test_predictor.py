"""hardware=predictor: features, the model's intervals, what gets measured, provenance, config errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from torch import nn

from hwnas.hardware.base import LatencyReport
from hwnas.hardware.estimate import estimate_onnx
from hwnas.hardware.export import export_onnx
from hwnas.hardware.predictor.features import (
    NB201_NAMES,
    AutoFeatures,
    NB201Features,
    OnnxGraphFeatures,
    feature_classes,
    nb201_features,
)
from hwnas.hardware.predictor.model import LatencyModel
from hwnas.hardware.predictor.profiler import PredictorProfiler
from hwnas.hardware.predictor.select import by_uncertainty, spread
from hwnas.hardware.predictor.settings import measure_options
from hwnas.hardware.predictor.store import MeasurementStore
from hwnas.utils.errors import CandidateFailed, ConfigError

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: ``predictor.features`` as conf/predictor/features/nb201.yaml writes it.
NB201 = {"_target_": "hwnas.hardware.predictor.features.NB201Features", "_partial_": True}


def arch(*ops: str) -> str:
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def all_archs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return sorted({arch(*rng.choice(OPS, 6)) for _ in range(n * 3)})[:n]


def synthetic_ms(a: str) -> float:
    """A device where a 3x3 conv costs 1 ms, a 1x1 0.3 ms, a pool 0.2 ms, plus 0.5 ms fixed."""
    f = nb201_features(a)
    return 0.5 + 1.0 * f["edges_conv3x3"] + 0.3 * f["edges_conv1x1"] + 0.2 * f["edges_pool"]


# -- features ------------------------------------------------------------------------------------------


def test_nb201_features_count_what_runs_and_what_reaches_the_output():
    f = nb201_features(
        arch("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    )
    assert f["edges_conv3x3"] == 5 and f["live_conv3x3"] == 5 and f["live_adds"] == 3
    assert f["output_live"] == 1 and f["mmacs_edges"] == pytest.approx(5 * 15 * 9 * 262_144 / 1e6)
    # node 2 feeds nothing (its only way out is a none edge): its two convs run but are dead
    dead = nb201_features(
        arch("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "skip_connect", "none")
    )
    assert dead["edges_conv3x3"] == 3 and dead["fed_conv3x3"] == 3 and dead["live_conv3x3"] == 1
    assert dead["mmacs_live"] < dead["mmacs_edges"]
    # nothing reaches the output: a constant network
    empty = nb201_features(arch("nor_conv_3x3", "none", "none", "none", "none", "none"))
    assert empty["output_live"] == 0 and empty["live_conv3x3"] == 0 and empty["fed_conv3x3"] == 1
    assert tuple(f) == NB201_NAMES and NB201Features().matrix([arch(*["none"] * 6)]).shape == (
        1,
        len(NB201_NAMES),
    )
    with pytest.raises(CandidateFailed, match="NB201"):
        nb201_features("|bogus~0|+|x|")


def test_onnx_features_read_the_exported_graph(tmp_path):
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)
    ).eval()
    path = export_onnx(net, (1, 3, 16, 16), tmp_path / "m.onnx")
    f = OnnxGraphFeatures().extract(model=net, input_shape=(1, 3, 16, 16), onnx_path=path)
    assert f["n_conv"] == 2 and f["n_activation"] == 0  # BN and ReLU fused into the first conv
    assert f["mmacs"] == pytest.approx((16 * 16 * 8 * 3 * 9 + 16 * 16 * 4 * 8) / 1e6)
    assert f["roofline_ms"] == pytest.approx(estimate_onnx(onnx.load(str(path)))[0])
    assert f["kpixels"] == pytest.approx(0.256)
    with pytest.raises(CandidateFailed):
        OnnxGraphFeatures().extract(input_shape=(1, 3, 16, 16))


# -- the model -------------------------------------------------------------------------------------------


def test_model_predicts_an_additive_device_with_honest_intervals():
    archs = all_archs(400)
    X = NB201Features().matrix(archs)
    rng = np.random.default_rng(1)
    y = np.array([synthetic_ms(a) for a in archs]) * np.exp(rng.normal(0, 0.03, len(archs)))
    fit, test = np.arange(40), np.arange(40, len(archs))
    model = LatencyModel(level=0.9, prior=NB201Features().prior_index()).fit(X[fit], y[fit])
    pred = model.predict(X[test])
    assert np.all(pred.lo_ms < pred.median_ms) and np.all(pred.median_ms < pred.hi_ms)
    assert np.all(pred.quantile(0.1) >= pred.lo_ms) and np.all(pred.quantile(0.9) <= pred.hi_ms)
    assert np.median(np.abs(pred.median_ms / y[test] - 1)) < 0.05
    inside = np.mean((y[test] >= pred.lo_ms) & (y[test] <= pred.hi_ms))
    assert inside >= 0.8, inside
    assert pred.n_measurements == 40 and pred.level == 0.9
    with pytest.raises(ValueError, match="at least 3"):
        LatencyModel().fit(X[:2], y[:2])
    with pytest.raises(ValueError, match="positive"):
        LatencyModel().fit(X[:5], -y[:5])


def test_seed_set_is_spread_and_draws_follow_uncertainty():
    X = np.array([[0.0, 0.0]] * 50 + [[10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]])
    seed_set = spread(X, 5, seed=0)
    assert len(set(seed_set.tolist())) == len(seed_set) == 5
    assert {50, 51, 52} <= set(seed_set.tolist())  # the corners, not fifty copies of the origin
    assert len(spread(np.zeros((10, 2)), 5)) == 1  # duplicates are never picked twice
    sd = np.r_[np.full(90, 0.01), np.full(10, 1.0)]
    picks = np.concatenate([by_uncertainty(sd, 5, taken=np.arange(3), seed=s) for s in range(40)])
    assert not set(picks.tolist()) & {0, 1, 2}
    assert np.mean(picks >= 90) > 0.1  # uncertain rows are drawn far more often than their 10 % share...
    assert np.mean(picks < 90) > 0.3  # ...but the cap keeps the draws representative of the pool


def test_store_is_shared_between_instances(tmp_path):
    a, b = MeasurementStore(tmp_path / "s", {"t": 1}), MeasurementStore(tmp_path / "s")
    a.put({"arch_key": "|x~0|", "latency_ms": 1.5, "features": {}})
    assert b.get("|x~0|")["latency_ms"] == 1.5 and len(b.records()) == 1
    assert (tmp_path / "s" / "identity.json").is_file()


# -- the profiler --------------------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path):
    archs = all_archs(300)
    path = tmp_path / "lat.csv"
    path.write_text("arch,dev_ms\n" + "".join(f"{a},{synthetic_ms(a):.6f}\n" for a in archs))
    return path, archs


def _predictor(table_path, tmp_path, run="run-a", **settings):
    measure = {"_target_": "hwnas.hardware.table.TableProfiler", "path": str(table_path), "column": "dev_ms"}
    base = {"measure": measure, "features": NB201, "max_measurements": 10, "seed_size": 5}
    base |= {"store_dir": str(tmp_path / "store")}
    base |= {"near_front_reserve": 0}  # the profiler alone: no search loop spends a reserve near the front
    return PredictorProfiler(settings={**base, **settings}, run_dir=run)


def test_profiler_measures_within_budget_and_says_what_it_predicted(table, tmp_path):
    path, archs = table
    prof = _predictor(path, tmp_path)
    reports = [prof.profile(None, (1, 3, 32, 32), arch_key=a) for a in archs[:60]]
    sources = [r.source for r in reports]
    assert sources[:5] == ["measured"] * 5  # the seed set
    assert sources.count("measured") <= 10 and "predicted" in sources
    assert prof.summary()["measured_this_run"] == sources.count("measured")
    pred = next(r for r in reports if r.source == "predicted")
    info = pred.extra["predictor"]
    lo, hi = info["interval_ms"]
    assert lo < pred.median_ms < hi and info["level"] == 0.9 and info["n_measurements"] >= 5
    assert pred.n_samples == 0 and pred.backend == "predictor/table" and "predicted" in pred.device
    m = pred.as_metrics()
    assert m["hw/source"] == "predicted" and m["hw/interval_lo_ms"] == lo and m["hw/interval_hi_ms"] == hi
    assert m["hw/predictor_purpose"] == "predicted"
    seed = reports[0].as_metrics()
    assert seed["hw/predictor_purpose"] == "seed" and "hw/interval_lo_ms" not in seed
    # round trip: a predicted report is still a plain LatencyReport
    assert LatencyReport.from_dict(pred.to_dict()) == pred
    # predictions are close on this additive device
    truth = np.array(
        [synthetic_ms(a) for a, r in zip(archs[:60], reports, strict=True) if r.source == "predicted"]
    )
    got = np.array([r.median_ms for r in reports if r.source == "predicted"])
    assert np.median(np.abs(got / truth - 1)) < 0.1


def test_a_later_run_reuses_measurements_and_the_front_check_measures_anyway(table, tmp_path):
    path, archs = table
    first = _predictor(path, tmp_path, run="run-a")
    for a in archs[:8]:
        first.profile(None, (1, 3, 32, 32), arch_key=a)
    later = _predictor(path, tmp_path, run="run-b", max_measurements=3, seed_size=3)
    again = later.profile(None, (1, 3, 32, 32), arch_key=archs[0])
    assert again.source == "measured" and again.extra["predictor"]["purpose"] == "reused"
    assert later.summary()["measured_this_run"] == 0 and later.summary()["measurements_used"] == 8
    for a in archs[8:40]:
        later.profile(None, (1, 3, 32, 32), arch_key=a)
    assert later.summary()["measured_this_run"] <= 3
    front = later.measure_now(None, (1, 3, 32, 32), arch_key=archs[-1])
    assert front.source == "measured" and front.median_ms == pytest.approx(synthetic_ms(archs[-1]), rel=1e-5)
    assert later.summary()["measured_this_run"] <= 3  # the front's check is on top of the budget


def test_bad_predictor_settings_are_clear_errors(table, tmp_path):
    path, _ = table
    with pytest.raises(ConfigError, match=r"\[predictor.measure\].*Valid choices: cpu") as exc:
        PredictorProfiler(settings={"measure": "phone"})
    assert "predictor" not in exc.value.choices and set(exc.value.choices) == set(measure_options())
    with pytest.raises(ConfigError, match="predictor.measure"):
        PredictorProfiler(settings={"measure": "predictor"})
    with pytest.raises(ConfigError, match=r"predictor.measure_settings.*Valid choices:.*repeats"):
        PredictorProfiler(settings={"measure": "cpu", "measure_settings": {"repeat": 3}})
    with pytest.raises(ConfigError, match=r"\[predictor\] unknown settings \['max_measurement'\]"):
        PredictorProfiler(settings={"max_measurement": 3})
    classes = "hwnas.hardware.predictor.features.AutoFeatures, .*NB201Features, .*OnnxGraphFeatures"
    with pytest.raises(
        ConfigError,
        match=rf"\[predictor.features\] unknown option 'graph' Valid choices: auto, nb201, onnx\. "
        rf"Fix: predictor/features=<option> .*{classes}",
    ):
        PredictorProfiler(settings={"features": "graph"})
    model = {"_target_": "hwnas.hardware.predictor.model.LatencyModel"}
    with pytest.raises(ConfigError, match=r"\[predictor.features\] a LatencyModel is not a feature"):
        PredictorProfiler(settings={"features": model})
    with pytest.raises(ConfigError, match=r"\[predictor.features\] LatencyModel built no feature extractor"):
        _predictor(path, tmp_path, features={**model, "_partial_": True})
    with pytest.raises(ConfigError, match="predictor.max_measurements"):
        _predictor(path, tmp_path, max_measurements=2)


def test_the_cache_keeps_measurements_not_predictions(table, tmp_path):
    from hwnas.hardware.build import build_profiler

    path, archs = table
    node = {"_target_": "hwnas.hardware.predictor.profiler.PredictorProfiler", "run_dir": "r"}
    node["settings"] = {
        "measure": {"_target_": "hwnas.hardware.table.TableProfiler", "path": str(path), "column": "dev_ms"},
        "features": NB201, "max_measurements": 4, "seed_size": 4, "store_dir": str(tmp_path / "store"),
    }  # fmt: skip
    prof = build_profiler(node, cache_dir=tmp_path / "latency")
    assert isinstance(prof, PredictorProfiler)  # not wrapped: predictions never enter the latency cache
    for a in archs[:20]:
        prof.profile(None, (1, 3, 32, 32), arch_key=a)
    assert len(list((tmp_path / "latency").rglob("*.json"))) == 4  # exactly the measurements


def test_a_noisy_measurement_counts_against_the_budget_but_is_never_fitted(table, tmp_path):
    from dataclasses import replace

    from hwnas.hardware.table import TableProfiler

    path, archs = table

    class Noisy(TableProfiler):
        def profile_key(self, arch_key: str) -> LatencyReport:
            report = super().profile_key(arch_key)
            noisy = arch_key in archs[:2]
            return replace(report, median_ms=report.median_ms * (5 if noisy else 1), extra={"noisy": noisy})

    prof = _predictor(path, tmp_path, measure=Noisy(path, "dev_ms"), max_measurements=6, seed_size=6)
    for a in archs[:12]:
        prof.profile(None, (1, 3, 32, 32), arch_key=a)
    summary = prof.summary()
    assert summary["measured_this_run"] == 6 and summary["noisy_not_fitted"] == 2
    assert summary["measurements_used"] == 4  # the two noisy ones are kept out of the fit


def test_a_table_search_refuses_a_latency_source_that_needs_a_model(make_cfg, nb201_path):
    from pathlib import Path

    from hwnas.evaluators.table import TableEvaluator
    from hwnas.utils.config import build_space

    cfg = make_cfg("search", ["experiment=nb201", "evaluator.latency_from=hardware", "hardware=cpu"])
    evaluator = TableEvaluator(
        path=str(nb201_path),
        accuracy="cifar10_test_acc",
        latency="pixel3_latency_ms",
        latency_from="hardware",
    )
    with pytest.raises(ConfigError, match=r"\[evaluator.latency_from\].*needs one"):
        evaluator.setup(cfg=cfg, space=build_space(cfg), run_dir=Path(cfg.run_dir))
    with pytest.raises(ConfigError, match="evaluator.latency_from"):
        TableEvaluator(path="x", accuracy="a", latency="b", latency_from="phone")


# -- predictor.features: a _target_ node per conf/predictor/features option ---------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], AutoFeatures),  # the default
        (["predictor/features=onnx"], OnnxGraphFeatures),
        (["predictor/features=nb201"], NB201Features),
        (["experiment=nb201_predictor"], NB201Features),
        (["experiment=nb201_predictor", "predictor/features=auto"], AutoFeatures),  # the command line wins
    ],
)
def test_features_is_a_target_node_built_with_the_measuring_profilers_workdir(
    make_cfg, overrides, expected, tmp_path
):
    from hydra.utils import instantiate

    cfg = make_cfg("search", ["hardware=predictor", *overrides])
    assert cfg.predictor.features._target_ == f"{expected.__module__}.{expected.__name__}"
    node = {**dict(cfg.predictor), "features": instantiate(cfg.predictor.features), "measure": "cpu"}
    node["measure_settings"] = None  # host CPU: no table needed here
    prof = PredictorProfiler(settings={**node, "store_dir": str(tmp_path / "store")}, paths=cfg.paths)
    choice = prof.feature_choice
    assert type(choice) is expected and prof.features == choice.name  # the label evaluator=table checks
    onnx_extractor = choice.select(nn.Conv2d(3, 4, 3))
    if expected is NB201Features:
        assert onnx_extractor is choice
    else:  # the ONNX graph: exported where the measuring profiler exports
        assert isinstance(onnx_extractor, OnnxGraphFeatures) and onnx_extractor.workdir == prof.workdir
    by_key = choice.select(None)
    assert isinstance(by_key, NB201Features if expected is not OnnxGraphFeatures else OnnxGraphFeatures)


def test_an_option_name_still_selects_its_node(table, tmp_path):
    """``predictor.features=onnx`` (and a run dir saved with ``features: auto``) names a conf option."""
    path, _ = table
    for name, expected in (("auto", AutoFeatures), ("onnx", OnnxGraphFeatures), ("nb201", NB201Features)):
        prof = _predictor(path, tmp_path, features=name)
        assert type(prof.feature_choice) is expected and prof.features == name


def test_every_features_option_names_an_offered_class():
    from pathlib import Path

    from omegaconf import OmegaConf

    conf = Path(__file__).resolve().parents[2] / "conf" / "predictor" / "features"
    targets = {OmegaConf.load(p)._target_ for p in conf.glob("*.yaml")}
    assert targets == set(feature_classes()), "each feature class has a conf option, and only those"

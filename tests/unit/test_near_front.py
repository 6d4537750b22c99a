"""hardware=predictor: a trained candidate whose predicted latency may put it on the front is measured.

A real search loop over a synthetic NB201 table (``evaluator=table``, ``latency_from=hardware``) whose
"device" is a table column, so measurements are free and deterministic. Seeds span the latency range with
a clean accuracy/latency trade-off; candidates after them are predicted (``max_uncertainty`` is wide open,
so only the near-front rule can measure them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import OmegaConf

from hwnas.evaluators.base import Evaluator
from hwnas.evaluators.table import TableEvaluator
from hwnas.search.loop import evaluate_proposals, run_loop
from hwnas.search.near_front import confirm_near_front
from hwnas.search.objectives import Objective
from hwnas.search.storage.view import StudyView
from hwnas.search.strategies.base import Proposal
from hwnas.search.trial_attrs import trial_attrs
from hwnas.search_space.nb201 import NB201Space, parse_arch_string
from tests.unit.test_predictor import all_archs, synthetic_ms

OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
N_SEEDS = 10


@pytest.fixture
def pool(tmp_path: Path) -> dict[str, Any]:
    """Seeds spread over the latency range (accuracy rising with latency), then slower candidates: their
    intervals' optimistic ends stay well above the fastest seed's latency."""
    archs = sorted(all_archs(300), key=synthetic_ms)
    n = len(archs)
    seeds = [archs[round(i * (n - 1) / (N_SEEDS - 1))] for i in range(N_SEEDS)]
    slow = [a for a in archs[3 * n // 4 : 9 * n // 10] if a not in seeds]
    acc = {a: 40.0 + 5.0 * synthetic_ms(a) for a in archs}  # the seeds form a clean front
    path = tmp_path / "table.csv"
    path.write_text("arch,acc,dev_ms\n" + "".join(f"{a},{acc[a]},{synthetic_ms(a):.6f}\n" for a in archs))
    return {"path": path, "seeds": seeds, "slow": slow, "tmp": tmp_path}


def _search(
    pool: dict[str, Any], order: list[str], acc: dict[str, float], *, proposed: bool = False, **settings: Any
) -> optuna.Study:
    """Evaluate ``order`` (seeds first) in one real loop; ``acc`` overrides the table's accuracies.
    ``proposed``: as a gradient or growth strategy hands them over (``evaluate_proposals``), one round."""
    path, tmp = pool["path"], pool["tmp"]
    measure = {"_target_": "hwnas.hardware.table.TableProfiler", "path": str(path), "column": "dev_ms"}
    predictor = {
        "measure": measure,
        "features": {"_target_": "hwnas.hardware.predictor.features.NB201Features", "_partial_": True},
        "seed_size": N_SEEDS,
        "max_measurements": N_SEEDS + 2,
    }
    predictor |= {"max_uncertainty": 100.0, "store_dir": str(tmp / "store"), **settings}
    hardware = {"_target_": "hwnas.hardware.predictor.profiler.PredictorProfiler", "settings": predictor}
    cfg = OmegaConf.create({"hardware": {**hardware, "run_dir": str(tmp / "run")}, "paths": {}})
    cfg.paths.cache_dir = str(tmp / "cache")
    evaluator = TableEvaluator(path=str(path), accuracy="acc", latency="dev_ms", latency_from="hardware")
    evaluator.setup(cfg=cfg, space=NB201Space(), run_dir=tmp / "run")
    evaluator.rows.update({a: {**evaluator.rows[a], "acc": v} for a, v in acc.items()})
    study = optuna.create_study(directions=["maximize", "minimize"])
    if proposed:
        space = NB201Space()
        proposals = [Proposal(space.make(parse_arch_string(a)), {"strategy": "darts"}) for a in order]
        evaluate_proposals(study, proposals, space=space, evaluator=evaluator, objectives=OBJECTIVES,
                           constraints=[])  # fmt: skip
        study.evaluator = evaluator  # type: ignore[attr-defined] - for the assertions
        return study
    for a in order:
        study.enqueue_trial(parse_arch_string(a))
    run_loop(study, space=NB201Space(), evaluator=evaluator, objectives=OBJECTIVES, constraints=[],
             n_trials=len(order), max_attempts=len(order) + 1)  # fmt: skip
    study.evaluator = evaluator  # type: ignore[attr-defined] - for the assertions
    return study


def _metrics(study: optuna.Study, arch: str) -> dict[str, Any]:
    t = next(t for t in study.get_trials() if t.user_attrs.get("arch_key") == arch)
    return {**trial_attrs(t)["metrics"], "_values": t.values}


@pytest.mark.parametrize("proposed", [False, True], ids=["sampled", "proposed"])
def test_a_candidate_predicted_near_the_front_is_measured_and_stored_measured(pool, proposed):
    """The same rule for a sampled candidate and for one a gradient, growth or supernet strategy proposes."""
    top, dominated, after = pool["slow"][:3]
    acc = {top: 99.0, dominated: 1.0, after: 1.0}
    study = _search(pool, [*pool["seeds"], dominated, top, after], acc, proposed=proposed)
    m = _metrics(study, top)
    assert m["hw/source"] == "measured" and m["hw/predictor_purpose"] == "near_front"
    truth = synthetic_ms(top)
    assert m["latency_ms"] == pytest.approx(truth, rel=1e-5) and m["hw/latency_ms"] == m["latency_ms"]
    assert m["_values"][1] == pytest.approx(truth, rel=1e-5)  # what the sampler and the front see
    assert "hw/interval_lo_ms" not in m  # like any measured latency
    profiler = study.evaluator.profiler
    record = next(t for t in profiler._tracks.values()).store.get(top)
    assert record["purpose"] == "near_front" and "interval_ms" in record["predicted"]
    # a clearly dominated candidate keeps its predicted latency: nothing measured for it
    d = _metrics(study, dominated)
    assert d["hw/source"] == "predicted" and d["hw/interval_lo_ms"] > min(map(synthetic_ms, pool["seeds"]))
    assert next(t for t in profiler._tracks.values()).store.get(dominated) is None
    # the next prediction refitted on the larger measured set
    a = _metrics(study, after)
    assert d["hw/predictor_measurements"] == N_SEEDS and a["hw/source"] == "predicted"
    assert a["hw/predictor_measurements"] == N_SEEDS + 1
    assert top in next(t for t in profiler._tracks.values()).fitted_on
    summary = profiler.summary()
    assert summary["measured_near_front"] == 1 and summary["measured_this_run"] == N_SEEDS + 1


def test_near_front_measurements_stay_within_the_budget(pool):
    tops = pool["slow"][:5]  # each better than everything before it: all near the front
    study = _search(pool, [*pool["seeds"], *tops], {a: 90.0 + i for i, a in enumerate(tops)})
    sources = [_metrics(study, a)["hw/source"] for a in tops]
    assert sources == ["measured", "measured", "predicted", "predicted", "predicted"]  # seeds + 2: spent
    summary = study.evaluator.profiler.summary()
    assert summary["measured_this_run"] == N_SEEDS + 2 == summary["max_measurements"]
    assert summary["measured_near_front"] == 2 and summary["calls"]["near_front"] == 2


def test_switched_off_nothing_is_measured_near_the_front(pool):
    top, after = pool["slow"][0], pool["slow"][2]
    study = _search(pool, [*pool["seeds"], top, after], {top: 99.0}, measure_near_front=False)
    m, a = _metrics(study, top), _metrics(study, after)
    assert m["hw/source"] == "predicted" and m["hw/predictor_purpose"] == "predicted"
    assert m["_values"][1] == m["latency_ms"] and m["hw/interval_lo_ms"] < m["latency_ms"]
    assert a["hw/predictor_measurements"] == N_SEEDS  # no refit: the measured set did not grow
    assert study.evaluator.profiler.summary()["measured_near_front"] == 0
    assert not study.evaluator.confirms_near_front


class _NoReads(StudyView):
    def __init__(self) -> None:
        pass

    def refresh(self) -> StudyView:
        raise AssertionError("the near-front check read the study")


class _Predicting(Evaluator):
    """An evaluator whose predictor would measure: only the latency's source keeps the check away."""

    latency_metrics = ("latency_ms", "hw/latency_ms")

    @property
    def confirms_near_front(self) -> bool:
        return True

    def cheap(self, spec: Any) -> dict[str, Any]:
        return {}

    def expensive(self, spec: Any) -> dict[str, Any]:
        return {}

    def confirm(self, spec: Any) -> dict[str, Any] | None:
        raise AssertionError("measured a latency that was not predicted")


def test_other_latency_sources_cost_nothing():
    """A measured, table or estimated latency never reaches the check: no study read, no measurement."""
    for source in ("measured", "measured (table)", "estimated", "cached", None):
        metrics = {"accuracy": 99.0, "latency_ms": 1.0, "hw/source": source}
        metrics |= {"hw/interval_lo_ms": 0.1, "hw/interval_hi_ms": 2.0}
        before = dict(metrics)
        assert not confirm_near_front(_Predicting(), None, metrics, view=_NoReads(), objectives=OBJECTIVES)
        assert metrics == before


def test_wide_intervals_leave_the_near_front_reserve_unspent(pool):
    """predictor.near_front_reserve: candidates with too-wide intervals are measured only while more than
    the reserve is left; the reserve then measures a candidate near the front."""
    wide = pool["slow"][:4]
    top = pool["slow"][4]
    acc = {**{a: 1.0 for a in wide}, top: 99.0}
    study = _search(
        pool, [*pool["seeds"], *wide, top], acc,
        max_uncertainty=0.0, max_measurements=N_SEEDS + 4, near_front_reserve=2,
    )  # fmt: skip
    purposes = [_metrics(study, a)["hw/predictor_purpose"] for a in wide]
    assert purposes == ["uncertain", "uncertain", "predicted", "predicted"]
    assert _metrics(study, top)["hw/predictor_purpose"] == "near_front"

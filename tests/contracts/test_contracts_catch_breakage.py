"""Every contract suite can fail: each is run against a deliberately broken implementation of its plug-in
and must reject it, while the sound twin passes the same rule (so the rule, not the set-up, is what fails).

A rule is a suite's ``test_*`` method, called here with the fixtures a subclass would provide.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

from hwnas.evaluators.base import Evaluator
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.models.darts_cell import DartsSearchNet
from hwnas.models.elastic_hourglass import ElasticHourglass
from hwnas.models.hourglass import HourglassNet
from hwnas.search_space.base import ArchSpec
from hwnas.search_space.hourglass import HourglassSpace
from hwnas.testing import (
    DataModuleContract,
    DifferentiableSupernetContract,
    ElasticSupernetContract,
    EvaluatorContract,
    ImprovingSamplerContract,
    ProfilerContract,
    RunSinkContract,
    SamplerContract,
    SearchSpaceContract,
    StrategyContract,
    search_context,
)
from hwnas.utils.errors import CandidateFailed
from tests.conftest import compose_cfg
from tests.contracts.options import compose
from tests.contracts.test_example_space import TinySpace
from tests.contracts.test_strategy_contract import CELLS, FixedListStrategy

optuna.logging.set_verbosity(optuna.logging.ERROR)


def breaks(rule: Any, match: str, **fixtures: Any) -> None:
    """``rule(**fixtures)`` must fail (an assertion or ``pytest.fail``) with a message matching ``match``:
    the broken part is what failed, not something else."""
    with pytest.raises((AssertionError, pytest.fail.Exception), match=match):
        rule(**fixtures)


# -- search spaces ------------------------------------------------------------------------------------
class UnstableKeySpace(TinySpace):
    """Keys an architecture anew on every call: the latency cache and deduplication would never hit."""

    def key_of(self, params):
        return f"tiny-{uuid.uuid4().hex[:8]}"


class ConditionalSpace(TinySpace):
    """Offers ``kernel`` only on some calls: a conditional name NSGA-II silently stops evolving."""

    calls = 0

    def choices(self):
        self.calls += 1
        return super().choices() | ({"kernel": [3, 5]} if self.calls % 2 else {})


def test_the_space_contract_catches_an_unstable_key_and_conditional_names() -> None:
    suite = SearchSpaceContract()
    suite.test_key_is_stable(space=TinySpace())
    breaks(suite.test_key_is_stable, "another key for the same parameters", space=UnstableKeySpace())
    suite.test_has_a_name_and_a_fixed_flat_set_of_parameters(space=TinySpace())
    breaks(
        suite.test_has_a_name_and_a_fixed_flat_set_of_parameters,
        "same names and values",
        space=ConditionalSpace(),
    )


# -- strategies -----------------------------------------------------------------------------------------
class ImpostorStrategy(FixedListStrategy):
    """Labels its trials with another strategy's name: trials.csv would credit the wrong strategy."""

    def proposal_rounds(self, ctx):
        for proposals in super().proposal_rounds(ctx):
            yield [type(p)(p.spec, {**p.attrs, "strategy": "someone-else"}) for p in proposals]


class ShrinkingBudgetStrategy(FixedListStrategy):
    def budget(self, done: int) -> int:
        return max(0, len(self.archs) - done)


def test_the_strategy_contract_catches_mislabelled_trials_and_a_bad_budget(
    tmp_path: Path, nb201_table: Path
) -> None:
    suite = StrategyContract()
    cfg = compose_cfg("search", ["experiment=nb201", f"benchmark.path={nb201_table}"], tmp_path / "run")

    def run(strategy):
        ctx = search_context(cfg, strategy=strategy, run_dir=tmp_path / "run" / uuid.uuid4().hex)
        suite.test_run_stores_its_architectures_in_the_study(strategy=strategy, context=ctx)

    run(FixedListStrategy(archs=CELLS))
    breaks(run, "says strategy=.someone-else.", strategy=ImpostorStrategy(archs=CELLS))
    suite.test_budget_counts_unique_architectures(strategy=FixedListStrategy(archs=CELLS))
    breaks(
        suite.test_budget_counts_unique_architectures,
        r"budget\(done\) < done",
        strategy=ShrinkingBudgetStrategy(archs=CELLS),
    )


# -- samplers -------------------------------------------------------------------------------------------
def test_the_sampler_contracts_catch_an_unseeded_sampler_and_one_that_does_not_search() -> None:
    SamplerContract().test_valid_choices_and_deterministic(
        make_sampler=lambda seed: optuna.samplers.RandomSampler(seed)
    )
    breaks(
        SamplerContract().test_valid_choices_and_deterministic,
        "the same seed proposed other architectures",
        make_sampler=lambda seed: optuna.samplers.RandomSampler(),  # the seed is ignored
    )
    breaks(  # random search: no closer to the front after its "random start" than during it
        ImprovingSamplerContract().test_improves_over_its_random_start,
        "as far from the true front",
        make_sampler=lambda seed: optuna.samplers.RandomSampler(seed),
        seed=0,
    )


# -- evaluators -----------------------------------------------------------------------------------------
class ToyEvaluator(Evaluator):
    """Scores :class:`TinySpace` architectures by counting: no data, no training."""

    cheap_metrics = ("params",)
    expensive_metrics = ("accuracy",)

    def __init__(self) -> None:
        self.space = TinySpace()

    def _spec(self, spec: ArchSpec) -> ArchSpec:
        if spec.space != self.space.name:
            raise CandidateFailed(f"{spec.key} is not a {self.space.name} architecture")
        return spec

    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        return {"params": float(self._spec(spec)["width"] * self._spec(spec)["depth"])}

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        return {"accuracy": 0.5 + 0.01 * self._spec(spec)["depth"]}


class MisnamingEvaluator(ToyEvaluator):
    """Declares ``accuracy`` but returns ``acc``: every objective on ``accuracy`` would fail its trial."""

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        return {"acc": super().expensive(spec)["accuracy"]}


class CrashingEvaluator(ToyEvaluator):
    """Crashes on a candidate it does not know: one bad architecture would end the whole search."""

    def _spec(self, spec: ArchSpec) -> ArchSpec:
        return spec if spec.space == self.space.name else {}["unknown"]


def test_the_evaluator_contract_catches_a_misnamed_metric_and_a_crash() -> None:
    suite, spec = EvaluatorContract(), TinySpace().baseline()
    bad = ArchSpec(space="no-such-space", params=(("x", 1),))
    suite.test_expensive_returns_what_it_declares(evaluator=ToyEvaluator(), spec=spec)
    breaks(
        suite.test_expensive_returns_what_it_declares,
        r"declares \['accuracy'\]",
        evaluator=MisnamingEvaluator(),
        spec=spec,
    )
    suite.test_a_bad_candidate_is_a_failed_trial(evaluator=ToyEvaluator(), bad_spec=bad)
    breaks(
        suite.test_a_bad_candidate_is_a_failed_trial,
        "raised KeyError",
        evaluator=CrashingEvaluator(),
        bad_spec=bad,
    )


# -- profilers ------------------------------------------------------------------------------------------
class ConstantProfiler(Profiler):
    """An honest estimate: 1 ms for everything, said to be an estimate."""

    target, backend = "toy", "estimate"
    median = 1.0

    def profile(
        self, model, input_shape, *, onnx_path=None, calibration=None, arch_key=None
    ) -> LatencyReport:
        m = self.median
        return LatencyReport(m, m, m, 0, self.backend, "toy device", self.precision, "estimated")


class NegativeProfiler(ConstantProfiler):
    median = -1.0


def test_the_profiler_contract_catches_a_negative_latency() -> None:
    suite = ProfilerContract()
    suite.test_report_is_honest_and_consistent(profiler=ConstantProfiler(), arch_key="toy-arch")
    breaks(
        suite.test_report_is_honest_and_consistent,
        "median -1.0 ms",
        profiler=NegativeProfiler(),
        arch_key="toy-arch",
    )


# -- datamodules ----------------------------------------------------------------------------------------
class ShiftedLabels:
    """A dataset whose labels after sample 0 are off by the class count (sample 0 alone looks fine)."""

    def __init__(self, base: Any, num_classes: int) -> None:
        self.base, self.num_classes = base, num_classes

    def __len__(self) -> int:
        return len(self.base)

    def raw(self, index: int) -> tuple[np.ndarray, int]:
        image, label = self.base.raw(index)
        return image, label + (self.num_classes if index else 0)


def test_the_datamodule_contract_catches_labels_out_of_range_and_an_unseeded_shuffle(tmp_path: Path) -> None:
    suite = DataModuleContract()
    node = compose(["dataset=digits"], tmp_path).dataset
    factory = instantiate(node.dataset)

    def make(**kwargs):
        return lambda: instantiate(node, **kwargs)

    suite.test_every_label_is_in_range(datamodule=make()())
    shifted = make(dataset=lambda split: ShiftedLabels(factory(split=split), int(node.num_classes)))
    breaks(suite.test_every_label_is_in_range, r"labels \[.*\] outside 0\.\.9", datamodule=shifted())
    suite.test_equal_seeds_give_equal_data(make_datamodule=make())
    seeds = iter(range(1, 100))
    breaks(
        suite.test_equal_seeds_give_equal_data,
        "equal seeds, different batches",
        make_datamodule=lambda: instantiate(node, seed=next(seeds)),
    )


# -- supernets ------------------------------------------------------------------------------------------
class SoftFinalizedNet(DartsSearchNet):
    """Reports the mixture, not the finalized cell: the latency range would not be real architectures'."""

    def finalized_probs(self, alphas):
        return {name: a.detach().softmax(-1) for name, a in alphas.items()}


class ForgetfulElastic(ElasticHourglass):
    """Extracts a freshly initialised network: inherited weights would score something else."""

    def extract(self, config=None):
        cfg = self.active if config is None else config
        return HourglassNet.from_config(cfg, num_classes=self.num_classes, in_channels=self.in_channels)


def test_the_supernet_contracts_catch_soft_finalized_weights_and_forgotten_weights() -> None:
    suite = DifferentiableSupernetContract()
    tiny = {"num_classes": 5, "channels": 4, "layers": 3}
    suite.test_finalized_probs_encode_the_finalized_architecture(supernet=DartsSearchNet(**tiny))
    breaks(
        suite.test_finalized_probs_encode_the_finalized_architecture,
        "must be one-hot",
        supernet=SoftFinalizedNet(**tiny),
    )
    elastic, space = (
        ElasticSupernetContract(),
        HourglassSpace(base_channels=[8], max_channels=16, layers=[1, 2]),
    )
    torch.manual_seed(0)
    shape = (2, 3, 32, 32)
    sound = space.supernet(num_classes=5)
    elastic.test_extract_computes_what_the_active_supernet_computes(supernet=sound, input_shape=shape)
    broken = ForgetfulElastic(space.ranges(), num_classes=5)
    breaks(
        elastic.test_extract_computes_what_the_active_supernet_computes,
        "differs from the active supernet",
        supernet=broken,
        input_shape=shape,
    )


# -- logger sinks ---------------------------------------------------------------------------------------
class ListSink:
    """Keeps what it is given (a complete sink)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def table(self, key: str, df: pd.DataFrame) -> None:
        self.calls.append(f"table:{key}")

    def image(self, key: str, path: Path) -> None:
        self.calls.append(f"image:{key}")

    def scatter(self, key: str, df: pd.DataFrame, *, x: str, y: str, title: str) -> None:
        self.calls.append(f"scatter:{key}")

    def curve(self, key: str, steps: list[int], values: list[float], *, step_name: str) -> None:
        self.calls.append(f"curve:{key}")

    def summary(self, values: dict[str, Any]) -> None:
        self.calls.append("summary")

    def close(self, status: str) -> None:
        self.calls.append(f"close:{status}")


class NoCurveSink(ListSink):
    curve = None  # type: ignore[assignment] - the final stage's training curves would crash the run's end


class PositionalScatterSink(ListSink):
    def scatter(self, key: str, df: pd.DataFrame, x: str, y: str) -> None:  # type: ignore[override]
        self.calls.append(f"scatter:{key}")


def test_the_sink_contract_catches_a_missing_method_and_a_wrong_signature(tmp_path: Path) -> None:
    suite = RunSinkContract()
    sound = ListSink()
    suite.test_has_every_method_of_the_protocol(sink=sound)
    suite.test_writes_what_a_search_and_its_final_stage_write(sink=sound, tmp_path=tmp_path)
    assert sound.calls[-1] == "close:success"
    breaks(suite.test_has_every_method_of_the_protocol, r"lacks \['curve'\]", sink=NoCurveSink())
    breaks(
        suite.test_has_every_method_of_the_protocol,
        r"cannot be called as RunSink\.scatter",
        sink=PositionalScatterSink(),
    )

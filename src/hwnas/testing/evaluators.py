"""The evaluator contract suite (:class:`~hwnas.evaluators.base.Evaluator`).

Subclass :class:`EvaluatorContract` and provide ``evaluator`` (yours, already ``setup``) and ``spec`` (an
architecture it can score)::

    class TestMyEvaluator(EvaluatorContract):
        @pytest.fixture
        def evaluator(self, tmp_path):
            ev = MyEvaluator(epochs=1)
            ev.setup(cfg=cfg, space=space, run_dir=tmp_path)
            return ev

        @pytest.fixture
        def spec(self):
            return space.baseline()

``bad_spec`` (default: an architecture of a space nobody has) must fail as a candidate; override it with a
candidate your evaluator cannot score.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from hwnas.evaluators.base import Evaluator
from hwnas.search_space.base import ArchSpec
from hwnas.utils.errors import CandidateFailed, HwnasError


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))


def _check_returns(evaluator: Evaluator, stage: str, out: Any, declared: tuple[str, ...]) -> None:
    assert isinstance(out, dict), f"{stage}() must return a dict of metrics, got {type(out).__name__}"
    assert all(isinstance(k, str) for k in out), f"{stage}() metric names must be strings"
    missing = [m for m in declared if m not in out]
    assert not missing, (
        f"{type(evaluator).__name__}.{stage}() declares {missing} in {stage}_metrics but did not return them "
        "(an objective or constraint on them fails every trial)"
    )
    bad = {m: out[m] for m in declared if not _is_number(out[m])}
    assert not bad, f"{stage}() metrics must be finite numbers: {bad}"


class EvaluatorContract:
    """Rules every evaluator keeps: the loop's cheap-before-expensive order and its fault isolation.

    Fixtures: ``evaluator`` (set up) and ``spec`` (yours, required); ``bad_spec`` (default provided).
    """

    @pytest.fixture
    def bad_spec(self) -> ArchSpec:
        """A candidate no evaluator can score: an architecture of a space that does not exist."""
        return ArchSpec(space="no-such-space", params=(("x", 1),))

    def test_declares_its_metrics(self, evaluator: Evaluator) -> None:
        """``search.objectives`` and ``search.constraints`` are checked against these names up front;
        constraints on cheap metrics skip the expensive stage, so no name may belong to both."""
        assert isinstance(evaluator, Evaluator), "derive from hwnas.evaluators.base.Evaluator"
        cheap, expensive = tuple(evaluator.cheap_metrics), tuple(evaluator.expensive_metrics)
        assert cheap or expensive, "declare the metrics in cheap_metrics / expensive_metrics"
        assert all(isinstance(m, str) and m for m in cheap + expensive)
        assert len(set(cheap)) == len(cheap) and len(set(expensive)) == len(expensive), "a metric is repeated"
        assert not set(cheap) & set(expensive), f"declared by both stages: {set(cheap) & set(expensive)}"
        assert tuple(evaluator.metrics) == cheap + expensive

    def test_cheap_returns_what_it_declares(self, evaluator: Evaluator, spec: ArchSpec) -> None:
        _check_returns(evaluator, "cheap", evaluator.cheap(spec), tuple(evaluator.cheap_metrics))

    def test_expensive_returns_what_it_declares(self, evaluator: Evaluator, spec: ArchSpec) -> None:
        _check_returns(evaluator, "expensive", evaluator.expensive(spec), tuple(evaluator.expensive_metrics))

    def test_a_bad_candidate_is_a_failed_trial(self, evaluator: Evaluator, bad_spec: ArchSpec) -> None:
        """A candidate it cannot score raises ``CandidateFailed`` (or another ``HwnasError``) from ``cheap``
        or ``expensive``: the loop records a failed trial and goes on. Anything else ends the search."""
        for stage in (evaluator.cheap, evaluator.expensive):
            try:
                stage(bad_spec)
            except (CandidateFailed, HwnasError):
                return
            except Exception as exc:  # noqa: BLE001 - the rule is about which error
                pytest.fail(
                    f"{stage.__name__}({bad_spec.key}) raised {type(exc).__name__}: {exc}; raise "
                    "CandidateFailed so that the loop fails the trial, not the search"
                )
        pytest.fail(f"cheap() and expensive() both scored {bad_spec.key}, a candidate they cannot know")

    def test_describes_itself(self, evaluator: Evaluator) -> None:
        """One line for the start-up log; ``sizes()`` goes into summary.json."""
        text = evaluator.describe()
        assert isinstance(text, str) and text.strip()
        sizes = evaluator.sizes()
        assert isinstance(sizes, dict)
        json.dumps(sizes)
        assert isinstance(evaluator.confirms_near_front, bool)

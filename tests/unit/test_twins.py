"""Two workers take the same architecture at once: the one asked first evaluates, the other waits for its
result, whichever of them wrote its key first (a race the 3-worker PostgreSQL test once lost: the later
trial looked before the earlier one had written its key, found no twin, and both paid)."""

from __future__ import annotations

import threading
import time
from typing import Any

import optuna

from hwnas.evaluators.base import Evaluator
from hwnas.search.loop import evaluate_proposals
from hwnas.search.objectives import Objective
from hwnas.search.strategies.base import Proposal
from hwnas.search_space.base import ArchSpec
from hwnas.search_space.nb201 import NB201Space, parse_arch_string

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
OBJECTIVES = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]


class CountingEvaluator(Evaluator):
    expensive_metrics = ("accuracy", "latency_ms")

    def __init__(self) -> None:
        self.paid: list[str] = []

    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        return {}

    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        self.paid.append(spec.key)
        return {"accuracy": 1.0, "latency_ms": 1.0}


def test_a_twin_asked_later_waits_for_the_earlier_ones_key_and_result() -> None:
    space, evaluator = NB201Space(), CountingEvaluator()
    spec = space.make(parse_arch_string(CELL))
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(dict(spec.values))
    first = study.ask()  # another worker's trial: asked first, its key not written yet
    worker = threading.Thread(
        target=evaluate_proposals,
        args=(study, [Proposal(spec, {"strategy": "darts"})]),
        kwargs={"space": space, "evaluator": evaluator, "objectives": OBJECTIVES, "constraints": []},
    )
    worker.start()
    time.sleep(0.5)
    assert evaluator.paid == []  # waiting for the earlier trial to say what it holds
    first.set_user_attr("arch_key", spec.key)  # the same architecture
    time.sleep(0.3)
    assert evaluator.paid == []  # waiting for its result
    first.set_user_attr("result", {"evaluated": True})
    study.tell(first, [0.7, 2.0])
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert evaluator.paid == []  # paid once, by the earlier trial's worker
    (twin,) = [t for t in study.get_trials() if t.number != first.number]
    assert twin.user_attrs["duplicate_of"] == first.number and twin.values == [0.7, 2.0]

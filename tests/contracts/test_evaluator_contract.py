"""The evaluator contract (:class:`hwnas.testing.EvaluatorContract`) on every ``conf/evaluator`` option,
set up as a search sets it up, at the contract tests' tiny size (``tests/contracts/options.py``).

Each option runs with the space and data of the first experiment that selects it (``evaluator=table``:
``experiment=nb201``, NB201 cells looked up in the real table of ``../shared``), else with the search's
defaults (the hourglass space on synthetic faces). An option that reads a table (a ``path`` key) reads the
NB201 table, and is skipped where it is absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hwnas.evaluators.base import Evaluator
from hwnas.search_space.base import ArchSpec
from hwnas.testing import EvaluatorContract
from hwnas.utils.config import build, build_space
from tests.conftest import NB201
from tests.contracts.options import options, pairing


@pytest.fixture(scope="module", params=options("evaluator"))
def configured(request, tmp_path_factory) -> tuple[Evaluator, Any]:
    """``(evaluator set up, its space)``."""
    option = request.param
    run_dir = tmp_path_factory.mktemp(f"evaluator-{option}")
    cfg = pairing("evaluator", option, run_dir)
    if "path" in cfg.evaluator:
        if not NB201.is_file():
            pytest.skip(
                f"evaluator={option} reads the NB201 table, not found at {NB201} (../shared/data/nb201/)"
            )
        cfg.benchmark.path = str(NB201)
    space, evaluator = build_space(cfg), build(cfg.evaluator, "evaluator")
    evaluator.setup(cfg=cfg, space=space, run_dir=run_dir)
    return evaluator, space


class TestConfiguredEvaluators(EvaluatorContract):
    @pytest.fixture
    def evaluator(self, configured) -> Evaluator:
        return configured[0]

    @pytest.fixture
    def spec(self, configured) -> ArchSpec:
        return configured[1].sample(np.random.default_rng(0))

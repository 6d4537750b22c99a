"""The strategy contract (:class:`hwnas.testing.StrategyContract`): every ``conf/search`` option builds a
strategy that keeps it, run once in a tiny search (``tests/contracts/options.py``: the space and data of the
first experiment selecting the option, else the search's defaults), and a new strategy is one class and one
config node, with no change to the search task.

The last test is that claim carried out: a strategy written here (it proposes a fixed list of NB201 cells,
round by round) runs through the real search task on the real NB201 table; its architectures land in the one
study and in trials.csv like any other strategy's, with its name in the ``strategy`` column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from hwnas.search.strategies.base import Proposal, ProposingStrategy, SearchContext, Strategy, build_strategy
from hwnas.search_space.nb201 import parse_arch_string
from hwnas.testing import StrategyContract, search_context
from tests.conftest import compose_cfg
from tests.contracts.options import options, pairing

OPTIONS = options("search")
CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|",
]


class FixedListStrategy(ProposingStrategy):
    """Proposes the given architectures, ``per_round`` at a time (a stand-in for a user's own strategy)."""

    trains = False  # table look-ups: no images needed

    def __init__(
        self, *, archs: list[str], per_round: int = 2, name: str = "fixed_list", seed: int = 0
    ) -> None:
        self.archs, self.per_round, self.name, self.seed = list(archs), int(per_round), name, int(seed)

    def planned(self) -> int:
        return len(self.archs)

    def describe(self) -> str:
        return f"{self.name} ({len(self.archs)} fixed architectures)"

    def proposal_rounds(self, ctx: SearchContext) -> Iterator[list[Proposal]]:
        for i in range(0, len(self.archs), self.per_round):
            assert (
                len(ctx.study.get_trials(deepcopy=False)) == i
            )  # the earlier rounds are evaluated and stored
            batch = self.archs[i : i + self.per_round]
            yield [Proposal(ctx.space.make(parse_arch_string(a)), {"strategy": self.name}) for a in batch]


@pytest.mark.parametrize("option", OPTIONS)
def test_every_search_option_names_its_strategy_and_budget(option: str, tmp_path: Path) -> None:
    cfg = compose_cfg("search", [f"search={option}"], tmp_path)
    OmegaConf.resolve(cfg)
    strategy = instantiate(cfg.search.strategy)
    assert strategy.name == cfg.search.name == option  # the strategy column says which option ran
    assert strategy.n_trials in (None, cfg.search.n_trials)


class TestConfiguredStrategies(StrategyContract):
    @pytest.fixture(scope="class", params=OPTIONS)
    def configured(self, request, tmp_path_factory) -> tuple[DictConfig, Strategy]:
        cfg = pairing("search", request.param, tmp_path_factory.mktemp(request.param))
        return cfg, build_strategy(cfg)

    @pytest.fixture
    def strategy(self, configured) -> Strategy:
        return configured[1]

    @pytest.fixture
    def context(self, configured, tmp_path: Path) -> SearchContext:
        cfg, strategy = configured
        return search_context(cfg, strategy=strategy, run_dir=tmp_path / "run")


class TestAUsersStrategy(StrategyContract):
    """A strategy written outside the package keeps the contract too (a table search: no training)."""

    @pytest.fixture
    def strategy(self) -> Strategy:
        return FixedListStrategy(archs=CELLS, per_round=2)

    @pytest.fixture
    def context(self, strategy: Strategy, tmp_path: Path, nb201_table: Path) -> SearchContext:
        cfg = compose_cfg("search", ["experiment=nb201", f"benchmark.path={nb201_table}"], tmp_path / "run")
        return search_context(cfg, strategy=strategy, run_dir=tmp_path / "run")


@pytest.mark.integration
def test_a_new_strategy_is_one_class_and_one_node(tmp_path: Path, nb201_path: Path) -> None:
    from hwnas.tasks import search

    cfg = compose_cfg("search", ["experiment=nb201", f"benchmark.path={nb201_path}"], tmp_path / "run")
    with open_dict(cfg):  # the one node a user writes: ~search.strategy +search.strategy={...} on the CLI
        cfg.search.strategy = {"_target_": f"{__name__}.FixedListStrategy", "archs": CELLS, "per_round": 2}
    summary = search.run(cfg)
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert trials["strategy"].tolist() == ["fixed_list"] * 3
    assert sorted(trials["arch_key"]) == sorted(CELLS)
    assert summary["unique_evaluated"] == 3 and summary["n_trials_budget"] is None
    assert summary["front_size"] >= 1 and (trials["state"] == "COMPLETE").all()

"""The strategy contract (``hwnas.search.strategies.base.Strategy``): every ``conf/search`` option builds one,
and a new strategy is one class and one config node, with no change to the search task.

The second test is that claim carried out: a strategy written here (it proposes a fixed list of NB201 cells,
round by round) runs through the real search task on the real NB201 table; its architectures land in the one
study and in trials.csv like any other strategy's, with its name in the ``strategy`` column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from hwnas.search.strategies.base import Proposal, ProposingStrategy, SearchContext, Strategy
from hwnas.search_space.nb201 import parse_arch_string
from tests.conftest import CONF, compose_cfg

OPTIONS = sorted(p.stem for p in (CONF / "search").glob("*.yaml"))
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
def test_every_search_option_builds_a_strategy(option: str, tmp_path: Path) -> None:
    cfg = compose_cfg("search", [f"search={option}"], tmp_path)
    OmegaConf.resolve(cfg)
    strategy = instantiate(cfg.search.strategy)
    assert isinstance(strategy, Strategy)
    assert strategy.name == cfg.search.name == option  # the strategy column says which option ran
    assert isinstance(strategy.sampler(), optuna.samplers.BaseSampler)
    assert strategy.budget(5) >= 5 and strategy.describe()
    assert strategy.n_trials in (None, cfg.search.n_trials)


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

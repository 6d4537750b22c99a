"""The strategy contract suite (:class:`~hwnas.search.strategies.base.Strategy`).

Subclass :class:`StrategyContract` and provide two fixtures: ``strategy`` (yours, built) and ``context``
(a :class:`~hwnas.search.strategies.base.SearchContext` it can run in, e.g. from :func:`search_context`
with a composed config)::

    class TestMyStrategy(StrategyContract):
        @pytest.fixture
        def strategy(self):
            return MyStrategy(n=4)

        @pytest.fixture
        def context(self, strategy, tmp_path):
            cfg = ...  # a composed search config, e.g. experiment=nb201 (a table: no training)
            return search_context(cfg, strategy=strategy, run_dir=tmp_path)

The run rule runs the whole strategy once in that context: keep its budget and training tiny.
"""

from __future__ import annotations

from pathlib import Path

import optuna
from omegaconf import DictConfig

from hwnas.search.loop import read_state
from hwnas.search.objectives import parse_constraints, parse_objectives
from hwnas.search.strategies.base import SearchContext, Strategy
from hwnas.search.trial_attrs import ARCH_ATTR, FAIL_REASON_ATTR, KEY_ATTR, STRATEGY_ATTR
from hwnas.utils.config import build, build_space


def search_context(
    cfg: DictConfig, *, strategy: Strategy, run_dir: Path, setup: bool = True
) -> SearchContext:
    """The context the search task gives ``strategy`` for ``cfg`` (space, evaluator, objectives,
    constraints), with an in-memory study on the strategy's sampler.

    Args:
        cfg: A composed search config.
        strategy: The strategy whose sampler the study uses.
        run_dir: Where the strategy and the evaluator may write.
        setup: Set the evaluator up (data, profiler, a supernet's training); ``False`` for a context only
            passed to ``strategy.check``.
    """
    space, evaluator = build_space(cfg), build(cfg.evaluator, "evaluator")
    objectives = parse_objectives(cfg.search.objectives, available=evaluator.metrics)
    constraints = parse_constraints(cfg.search.get("constraints"), available=evaluator.metrics)
    study = optuna.create_study(directions=[o.direction for o in objectives], sampler=strategy.sampler())
    run_dir.mkdir(parents=True, exist_ok=True)
    if setup:
        evaluator.setup(cfg=cfg, space=space, run_dir=run_dir)
    return SearchContext(
        cfg=cfg,
        study=study,
        space=space,
        evaluator=evaluator,
        objectives=objectives,
        constraints=constraints,
        run_dir=run_dir,
    )


class StrategyContract:
    """Rules every strategy keeps: every strategy feeds the one study the reports read.

    Fixtures: ``strategy`` and ``context`` (both yours, required).
    """

    def test_is_a_strategy_with_a_name(self, strategy: Strategy) -> None:
        """The name is the ``strategy`` column of every trial it proposes."""
        assert isinstance(strategy, Strategy), "derive from hwnas.search.strategies.base.Strategy"
        assert isinstance(strategy.name, str) and strategy.name, "set `name` (the strategy column)"

    def test_seeds_the_study_with_an_optuna_sampler(self, strategy: Strategy) -> None:
        assert isinstance(strategy.sampler(), optuna.samplers.BaseSampler)

    def test_budget_counts_unique_architectures(self, strategy: Strategy) -> None:
        """``budget(done)`` is what the study holds at the end (the progress bar's total): at least one
        architecture, never fewer than were already there (up to the first budget), never falling as
        ``done`` grows; ``n_trials`` is the user's budget or ``None``."""
        first = strategy.budget(0)
        assert isinstance(first, int) and first >= 1, f"budget(0) = {first!r}: a strategy proposes something"
        budgets = [strategy.budget(done) for done in range(first + 1)]
        assert all(b >= done for done, b in enumerate(budgets)), f"budget(done) < done: {budgets}"
        assert budgets == sorted(budgets), f"budget(done) falls as done grows: {budgets}"
        n = strategy.n_trials
        assert n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1)

    def test_describes_itself_in_one_line(self, strategy: Strategy) -> None:
        text = strategy.describe()
        assert isinstance(text, str) and text.strip() and "\n" not in text

    def test_accepts_its_context(self, strategy: Strategy, context: SearchContext) -> None:
        """``check`` refuses only what it cannot run (the context given here is meant to be runnable)."""
        strategy.check(space=context.space, evaluator=context.evaluator, cfg=context.cfg)

    def test_run_stores_its_architectures_in_the_study(
        self, strategy: Strategy, context: SearchContext
    ) -> None:
        """Every architecture goes through the loop into ``ctx.study``, labelled with the strategy's name
        and readable by the space; nothing is left running or queued; the budget holds."""
        strategy.run(context)
        trials = context.study.get_trials(deepcopy=False)
        assert trials, "run() stored no trial in ctx.study"
        states = {t.state for t in trials}
        assert not states & {optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING}, states
        assert optuna.trial.TrialState.COMPLETE in states, "no architecture was evaluated successfully"
        for t in trials:
            assert t.user_attrs.get(STRATEGY_ATTR) == strategy.name, (
                f"trial {t.number} says strategy={t.user_attrs.get(STRATEGY_ATTR)!r}, not {strategy.name!r}"
            )
            if ARCH_ATTR in t.user_attrs:
                spec = context.space.parse(t.user_attrs[ARCH_ATTR])
                assert spec.key == t.user_attrs[KEY_ATTR], f"trial {t.number}: arch and arch_key disagree"
            else:
                assert t.user_attrs.get(FAIL_REASON_ATTR), (
                    f"trial {t.number} has neither arch nor fail reason"
                )
        unique = read_state(context.study).unique
        assert 1 <= unique <= strategy.budget(0), (
            f"{unique} unique architectures for a budget of {strategy.budget(0)}"
        )

"""Start a search from its seeds: every one-parameter move of a seed, then the best trades of those moves.

A hand-designed model is usually a local optimum: most single changes cost accuracy or latency, and what
beats it is a *trade* (one change that buys accuracy paid for by others that save latency, e.g. a wider
stem with a narrower first level). A random first generation rarely lands near the seed, and
crossover plus mutation rarely make two coordinated changes there. So, when the study holds seeded
architectures (``search.seed_baseline``, ``search.seed_architectures``), a sampler with a
:class:`SeedStart` proposes first:

1. **moves**: every one-parameter neighbour of each seed (their results measure what each change does to
   each objective near the seed);
2. **trades**: seed + one accuracy-buying move + one to three latency-saving moves, ranked by the sum of
   their measured accuracy changes (a first-order model), each checked against a latency target (the
   seed's latency, and 0.85 × it) on the real cost metric before it is proposed: a ``probe`` (the
   evaluator's cheap stage: export and profile, no training) when the strategy provides one, else the
   sum of the measured log-latency changes. Costs do not add up when parameters are coupled (the
   hourglass's level widths are relative to its stem), so each (buying, saving) pair is probed once to
   measure its coupling before the combinations are ranked; the buying moves (the best
   ``n_buy`` whose cost the saves can pay) take turns, so one strong move cannot take every slot.

Then the sampler's own algorithm continues with all of them in its history (NSGA-II breeds from them).
Everything is read from the study, so a resumed or multi-worker search continues the same plan; only a
probe on a noisy host can order trades differently after a restart.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hwnas.search.trial_attrs import RUNG0_VALUES_ATTR, SEED_MOVE_ATTR, SEEDED_ATTR
from hwnas.utils.errors import ConfigError

log = logging.getLogger("hwnas.search")

#: A probe: an architecture's parameters -> its cost metric (e.g. latency) without training, or None.
Probe = Callable[[dict[str, Any]], float | None]

#: A trade is probed only if its predicted cost is within this factor of the target.
_TOLERANCE = 1.05

#: The trial attribute naming how a seed-start proposal was made (``move: k=v`` or ``trade: k=v + …``).
MOVE_ATTR = SEED_MOVE_ATTR


@dataclass(frozen=True)
class _Move:
    name: str
    value: Any
    gain: float  # change of the accuracy objective, minimisation form (negative = better)
    cost: float  # change of log cost (negative = cheaper)


class SeedStart:
    """The seed-start plan of a sampler (see the module docstring).

    Args:
        trades: Trades proposed per seed after its moves (0 = moves only); half aim at the seed's cost,
            half at ``fast_target`` x it.
        moves: Evaluate every one-parameter move of each seed first (false = no seed start at all).
        n_buy: Accuracy-buying moves (the best measured) a trade may start from.
        n_save: Cost-saving moves (the least accuracy lost per log cost saved) a trade combines.
        max_saves: At most this many saving moves per trade.
        fast_target: The second cost target, relative to the seed's.
        slack: A buying move is tried only if its cost, less the best saves' additive savings, is within this
            factor of the seed's (coupled parameters make costs non-additive: the probes decide).
        max_probes: Probes per target and seed at most to confirm trades (each is one cheap evaluation:
            export + profile), besides one probe per (buying, saving) pair that measures their coupling.
    """

    def __init__(
        self,
        *,
        trades: int = 8,
        moves: bool = True,
        n_buy: int = 4,
        n_save: int = 8,
        max_saves: int = 3,
        fast_target: float = 0.85,
        slack: float = 1.35,
        max_probes: int = 12,
    ) -> None:
        self.trades = max(0, int(trades))
        self.moves = bool(moves)
        self.n_buy, self.n_save, self.max_saves = int(n_buy), int(n_save), int(max_saves)
        self.targets = (1.0, float(fast_target))
        self.slack = float(slack)
        self.max_probes = int(max_probes)
        self._probe: Probe | None = None
        self._cost_index: int | None = None
        self._probed: dict[tuple, float | None] = {}
        self._plans: dict[tuple, list[tuple[dict[str, Any], str]]] = {}

    def bind_probe(self, probe: Probe | None, cost_index: int | None) -> None:
        """Measure trade candidates with ``probe`` (objective ``cost_index`` of the study, minimised)."""
        self._probe, self._cost_index = probe, cost_index

    # ------------------------------------------------------------------------------------------------
    def propose(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, space: dict[str, BaseDistribution]
    ) -> dict[str, Any] | None:
        """The next planned architecture (full parameters of ``space``), or None when the plan is done.

        Records how it was made as the trial's ``seed_move`` attribute."""
        if not self.moves or not space or len(study.directions) != 2:
            return None
        names = sorted(space)
        trials = study.get_trials(deepcopy=False)
        seeds = [t for t in trials if t.user_attrs.get(SEEDED_ATTR) and _complete(t)]
        if not seeds:
            return None
        seen = {_key(t.params, names) for t in trials if t.number != trial.number and _has(t, names)}
        results = {
            _key(t.params, names): _minimised(study, t) for t in trials if _complete(t) and _has(t, names)
        }
        finished = {_key(t.params, names) for t in trials if t.state.is_finished() and _has(t, names)}
        for seed in seeds:
            if not _has(seed, names):
                continue
            base = {n: seed.params[n] for n in names}
            for params, how in self._plan(base, names, space, results, finished, study):
                if _key(params, names) not in seen:
                    study._storage.set_trial_user_attr(trial._trial_id, MOVE_ATTR, how)
                    return params
        return None

    def _plan(
        self,
        base: dict[str, Any],
        names: list[str],
        space: dict[str, BaseDistribution],
        results: dict[tuple, tuple[float, ...] | None],
        finished: set[tuple],
        study: optuna.Study,
    ) -> list[tuple[dict[str, Any], str]]:
        moves = [
            ({**base, n: c}, f"move: {n}={c}")
            for n in names
            for c in space[n].choices  # type: ignore[attr-defined]
            if c != base[n]
        ]
        pending = [p for p, _ in moves if _key(p, names) not in finished]
        if pending or self.trades == 0:
            return moves  # trades are planned from the moves' results, once all of them are in
        key = _key(base, names)
        if key not in self._plans:
            self._plans[key] = self._trades(base, names, moves, results, study)
        return moves + self._plans[key]

    def _trades(
        self,
        base: dict[str, Any],
        names: list[str],
        moves: list[tuple[dict[str, Any], str]],
        results: dict[tuple, tuple[float, ...] | None],
        study: optuna.Study,
    ) -> list[tuple[dict[str, Any], str]]:
        seed_v = results.get(_key(base, names))
        if seed_v is None:
            return []
        cost_i = self._cost_index if self._cost_index is not None else _last_minimised(study)
        gain_i = 1 - cost_i
        measured: list[_Move] = []
        for params, _ in moves:
            v = results.get(_key(params, names))
            if v is None or not all(math.isfinite(x) for x in v) or v[cost_i] <= 0 or seed_v[cost_i] <= 0:
                continue
            (name,) = [n for n in names if params[n] != base[n]]
            measured.append(
                _Move(name, params[name], v[gain_i] - seed_v[gain_i], math.log(v[cost_i] / seed_v[cost_i]))
            )
        saves = sorted((m for m in measured if m.cost < 0), key=lambda m: m.gain / -m.cost)[: self.n_save]
        buys = sorted(
            (m for m in measured if m.gain < 0 and m.cost > 0 and self._payable(m, saves)),
            key=lambda m: m.gain,
        )
        groups: list[list[tuple[float, float, tuple[_Move, ...]]]] = []
        for buy in [*buys[: self.n_buy], None]:
            coupling = self._coupling(buy, saves, base, names, seed_v[cost_i]) if buy else {}
            group = []
            for k in range(1, self.max_saves + 1):
                for extra in itertools.combinations(saves, k):
                    chosen = ((buy,) if buy else ()) + extra
                    if len({m.name for m in chosen}) == len(chosen):
                        cost = sum(m.cost for m in chosen) + sum(coupling.get(m, 0.0) for m in extra)
                        group.append((sum(m.gain for m in chosen), cost, chosen))
            groups.append(sorted(group, key=lambda c: (c[0], c[1])))  # the best predicted accuracy first
        plan: list[tuple[dict[str, Any], str]] = []
        taken: set[tuple] = set()
        goal = 0
        for target, want in zip(
            self.targets, (self.trades - self.trades // 2, self.trades // 2), strict=True
        ):
            goal += want  # a target's shortfall is not made up by the next one
            budget = [self.max_probes]
            queues = [iter(g) for g in groups if g]
            while len(plan) < goal and queues:
                for queue in list(queues):  # one trade per buy move in turn, so each buy gets its chance
                    found = self._first_fit(
                        queue, base, names, results, taken, target, seed_v[cost_i], budget
                    )
                    if found is None:
                        queues.remove(queue)
                    else:
                        plan.append(found)
                    if len(plan) >= goal:
                        break
            goal = len(plan)
        log.info(
            "search: seed start: %d moves measured; %d trade(s) planned%s",
            len(measured),
            len(plan),
            "".join(f"\n  {how}" for _, how in plan),
        )
        return plan

    def _payable(self, buy: _Move, saves: list[_Move]) -> bool:
        """Whether the best saves of other parameters can pay for ``buy`` (within the slack of the target)."""
        best = sorted(m.cost for m in saves if m.name != buy.name)[: self.max_saves]
        return buy.cost + sum(best) <= math.log(self.targets[0] * self.slack)

    def _coupling(
        self, buy: _Move, saves: list[_Move], base: dict[str, Any], names: list[str], seed_cost: float
    ) -> dict[_Move, float]:
        """For each save, how far the probed cost of seed + ``buy`` + it is from the sum of their own costs
        (log): e.g. a narrower first level saves far more on a wider stem. Empty without a probe."""
        if self._probe is None:
            return {}
        out = {}
        for save in saves:
            if save.name == buy.name:
                continue
            params = {**base, buy.name: buy.value, save.name: save.value}
            pkey = _key(params, names)
            if pkey not in self._probed:
                self._probed[pkey] = self._probe(params)
            measured = self._probed[pkey]
            if measured is not None and measured > 0:
                out[save] = math.log(measured / seed_cost) - buy.cost - save.cost
        return out

    def _first_fit(
        self,
        queue: Any,
        base: dict[str, Any],
        names: list[str],
        results: dict[tuple, tuple[float, ...] | None],
        taken: set[tuple],
        target: float,
        seed_cost: float,
        budget: list[int],
    ) -> tuple[dict[str, Any], str] | None:
        """The next combination of ``queue`` whose cost meets ``target`` × the seed's (probed when a probe is
        bound, each probe taken from ``budget``), or None when the queue or the budget runs out."""
        for gain, cost, chosen in queue:
            if cost > math.log(target * _TOLERANCE):
                continue
            params = {**base, **{m.name: m.value for m in chosen}}
            pkey = _key(params, names)
            if pkey in taken or pkey in results:
                continue
            if self._probe is not None:
                if pkey not in self._probed:
                    if budget[0] <= 0:
                        return None
                    budget[0] -= 1
                    self._probed[pkey] = self._probe(params)
                measured = self._probed[pkey]
                if measured is None or measured > target * seed_cost:
                    continue
                ratio = measured / seed_cost
            elif cost > math.log(target):
                continue
            else:
                ratio = math.exp(cost)
            taken.add(pkey)
            what = " + ".join(f"{m.name}={m.value}" for m in chosen)
            return params, f"trade: {what} (predicted gain {-gain:+.4f}, cost {ratio:.2f}x)"
        return None


def as_seed_start(value: Any) -> SeedStart | None:
    """A sampler's ``seed_start`` argument: a :class:`SeedStart`, its settings (a mapping), or None/false."""
    if value is None or value is False:
        return None
    if isinstance(value, SeedStart):
        return value
    if value is True:
        return SeedStart()
    try:
        return SeedStart(**dict(value))
    except TypeError as exc:
        raise ConfigError(
            f"{exc}",
            key="search.sampler.seed_start",
            fix="null, or settings of hwnas.search.samplers.seed_start.SeedStart, e.g. {trades: 6}",
        ) from None


def _key(params: dict[str, Any], names: Sequence[str]) -> tuple:
    return tuple(params[n] for n in names)


def _has(t: optuna.trial.FrozenTrial, names: Sequence[str]) -> bool:
    return all(n in t.params for n in names)


def _complete(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.values is not None


def _minimised(study: optuna.Study, t: optuna.trial.FrozenTrial) -> tuple[float, ...] | None:
    """A complete trial's values with maximised objectives negated; a promoted trial's (``search.fidelity``)
    at rung 0, so that every move is compared with its seed at the same training."""
    values = t.user_attrs.get(RUNG0_VALUES_ATTR) or t.values
    return tuple(
        v if d == StudyDirection.MINIMIZE else -v for v, d in zip(values, study.directions, strict=True)
    )


def _last_minimised(study: optuna.Study) -> int:
    minimised = [i for i, d in enumerate(study.directions) if d == StudyDirection.MINIMIZE]
    return minimised[-1] if minimised else len(study.directions) - 1

"""Objectives and constraints of a search, read from config and checked up front."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwnas.utils.errors import ConfigError

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class Objective:
    """One objective: a metric name an evaluator produces, and whether bigger is better."""

    name: str
    direction: str

    @property
    def worst(self) -> float:
        """The value told to Optuna for a candidate whose metric was never computed (infeasible)."""
        return -math.inf if self.direction == "maximize" else math.inf


def parse_objectives(node: Sequence[Mapping[str, Any]], *, available: Sequence[str]) -> list[Objective]:
    """Validate ``search.objectives`` against the metrics the evaluator can produce."""
    if not node:
        raise ConfigError("at least one objective is needed", key="search.objectives", choices=available)
    out: list[Objective] = []
    for i, item in enumerate(node):
        name = str(item.get("name", ""))
        direction = str(item.get("direction", "")).lower()
        if name not in available:
            raise ConfigError(
                f"unknown metric {name!r}",
                key=f"search.objectives[{i}].name",
                choices=available,
                fix="pick a metric the evaluator produces",
            )
        if direction not in DIRECTIONS:
            raise ConfigError(
                f"unknown direction {direction!r}",
                key=f"search.objectives[{i}].direction",
                choices=DIRECTIONS,
            )
        out.append(Objective(name, direction))
    if len({o.name for o in out}) != len(out):
        raise ConfigError("an objective is listed twice", key="search.objectives")
    return out


@dataclass(frozen=True)
class Constraint:
    """``metric <= max`` or ``metric >= min``; Optuna's convention: value ≤ 0 means satisfied."""

    name: str
    metric: str
    bound: float
    upper: bool

    def value(self, metrics: Mapping[str, Any]) -> float:
        v = float(metrics[self.metric])
        return v - self.bound if self.upper else self.bound - v


def parse_constraints(node: Mapping[str, Any] | None, *, available: Sequence[str]) -> list[Constraint]:
    """``search.constraints``: ``{<metric>: {max: x, min: y}}``; null bounds are ignored."""
    out: list[Constraint] = []
    for metric, bounds in (node or {}).items():
        if metric not in available:
            raise ConfigError(
                f"unknown metric {metric!r}", key=f"search.constraints.{metric}", choices=available
            )
        if bounds is None:
            continue
        if not isinstance(bounds, Mapping) or set(bounds) - {"min", "max"}:
            raise ConfigError(
                "must be a mapping with 'min' and/or 'max'",
                key=f"search.constraints.{metric}",
                fix=f"e.g. search.constraints.{metric}.max=5.0",
            )
        lo, hi = bounds.get("min"), bounds.get("max")
        if lo is not None and hi is not None and float(lo) > float(hi):
            raise ConfigError(
                f"min {lo} > max {hi}: no architecture can satisfy it", key=f"search.constraints.{metric}"
            )
        if hi is not None:
            out.append(Constraint(f"{metric}<={hi}", metric, float(hi), True))
        if lo is not None:
            out.append(Constraint(f"{metric}>={lo}", metric, float(lo), False))
    return out

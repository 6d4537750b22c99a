"""Numeric settings checked at start-up by every entry point: one table, one rule per kind.

A value of the wrong type or out of range would otherwise surface late and far from its key (a negative
learning rate fails every candidate and the search still exits 0; ``seed=abc`` fails inside whichever
component is instantiated first). A key absent from a config (another entry point's) is not checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hwnas.utils.errors import ConfigError

_MISSING = object()


@dataclass(frozen=True)
class Number:
    """``integer`` or any finite number, optionally bounded below (``strict``: the bound itself is out)."""

    integer: bool = False
    minimum: float | None = None
    strict: bool = False
    example: str = ""

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {'an integer' if self.integer else 'a number'}, got {value!r}"
        if self.integer and not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if not math.isfinite(float(value)):
            return f"must be finite, got {value!r}"
        if self.minimum is not None and (value <= self.minimum if self.strict else value < self.minimum):
            return f"must be {'>' if self.strict else '>='} {self.minimum:g}, got {value!r}"
        return None


#: Every numeric setting with a rule; add a row, not a check in the code that reads it.
NUMBERS: dict[str, Number] = {
    "seed": Number(integer=True, example="seed=0"),
    "search.n_workers": Number(integer=True, minimum=1, example="search.n_workers=2"),
    "search.heartbeat_s": Number(minimum=0, strict=True, example="search.heartbeat_s=10"),
    "search.grace_s": Number(minimum=0, strict=True, example="search.grace_s=60"),
    "optim.lr": Number(minimum=0, strict=True, example="optim.lr=0.004"),
    "optim.weight_decay": Number(minimum=0, example="optim.weight_decay=0.0001"),
}


def check_numbers(cfg: DictConfig, rules: dict[str, Number] | None = None) -> None:
    """Refuse the first numeric setting of ``cfg`` that breaks its rule in :data:`NUMBERS`.

    Raises:
        ConfigError: naming the key, what is wrong and an example of a valid value.
    """
    for key, rule in (rules or NUMBERS).items():
        value = OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
        if value is _MISSING or value is None:
            continue
        problem = rule.problem(value)
        if problem:
            raise ConfigError(problem, key=key, fix=f"e.g. {rule.example}" if rule.example else None)

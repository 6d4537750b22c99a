"""The promotion rungs of a multi-fidelity schedule (``search.fidelity.rungs``): each a longer training.

Rung 0 is the evaluator's own partial training (``evaluator.max_epochs`` × ``limit_train_batches`` at
``evaluator.image_size``). Rung ``i ≥ 1`` trains a promoted candidate on from the weights rung ``i − 1``
left, with its own epochs, batches, resolution and (optionally) learning rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hwnas.data.base import parse_image_size
from hwnas.utils.errors import ConfigError

KEYS = ("max_epochs", "limit_train_batches", "image_size", "lr")


@dataclass(frozen=True)
class Rung:
    """One promotion: ``max_epochs`` × ``limit_train_batches`` more at ``image_size`` (``None`` = the
    dataset's), with learning rate ``lr`` (``None`` = ``optim.lr``). ``index`` counts from 1."""

    index: int
    max_epochs: int
    limit_train_batches: float | int
    image_size: tuple[int, int] | None = None
    lr: float | None = None

    def describe(self) -> str:
        size = "dataset size" if self.image_size is None else "x".join(map(str, self.image_size))
        lr = "" if self.lr is None else f", lr {self.lr:g}"
        return f"+{self.max_epochs} epoch(s) x {self.limit_train_batches} batches at {size}{lr}"


def parse_rungs(
    node: Sequence[Mapping[str, Any]] | None, *, key: str = "search.fidelity.rungs"
) -> list[Rung]:
    """``search.fidelity.rungs``: a list of ``{max_epochs, limit_train_batches, image_size?, lr?}``."""
    out: list[Rung] = []
    for i, item in enumerate(node or [], start=1):
        where = f"{key}[{i - 1}]"
        if not isinstance(item, Mapping) or set(item) - set(KEYS):
            raise ConfigError(
                f"must be a mapping of {', '.join(KEYS)}, got {item!r}",
                key=where,
                choices=KEYS,
                fix=f"e.g. {key}=[{{max_epochs: 3, limit_train_batches: 32, image_size: 64}}]",
            )
        epochs, batches = item.get("max_epochs"), item.get("limit_train_batches", 1.0)
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"must be a positive integer, got {epochs!r}", key=f"{where}.max_epochs")
        if not isinstance(batches, int | float) or isinstance(batches, bool) or batches <= 0:
            raise ConfigError(
                f"must be a number of batches or a fraction, got {batches!r}",
                key=f"{where}.limit_train_batches",
            )
        size = item.get("image_size")
        lr = item.get("lr")
        if lr is not None and (not isinstance(lr, int | float) or lr <= 0):
            raise ConfigError(f"must be a positive learning rate or null, got {lr!r}", key=f"{where}.lr")
        out.append(
            Rung(
                index=i,
                max_epochs=epochs,
                limit_train_batches=batches,
                image_size=None if size is None else parse_image_size(size, key=f"{where}.image_size"),
                lr=None if lr is None else float(lr),
            )
        )
    return out

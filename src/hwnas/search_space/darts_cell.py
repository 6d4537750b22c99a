"""``search_space=darts_cell``: the DARTS cell space (Liu et al., ICLR 2019), a normal and a reduction cell.

Flat parameter names (always all 24 present, so NSGA-II crosses over every one and every random draw is
valid): for ``cell`` in (normal, reduce) and node ``i`` in 0..3, ``{cell}_n{i}_inputs`` ∈ the pairs
``"a-b"`` (``a < b``) of the node's ``i + 2`` predecessors (0 = ``c_{k-2}``, 1 = ``c_{k-1}``, 2.. = earlier
nodes), and ``{cell}_n{i}_op0`` / ``{cell}_n{i}_op1`` ∈ the 7 non-``none`` ops, applied to inputs ``a``
and ``b``. The same genotype builds the discrete :class:`~hwnas.models.darts_cell.DartsNet`, and a
gradient search over :meth:`DartsCellSpace.mixed_supernet` ends in these parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.models.darts_cell import DartsNet, DartsSearchNet
from hwnas.models.darts_ops import CELL_OPS, CELL_TYPES, STEPS, Genotype, input_choices
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import ConfigError, InvalidArchError

# The published DARTS (second order) genotype, "DARTS V2" of the paper: 2.76 % CIFAR-10 test error.
DARTS_V2 = Genotype(
    normal=(
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("skip_connect", 0),
        ("dil_conv_3x3", 2),
    ),
    reduce=(
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
    ),
)


class DartsCellSpace(SearchSpace):
    """The DARTS cell space, built as the paper's macro network (reductions at 1/3 and 2/3 of the depth).

    Args:
        channels: Width C of the first cells of the built (evaluation) network; the paper uses 36.
        layers: Cells of the built network (at least 3); the paper uses 20.
        stem_multiplier: Stem width relative to C.
        baseline: The genotype :meth:`baseline` returns, as a full flat parameter mapping; ``None`` = the
            published DARTS V2 cell.
    """

    name = "darts_cell"

    def __init__(
        self,
        *,
        channels: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
        baseline: Mapping[str, Any] | None = None,
    ) -> None:
        self.channels = _positive(channels, "channels")
        self.layers = _depth(layers, "search_space.layers")
        self.stem_multiplier = _positive(stem_multiplier, "stem_multiplier")
        self._choices: dict[str, list[Any]] = {}
        for cell in CELL_TYPES:
            for i in range(STEPS):
                self._choices[f"{cell}_n{i}_inputs"] = input_choices(i)
                self._choices[f"{cell}_n{i}_op0"] = list(CELL_OPS)
                self._choices[f"{cell}_n{i}_op1"] = list(CELL_OPS)
        self._baseline = {str(k): v for k, v in (baseline or DARTS_V2.to_params()).items()}
        try:
            self.make(self._baseline)
        except InvalidArchError as err:
            raise ConfigError(
                f"baseline is not a valid DARTS genotype: {err.message}",
                key="search_space.baseline",
                choices=err.choices,
                fix="give every {cell}_n{i}_{inputs,op0,op1} parameter, or null for the DARTS V2 cell",
            ) from err

    def choices(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self._choices.items()}

    def genotype(self, spec: ArchSpec) -> Genotype:
        """``spec`` as DARTS's readable genotype: ``(op, input)`` pairs, two per node, per cell type."""
        self.validate(spec)
        return Genotype.from_params(spec.values)

    def baseline(self) -> ArchSpec:
        """The reference cell (by default DARTS V2), the architecture a latency-aware search should beat."""
        return self.make(self._baseline)

    def build(self, spec: ArchSpec, *, num_classes: int = 10, in_channels: int = 3) -> DartsNet:
        """The discrete network of ``spec`` at this space's size (affine BN, no auxiliary head)."""
        return DartsNet(
            self.genotype(spec),
            num_classes=num_classes,
            in_channels=in_channels,
            channels=self.channels,
            layers=self.layers,
            stem_multiplier=self.stem_multiplier,
        )

    def mixed_supernet(
        self,
        *,
        num_classes: int,
        in_channels: int = 3,
        channels: int | None = None,
        layers: int | None = None,
    ) -> DartsSearchNet:
        """The DARTS search network over this space (every edge mixes all 8 ops).

        Args:
            num_classes: Classifier outputs.
            in_channels: Input image channels.
            channels: Width C of the search network; ``None`` = this space's (the paper searches with 16
                and evaluates with 36).
            layers: Cells of the search network; ``None`` = this space's (the paper: 8 in the search, 20
                in the evaluation).
        """
        return DartsSearchNet(
            num_classes=num_classes,
            in_channels=in_channels,
            channels=self.channels if channels is None else _positive(channels, "channels"),
            layers=self.layers if layers is None else _depth(layers, "layers"),
            stem_multiplier=self.stem_multiplier,
        )

    def check(self, spec: ArchSpec, *, input_size: tuple[int, int] | None = None) -> None:
        if input_size is not None and min(input_size) < 4:
            raise InvalidArchError(
                f"input {tuple(input_size)} is too small for two stride-2 reduction cells",
                key="dataset.image_size",
                fix="use images of at least 4x4 (DARTS uses 32x32 CIFAR images)",
            )


def _positive(value: Any, key: str) -> int:
    if int(value) < 1:
        raise ConfigError(f"must be a positive integer, got {value!r}", key=f"search_space.{key}")
    return int(value)


def _depth(value: Any, key: str) -> int:
    if int(value) < 3:
        raise ConfigError(
            f"a DARTS network needs at least 3 cells (normal, reduce, reduce), got {value!r}",
            key=key,
            fix="use layers >= 3 (the paper: 8 cells to search, 20 to evaluate)",
        )
    return int(value)

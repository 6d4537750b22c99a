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

import networkx as nx

from hwnas.models.darts_cell import DartsNet, DartsSearchNet
from hwnas.models.darts_ops import CELL_OPS, CELL_TYPES, STEPS, Genotype, input_choices
from hwnas.models.growth import GrowthMove
from hwnas.search_space import darts_growth
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

    def arch_graph(self, spec: ArchSpec) -> nx.DiGraph:
        """Both cells as two components (node ids prefixed ``normal/``, ``reduce/``), one band each.

        Each cell: the inputs ``c_{k-2}`` and ``c_{k-1}``, the intermediate nodes (two edges each, labelled
        with their ops) and the output that concatenates them. A ``{cell}_nodes`` parameter, where the
        space has one, limits the nodes to ``0..n-1``; otherwise all 4 are drawn.
        """
        self.validate(spec)
        values = spec.values
        graph = nx.DiGraph(name=spec.key)
        for cell in CELL_TYPES:
            steps = int(values.get(f"{cell}_nodes", STEPS))
            ids = [f"{cell}/c_k-2", f"{cell}/c_k-1", *(f"{cell}/{i}" for i in range(steps))]
            graph.add_node(ids[0], label="c_{k-2}", kind="input", group=cell)
            graph.add_node(ids[1], label="c_{k-1}", kind="input", group=cell)
            for i in range(steps):
                graph.add_node(ids[i + 2], label=str(i), kind="node", group=cell)
                a, b = (int(s) for s in str(values[f"{cell}_n{i}_inputs"]).split("-"))
                graph.add_edge(ids[a], ids[i + 2], label=str(values[f"{cell}_n{i}_op0"]))
                graph.add_edge(ids[b], ids[i + 2], label=str(values[f"{cell}_n{i}_op1"]))
            graph.add_node(f"{cell}/out", label=f"{cell}\nconcat", kind="output", group=cell)
            graph.add_edges_from(((n, f"{cell}/out") for n in ids[2:]), label="")
        return graph

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

    def growth_seed(self) -> ArchSpec:
        """Petridish's start: every op ``skip_connect`` (:mod:`.darts_growth`)."""
        return darts_growth.growth_seed(self)

    def growth_moves(self, spec: ArchSpec) -> list[GrowthMove]:
        """Petridish's candidate moves from ``spec``: a heavier op beside each edge's op."""
        return darts_growth.growth_moves(self, spec)

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

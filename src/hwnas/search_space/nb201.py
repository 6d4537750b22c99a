"""``search_space=nb201``: the NAS-Bench-201 cell space (6 edges x 5 operations = 15,625 cells).

Parameters are the six edges ``edge_<to>_<from>`` in arch-string order (node1<-0, node2<-0, node2<-1,
node3<-0, node3<-1, node3<-2). The key of an architecture is its NB201 string
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, so results join the benchmark table directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from hwnas.models.nb201 import EDGES, OPS, NB201Network
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import ConfigError, InvalidArchError

PARAM_NAMES = tuple(f"edge_{dst}_{src}" for dst, src in EDGES)
# Hand-designed: 3x3 convolutions on every path plus an identity shortcut to the output. Accurate
# (94.36 % CIFAR-10 in the table) but slow (35 ms on a Pixel 3): the reference a latency-aware search
# should beat on speed at little accuracy cost.
BASELINE_ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)


def arch_string(ops: Sequence[str]) -> str:
    """The NB201 string of six edge operations given in ``PARAM_NAMES`` order."""
    nodes: dict[int, list[str]] = {1: [], 2: [], 3: []}
    for op, (dst, src) in zip(ops, EDGES, strict=True):
        nodes[dst].append(f"{op}~{src}")
    return "+".join("|" + "|".join(nodes[i]) + "|" for i in (1, 2, 3))


def parse_arch_string(text: str) -> dict[str, str]:
    """Edge parameters of an NB201 string; raises ``InvalidArchError`` saying what is malformed."""
    fix = "write it as |op~0|+|op~0|op~1|+|op~0|op~1|op~2| with ops from the listed choices"
    parts = str(text).strip().split("+")
    if len(parts) != 3:
        raise InvalidArchError(f"NB201 string needs 3 nodes separated by '+': {text!r}", key="arch", fix=fix)
    params: dict[str, str] = {}
    for node, part in enumerate(parts, start=1):
        tokens = [t for t in part.strip().strip("|").split("|") if t] if part.strip("|") else []
        if len(tokens) != node:
            raise InvalidArchError(f"node {node} needs {node} inputs in {text!r}", key="arch", fix=fix)
        for src, token in enumerate(tokens):
            op, _, idx = token.partition("~")
            if op not in OPS or idx != str(src):
                raise InvalidArchError(
                    f"bad edge '{token}' (node {node}, input {src}) in {text!r}",
                    key="arch",
                    choices=[f"{o}~{src}" for o in OPS],
                    fix=fix,
                )
            params[f"edge_{node}_{src}"] = op
    return params


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space, built as the benchmark's network (C=16, N=5 by default).

    Args:
        ops: Allowed operations per edge (default: the benchmark's five).
        channels: Width C of the first stage.
        cells_per_stage: Cells N per stage.
        baseline: NB201 string returned by :meth:`baseline`.
    """

    name = "nb201"

    def __init__(
        self,
        *,
        ops: Sequence[str] = OPS,
        channels: int = 16,
        cells_per_stage: int = 5,
        baseline: str = BASELINE_ARCH,
    ) -> None:
        unknown = [o for o in ops if o not in OPS]
        if unknown or not ops:
            raise ConfigError(f"unknown or no NB201 ops {unknown}", key="search_space.ops", choices=OPS)
        if int(channels) < 1 or int(cells_per_stage) < 1:
            raise ConfigError(
                "channels and cells_per_stage must be positive",
                key="search_space.channels",
                fix="use the benchmark's channels=16, cells_per_stage=5 to match the table",
            )
        self.ops = [str(o) for o in ops]
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)
        self._baseline = str(baseline)

    def choices(self) -> dict[str, list[Any]]:
        return {n: list(self.ops) for n in PARAM_NAMES}

    def key_of(self, params: Mapping[str, Any]) -> str:
        return arch_string([params[n] for n in PARAM_NAMES])

    def from_arch_string(self, text: str) -> ArchSpec:
        """The spec of an NB201 string (the ``arch`` column of the benchmark table)."""
        return self.make(parse_arch_string(text))

    def describe(self, spec: ArchSpec) -> str:
        """The NB201 string: the ``arch`` column of trials.csv matches the benchmark table's."""
        return spec.key

    def parse(self, text: str) -> ArchSpec:
        text = text.strip()
        return self.from_arch_string(text) if text.startswith("|") else super().parse(text)

    def baseline(self) -> ArchSpec:
        """A good hand-picked cell (ResNet-like), the reference every search should beat."""
        return self.from_arch_string(self._baseline)

    def ops_of(self, spec: ArchSpec) -> list[str]:
        """The six edge operations of ``spec`` in arch-string order."""
        values = spec.values
        return [values[n] for n in PARAM_NAMES]

    def arch_graph(self, spec: ArchSpec) -> nx.DiGraph:
        """The cell as its usual diamond: nodes 0 (input) to 3 (output), one edge per op (``none`` omitted).

        Nodes 1 and 2 share the middle column (``layer``), so the 0→3 edge runs between them.
        """
        graph = nx.DiGraph(name=spec.key)
        ends = {0: ("0 in", "input"), 3: ("3 out", "output")}
        for node in range(4):
            label, kind = ends.get(node, (str(node), "node"))
            graph.add_node(node, label=label, kind=kind, layer=(node + 1) // 2)
        for op, (dst, src) in zip(self.ops_of(spec), EDGES, strict=True):
            if op != "none":
                graph.add_edge(src, dst, label=op)
        return graph

    def build(self, spec: ArchSpec, *, num_classes: int = 10, in_channels: int = 3) -> NB201Network:
        """The benchmark network of ``spec`` (CIFAR-sized input, any side >= 4 works)."""
        self.validate(spec)
        return NB201Network(
            self.ops_of(spec),
            num_classes=num_classes,
            in_channels=in_channels,
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
        )

    def check(self, spec: ArchSpec, *, input_size: tuple[int, int] | None = None) -> None:
        if input_size is not None and min(input_size) < 4:
            raise InvalidArchError(
                f"input {input_size} is too small for two stride-2 reductions",
                key="dataset.image_size",
                fix="use images of at least 4x4 (the benchmark uses 32x32)",
            )

"""DARTS building blocks (Liu et al., ICLR 2019) in plain torch: ops, genotype encoding, macro skeleton.

Never imports Lightning. The networks built from these pieces live in :mod:`hwnas.models.darts_cell`.

**Ops.** The eight candidate operations. Every op maps ``(N, C, H, W)`` to ``(N, C, ⌈H/s⌉, ⌈W/s⌉)`` for stride ``s`` ∈ {1, 2}, so the ops of one
edge can be mixed. BatchNorm is ``affine=False`` in the search network (the architecture weights scale
the outputs; learnable BN scales would fight them) and ``affine=True`` in the discrete network. Every op
exports to ONNX (opset 17) and runs in onnxruntime.

**Genotype.** A cell has 4 nodes; its inputs are numbered 0 (``c_{k-2}``), 1 (``c_{k-1}``), then 2..5
for the nodes, and node ``i`` may read any of its ``i + 2`` predecessors (14 edges per search cell,
``EDGES`` order). A discrete cell keeps 2 inputs per node, as flat parameters shared with
``search_space=darts_cell``: for ``cell`` in (normal, reduce) and ``i`` in 0..3, ``{cell}_n{i}_inputs``
(``"a-b"``, two distinct predecessors, ``a < b``) and ``{cell}_n{i}_op0`` / ``_op1`` (the ops on inputs
``a`` and ``b``), always all present.

**Macro skeleton.** Stem, per-cell preprocessing, head and the cell plan shared by both networks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# The DARTS paper's order (its ``PRIMITIVES``), so α matrices read the same as in other DARTS code.
OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# The ops a finalized cell may hold (``none`` only ever competes during the search).
CELL_OPS = tuple(op for op in OPS if op != "none")
STEPS = 4
CELL_TYPES = ("normal", "reduce")
# (node, input) of the 14 mixed edges of a search cell, grouped by node.
EDGES = tuple((node, src) for node in range(STEPS) for src in range(node + 2))
PARAM_NAMES = tuple(
    f"{cell}_n{i}_{part}" for cell in CELL_TYPES for i in range(STEPS) for part in ("inputs", "op0", "op1")
)


class ReLUConvBN(nn.Sequential):
    """ReLU → ``k×k`` conv (no bias) → BN: DARTS's cell-input preprocessing (``k=1``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise ``k×k`` conv (stride, dilation) → pointwise conv → BN."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int, *, affine: bool = True
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel,
                stride=stride,
                padding=dilation * (kernel - 1) // 2,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """DARTS's separable conv: two stacked ReLU-dwconv-pwconv-BN blocks, the first carrying the stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, *, affine: bool = True) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, 1, affine=affine),
            DilConv(c_in, c_out, kernel, 1, 1, affine=affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing pixels: two stride-2 1x1 convs, one shifted by a pixel.

    Odd sides are padded on the bottom/right before the shifted conv, so the output is ``⌈H/2⌉ × ⌈W/2⌉``
    like every other stride-2 op (DARTS itself only handles even sides; for even sides the graph is
    DARTS's, with no Pad node).
    """

    def __init__(self, c_in: int, c_out: int, *, affine: bool = True) -> None:
        super().__init__()
        if c_out < 2:
            raise ValueError(f"FactorizedReduce needs at least 2 output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        h, w = int(x.shape[-2]), int(x.shape[-1])
        shifted = x[:, :, 1:, 1:]
        if h % 2 or w % 2:
            shifted = F.pad(shifted, (0, w % 2, 0, h % 2))
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int = 1, affine: bool = True) -> nn.Module | None:
    """The module of one DARTS op on ``channels`` channels; ``None`` for ``none`` (contributes nothing).

    Args:
        name: One of :data:`OPS`.
        channels: Input and output channels.
        stride: 1, or 2 on the input edges of a reduction cell.
        affine: Learnable BN scale/shift (``False`` in the search network, ``True`` in the final one).

    Raises:
        ValueError: For an unknown op name or a stride other than 1 or 2.
    """
    if stride not in (1, 2):
        raise ValueError(f"DARTS ops take stride 1 or 2, got {stride}")
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine=affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(channels, channels, int(name[-1]), stride, affine=affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(channels, channels, int(name[-1]), stride, 2, affine=affine)
    raise ValueError(f"unknown DARTS op {name!r}; expected one of {OPS}")


# ----- genotype encoding -----------------------------------------------------------------------------


Gene = tuple[tuple[str, int], ...]  # 2 (op, input) pairs per node, inputs ascending: 8 pairs per cell


def input_choices(node: int) -> list[str]:
    """The allowed ``inputs`` values of ``node``: pairs ``"a-b"`` of its ``node + 2`` predecessors."""
    return [f"{a}-{b}" for a, b in combinations(range(node + 2), 2)]


@dataclass(frozen=True)
class Genotype:
    """A discrete DARTS architecture: the (op, input) pairs of the normal and the reduction cell.

    Each cell lists 2 pairs per node (8 in all); within a node they are stored by ascending input, so
    genotypes that differ only in that order compare equal.
    """

    normal: Gene
    reduce: Gene

    def __post_init__(self) -> None:
        for cell in CELL_TYPES:
            gene = [(str(op), int(src)) for op, src in getattr(self, cell)]
            if len(gene) != 2 * STEPS:
                raise ValueError(f"the {cell} cell needs {2 * STEPS} (op, input) pairs, got {len(gene)}")
            pairs = (sorted(gene[i : i + 2], key=lambda g: g[1]) for i in range(0, len(gene), 2))
            object.__setattr__(self, cell, tuple(g for pair in pairs for g in pair))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Genotype:
        """The genotype of the flat parameters (see the module docstring)."""
        genes: dict[str, list[tuple[str, int]]] = {c: [] for c in CELL_TYPES}
        for cell in CELL_TYPES:
            for i in range(STEPS):
                a, b = (int(s) for s in str(params[f"{cell}_n{i}_inputs"]).split("-"))
                genes[cell] += [(str(params[f"{cell}_n{i}_op0"]), a), (str(params[f"{cell}_n{i}_op1"]), b)]
        return cls(normal=tuple(genes["normal"]), reduce=tuple(genes["reduce"]))

    def to_params(self) -> dict[str, str]:
        """The flat parameters of this genotype."""
        params: dict[str, str] = {}
        for cell in CELL_TYPES:
            gene = getattr(self, cell)
            for i in range(STEPS):
                (op0, a), (op1, b) = gene[2 * i : 2 * i + 2]
                if a == b:
                    raise ValueError(f"node {i} of the {cell} cell reads input {a} twice")
                params |= {
                    f"{cell}_n{i}_inputs": f"{a}-{b}",
                    f"{cell}_n{i}_op0": op0,
                    f"{cell}_n{i}_op1": op1,
                }
        return params


def finalize_alphas(alphas: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """DARTS's discretization of ``{"normal": α, "reduce": α}`` (each ``(14, 8)``) into flat parameters.

    Per node, an edge's strength is its largest softmax weight over the non-``none`` ops; the node keeps
    its 2 strongest input edges, each with its strongest non-``none`` op. Ties go to the lower input,
    then to the lower op index (stable sorts), so equal α always give the same genotype.
    """
    keep = [OPS.index(op) for op in CELL_OPS]
    genes: dict[str, list[tuple[str, int]]] = {}
    for cell in CELL_TYPES:
        w = torch.as_tensor(alphas[cell]).detach().double().cpu().softmax(dim=-1).numpy()[:, keep]
        genes[cell] = []
        start = 0
        for i in range(STEPS):
            rows = w[start : start + i + 2]
            strongest = np.argsort(-rows.max(axis=1), kind="stable")[:2]
            genes[cell] += [(CELL_OPS[int(np.argmax(rows[j]))], int(j)) for j in sorted(strongest)]
            start += i + 2
    return Genotype(normal=tuple(genes["normal"]), reduce=tuple(genes["reduce"])).to_params()


def count_skips(params: Mapping[str, Any]) -> int:
    """The number of ``skip_connect`` ops in the normal cell of flat parameters ``params``."""
    return sum(op == "skip_connect" for op, _ in Genotype.from_params(params).normal)


# ----- macro skeleton pieces shared by the search and the discrete network ----------------------------


@dataclass(frozen=True)
class CellPlan:
    """Where a cell sits in the macro skeleton."""

    reduction: bool
    reduction_prev: bool
    c_prev_prev: int
    c_prev: int
    channels: int


def macro_plan(
    channels: int, layers: int, stem_multiplier: int, *, nodes: int = STEPS
) -> tuple[int, tuple[CellPlan, ...], int]:
    """``(stem channels, one plan per cell, channels of the last cell's output)``.

    Reduction cells (stride 2, channels doubled) sit at ``layers // 3`` and ``2 * layers // 3``; a cell
    outputs the concatenation of its ``nodes`` nodes.
    """
    c_stem = stem_multiplier * channels
    c_pp, c_p, c = c_stem, c_stem, channels
    plans, reduction_prev = [], False
    for k in range(layers):
        reduction = k in (layers // 3, 2 * layers // 3)
        c = 2 * c if reduction else c
        plans.append(CellPlan(reduction, reduction_prev, c_pp, c_p, c))
        c_pp, c_p, reduction_prev = c_p, nodes * c, reduction
    return c_stem, tuple(plans), c_p


def make_stem(c_in: int, c_out: int) -> nn.Module:
    """3x3 conv → BN (affine in both networks, as in DARTS)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))


def make_head(c_in: int, num_classes: int) -> nn.Module:
    """Global average pooling → linear classifier: ``(N, c_in, H, W)`` → logits ``(N, num_classes)``."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c_in, num_classes))


def make_preprocess(plan: CellPlan, *, affine: bool) -> tuple[nn.Module, nn.Module]:
    """The modules that bring a cell's two inputs to ``plan.channels`` at the cell's input resolution."""
    c = plan.channels
    pre0 = (
        FactorizedReduce(plan.c_prev_prev, c, affine=affine)
        if plan.reduction_prev
        else ReLUConvBN(plan.c_prev_prev, c, 1, affine=affine)
    )
    return pre0, ReLUConvBN(plan.c_prev, c, 1, affine=affine)


def edge_stride(plan: CellPlan, src: int) -> int:
    """Stride of an edge from input ``src``: 2 from the cell inputs of a reduction cell, else 1."""
    return 2 if plan.reduction and src < 2 else 1


def half(hw: tuple[int, int]) -> tuple[int, int]:
    """The output side of a stride-2 op (``⌈h/2⌉``)."""
    return (hw[0] + 1) // 2, (hw[1] + 1) // 2

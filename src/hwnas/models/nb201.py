"""NAS-Bench-201 cell networks in plain torch (never imports Lightning).

The macro skeleton follows the benchmark (Dong & Yang, ICLR 2020) so that parameter counts match the
table's ``params`` column for C=16, N=5: a 3x3 stem, three stages of N cells at C, 2C and 4C channels
separated by residual reduction blocks, then BN-ReLU, global pooling and a linear classifier. A cell
is a DAG of 4 nodes; every edge j -> i applies one operation and a node sums its incoming edges.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of the 6 edges, in the order of the arch string.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv (no bias) -> BN: the benchmark's convolution op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def make_op(name: str, channels: int) -> nn.Module | None:
    """The module for one edge; ``None`` for ``none`` (the edge contributes nothing)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}; expected one of {OPS}")


class NB201Cell(nn.Module):
    """One searched cell: ``ops[k]`` sits on edge ``EDGES[k]``; the output is node 3.

    ``none`` edges are skipped rather than multiplied by zero; a node with no live input is zero, so an
    all-``none`` path gives the benchmark's chance-level network.
    """

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        if len(ops) != len(EDGES):
            raise ValueError(f"an NB201 cell has {len(EDGES)} edges, got {len(ops)} ops")
        self.ops = tuple(ops)
        self.edges = nn.ModuleList([make_op(o, channels) or nn.Identity() for o in ops])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for k, (dst, src) in enumerate(EDGES):
            inp = nodes[src]
            if self.ops[k] == "none" or inp is None:
                continue
            out = self.edges[k](inp)
            cur = nodes[dst]
            nodes[dst] = out if cur is None else cur + out
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class ResidualReduction(nn.Module):
    """Stride-2 residual block between stages: two ReLU-conv-BN plus an avg-pool + 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The benchmark's network for one cell genotype.

    Args:
        ops: The 6 edge operations, in arch-string order.
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        channels: Width C of the first stage (2C and 4C follow); the benchmark uses 16.
        cells_per_stage: N cells per stage; the benchmark uses 5.
    """

    def __init__(
        self,
        ops: Sequence[str],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> None:
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        blocks: list[nn.Module] = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                blocks.append(ResidualReduction(width // 2, width))
            blocks.extend(NB201Cell(ops, width) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU(inplace=False), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(4 * c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.head(self.cells(self.stem(x))).flatten(1)
        return self.classifier(feats)

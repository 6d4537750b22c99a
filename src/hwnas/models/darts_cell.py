"""DARTS cell networks (Liu et al., ICLR 2019) in plain torch: the search network and the discrete one.

Both share the paper's macro skeleton: a 3x3 conv + BN stem of ``stem_multiplier · C`` channels, then
``layers`` cells with reduction cells (stride 2, channels doubled) at ``layers // 3`` and
``2 · layers // 3``, then global average pooling and a linear classifier. A cell preprocesses the outputs
of the two previous cells (a FactorizedReduce when the older one is at twice the resolution, else a 1x1
ReLU-conv-BN), computes 4 nodes, and concatenates them. In the search network node ``i`` sums a
:class:`MixedOp` over each of its ``i + 2`` predecessors (14 edges per cell); the discrete network keeps
the two ops per node of a :class:`Genotype`. Input numbering, edge order and the flat genotype
parameters are documented in :mod:`hwnas.models.darts_ops`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hwnas.models.darts_ops import (
    CELL_OPS,
    CELL_TYPES,
    EDGES,
    OPS,
    STEPS,
    CellPlan,
    Gene,
    Genotype,
    count_skips,
    edge_stride,
    finalize_alphas,
    half,
    macro_plan,
    make_head,
    make_op,
    make_preprocess,
    make_stem,
)
from hwnas.models.mixed import DifferentiableSupernet, MixedOp

# (latency name, input shape, part) of each fixed-part instance; part = ("stem"|"pre0"|"pre1"|"head", plan)
_Fixed = list[tuple[str, tuple[int, ...], tuple[str, CellPlan | None]]]


class DartsCell(nn.Module):
    """One discrete cell: node ``i`` sums ``gene[2i]`` and ``gene[2i+1]`` applied to their inputs."""

    def __init__(self, plan: CellPlan, gene: Gene) -> None:
        super().__init__()
        if len(gene) != 2 * STEPS or any(
            op not in CELL_OPS or not 0 <= src < k // 2 + 2 for k, (op, src) in enumerate(gene)
        ):
            raise ValueError(
                f"a DARTS cell needs {2 * STEPS} (op, input) pairs, ops in {CELL_OPS}, node i reading inputs < i + 2"
            )
        self.pre0, self.pre1 = make_preprocess(plan, affine=True)
        self.inputs = [int(src) for _, src in gene]
        self.ops = nn.ModuleList(make_op(op, plan.channels, edge_stride(plan, src)) for op, src in gene)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(STEPS):
            a, b = 2 * i, 2 * i + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class DartsNet(nn.Module):
    """The discrete DARTS network of a genotype (affine BN; no auxiliary head, no drop-path).

    Args:
        genotype: The normal and reduction cells.
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        channels: Width C of the first cells (doubled at each reduction); the paper evaluates C=36.
        layers: Number of cells; the paper evaluates 20.
        stem_multiplier: Stem width relative to C.
    """

    def __init__(
        self,
        genotype: Genotype,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.genotype = genotype
        c_stem, plans, c_out = macro_plan(channels, layers, stem_multiplier, nodes=STEPS)
        self.stem = make_stem(in_channels, c_stem)
        self.cells = nn.ModuleList(
            DartsCell(p, genotype.reduce if p.reduction else genotype.normal) for p in plans
        )
        self.head = make_head(c_out, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)


def make_search_op(name: str, channels: int, stride: int) -> nn.Module | None:
    """A candidate op of a search edge, with non-affine BN.

    Pools get a non-affine BN too (as in DARTS), so their output scale matches the convolutions' and α
    compares like with like.
    """
    op = make_op(name, channels, stride, affine=False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    return op


class DartsSearchCell(nn.Module):
    """A search cell: node ``i`` sums a :class:`MixedOp` over all 8 ops on each of its ``i + 2`` inputs."""

    def __init__(self, plan: CellPlan) -> None:
        super().__init__()
        self.pre0, self.pre1 = make_preprocess(plan, affine=False)
        self.strides = [edge_stride(plan, src) for _, src in EDGES]
        self.edges = nn.ModuleList(
            MixedOp([make_search_op(o, plan.channels, s) for o in OPS]) for s in self.strides
        )

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, aux_skip: float = 0.0
    ) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(STEPS):
            node: torch.Tensor | None = None
            for h in list(states):
                y = self.edges[e](h, weights[e], aux_skip if self.strides[e] == 1 else 0.0)
                node = y if node is None else node + y
                e += 1
            states.append(node)
        return torch.cat(states[2:], dim=1)


class DartsSearchNet(DifferentiableSupernet):
    """The DARTS search network: every edge of every cell mixes all 8 ops with externally given weights.

    ``weights`` / ``α`` groups are ``normal`` and ``reduce``, each ``(14, 8)``: rows follow ``EDGES``,
    columns ``OPS``. All normal cells share one weight matrix, all reduction cells the other. The
    architecture parameters are never parameters of this module (see :mod:`hwnas.models.mixed`).

    Args:
        num_classes: Classifier outputs.
        in_channels: Input image channels.
        channels: Width C of the first cells; the paper searches with C=16.
        layers: Number of cells; the paper searches with 8.
        stem_multiplier: Stem width relative to C.
        latency_edges: What :meth:`expected_latency` counts per node. ``"kept"`` (default): the latency
            of the discrete network a finalizer can make (two edges per node, never ``none``), in
            expectation; ``"all"`` counts every edge of the mixture, ``none`` at 0 (the search network's
            own cost).
    """

    def __init__(
        self,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        channels: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
        latency_edges: str = "kept",
    ) -> None:
        super().__init__()
        if latency_edges not in ("kept", "all"):
            raise ValueError(f"latency_edges must be 'kept' or 'all', got {latency_edges!r}")
        self.num_classes = int(num_classes)
        self.latency_edges = latency_edges
        self.c_stem, self.plans, self.c_out = macro_plan(channels, layers, stem_multiplier, nodes=STEPS)
        self.stem = make_stem(in_channels, self.c_stem)
        self.cells = nn.ModuleList(DartsSearchCell(p) for p in self.plans)
        self.head = make_head(self.c_out, num_classes)
        self._latency_shape: tuple[int, ...] | None = None
        self._layouts: dict[tuple[int, ...], tuple[_Fixed, dict[str, tuple], list]] = {}

    def alpha_shapes(self) -> dict[str, tuple[int, ...]]:
        return {cell: (len(EDGES), len(OPS)) for cell in CELL_TYPES}

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        for cell in CELL_TYPES:
            if tuple(weights[cell].shape) != (len(EDGES), len(OPS)):
                raise ValueError(
                    f"weights[{cell!r}] must be {(len(EDGES), len(OPS))}, got {tuple(weights[cell].shape)}"
                )
        s0 = s1 = self.stem(x)
        for plan, cell in zip(self.plans, self.cells, strict=True):
            w = weights["reduce" if plan.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, w, self.aux_skip)
        return self.head(s1)

    def finalize(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The flat genotype parameters by DARTS's rule (see :func:`finalize_alphas`)."""
        return finalize_alphas(alphas)

    def finalized_probs(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The finalized genotype as one-hot weights: each kept edge on its op, every other edge on ``none``
        (at which :meth:`expected_latency` is exactly the genotype's table sum)."""
        genotype = Genotype.from_params(self.finalize(alphas))
        out = {}
        for cell in CELL_TYPES:
            ref = alphas[cell]
            w = torch.zeros(len(EDGES), len(OPS), dtype=ref.dtype, device=ref.device)
            w[:, OPS.index("none")] = 1.0
            for k, (op, src) in enumerate(getattr(genotype, cell)):
                e = EDGES.index((k // 2, src))
                w[e] = 0.0
                w[e, OPS.index(op)] = 1.0
            out[cell] = w
        return out

    def never_chosen(self) -> dict[str, list[int]]:
        """``none`` is never kept by ``finalize``."""
        return {cell: [OPS.index("none")] for cell in CELL_TYPES}

    def limit_skips(self, alphas: Mapping[str, torch.Tensor], max_skips: int) -> dict[str, torch.Tensor]:
        """P-DARTS's cap on skips: while the finalized normal cell holds more than ``max_skips`` skip
        connections, the kept skip with the weakest ``α`` is struck out (its logit set to ``-inf``), so its
        edge takes its next strongest op or the node another edge."""
        out = {k: v.detach().clone() for k, v in alphas.items()}
        skip = OPS.index("skip_connect")
        while True:
            genotype = Genotype.from_params(self.finalize(out))
            kept = [
                EDGES.index((k // 2, src))
                for k, (op, src) in enumerate(genotype.normal)
                if op == "skip_connect"
            ]
            if len(kept) <= max_skips:
                return out
            weakest = min(kept, key=lambda e: float(out["normal"][e, skip]))
            out["normal"][weakest, skip] = float("-inf")

    def skip_count(self, params: Mapping[str, Any]) -> int | None:
        return count_skips(params)

    def latency_ops(self, input_shape: tuple[int, ...]) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
        """Every distinct op of the discrete networks this search can yield, plus the fixed parts.

        Names: ``darts:<op>:c<C>:s<stride>:<H>x<W>`` for the ops, ``darts:stem:c<in>-<out>:<H>x<W>``,
        ``darts:pre:{relu_conv_bn|factorized_reduce}:c<in>-<out>:<H>x<W>`` and
        ``darts:head:c<in>-k<classes>:<H>x<W>`` (input sides; ``:b<N>`` appended when the batch is not 1).
        Modules are fresh, affine-BN, eval-mode copies: what a finalized :class:`DartsNet` runs (the
        search network's extra BN after pools is not part of it). ``none`` costs 0 and is not listed.
        The shape is remembered for :meth:`expected_latency`.
        """
        fixed, ops, _ = self._layout(input_shape)
        self._latency_shape = tuple(int(d) for d in input_shape)
        out: dict[str, tuple[nn.Module, tuple[int, ...]]] = {}
        for name, shape, (part, plan) in fixed:
            if name not in out:
                out[name] = (self._fixed_module(part, plan, shape[1]).eval(), shape)
        for name, (op, c, stride, shape) in ops.items():
            module = make_op(op, c, stride, affine=True)
            assert module is not None
            out[name] = (module.eval(), shape)
        return out

    def expected_latency(
        self,
        probs: Mapping[str, torch.Tensor],
        table: Mapping[str, float],
        *,
        input_shape: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """The expected latency of the finalized network: fixed parts plus, per node, the edges it keeps.

        A finalized cell never holds ``none`` and keeps two input edges per node (:func:`finalize_alphas`),
        so under ``latency_edges="kept"`` each edge's op cost is the expectation over the ops a finalized
        cell can keep, ``c_e = Σ_{o≠none} p_eo · t_eo / m_e`` with ``m_e = Σ_{o≠none} p_eo`` (``none``
        renormalised away), and node ``i`` keeps ``2`` edges in proportion to their non-``none`` mass:
        ``Σ_e (2 m_e / Σ_e' m_e') · c_e = 2 Σ_e Σ_{o≠none} p_eo t_eo / Σ_e m_e``. Raising ``none``
        everywhere therefore lowers nothing (before, ``none`` counted at cost 0 and a latency target could
        be met by growing it), and at a one-hot ``α`` that encodes a genotype (two edges per node on
        their ops, the others on ``none``) the value is exactly the table's sum for that genotype.
        ``t_eo`` sums the op's table entries over every cell of the type (they share ``α``).
        Under ``latency_edges="all"``: ``Σ_e Σ_o p_eo · t_eo`` with ``none`` at 0 (the mixture's own cost).
        Differentiable in ``probs``.

        Args:
            probs: ``{"normal": (14, 8), "reduce": (14, 8)}`` choice probabilities (e.g. ``softmax(α)``).
            table: Latency in ms of every name :meth:`latency_ops` returned.
            input_shape: Network input; defaults to the shape of the last :meth:`latency_ops` call.

        Raises:
            KeyError: When ``table`` lacks a name (build it from :meth:`latency_ops` at this shape).
        """
        shape = input_shape if input_shape is not None else self._latency_shape
        if shape is None:
            raise ValueError("call latency_ops(input_shape) first, or pass input_shape=")
        fixed, _, cells = self._layout(shape)
        fixed_ms = sum(_lookup(table, name, shape) for name, _, _ in fixed)
        costs = {cell: [[0.0] * len(OPS) for _ in EDGES] for cell in CELL_TYPES}
        for cell, names in cells:
            for e in range(len(EDGES)):
                for o, name in enumerate(names[e]):
                    if name is not None:
                        costs[cell][e][o] += _lookup(table, name, shape)
        ref = probs[CELL_TYPES[0]]
        total = torch.as_tensor(fixed_ms, dtype=ref.dtype, device=ref.device)
        keep = torch.tensor([op != "none" for op in OPS], device=ref.device)
        for cell in CELL_TYPES:
            p = probs[cell]
            weighted = (p * torch.tensor(costs[cell], dtype=p.dtype, device=p.device)).sum(dim=-1)  # (14,)
            if self.latency_edges == "all":
                total = total + weighted.sum()
                continue
            mass = (p * keep).sum(dim=-1)  # (14,)
            start = 0
            for i in range(STEPS):
                node = slice(start, start + i + 2)
                total = total + 2.0 * weighted[node].sum() / mass[node].sum().clamp_min(1e-12)
                start += i + 2
        return total

    def _layout(self, input_shape: tuple[int, ...]) -> tuple[_Fixed, dict[str, tuple], list]:
        """Fixed-part instances, distinct ops ``{name: (op, C, stride, shape)}`` and per-cell op names
        (names only, cached per shape: ``expected_latency`` runs every step)."""
        key = tuple(int(d) for d in input_shape)
        if key not in self._layouts:
            self._layouts[key] = self._build_layout(key)
        return self._layouts[key]

    def _build_layout(self, input_shape: tuple[int, ...]) -> tuple[_Fixed, dict[str, tuple], list]:
        b, c_in, h, w = input_shape

        def tag(hw: tuple[int, int]) -> str:
            return f"{hw[0]}x{hw[1]}" + (f":b{b}" if b != 1 else "")

        fixed: _Fixed = [(f"darts:stem:c{c_in}-{self.c_stem}:{tag((h, w))}", (b, c_in, h, w), ("stem", None))]
        ops: dict[str, tuple] = {}
        cells: list[tuple[str, list[list[str | None]]]] = []
        hw_pp = hw_p = (h, w)
        for plan in self.plans:
            c, cpp, cp = plan.channels, plan.c_prev_prev, plan.c_prev
            kind0 = "factorized_reduce" if plan.reduction_prev else "relu_conv_bn"
            fixed.append((f"darts:pre:{kind0}:c{cpp}-{c}:{tag(hw_pp)}", (b, cpp, *hw_pp), ("pre0", plan)))
            fixed.append((f"darts:pre:relu_conv_bn:c{cp}-{c}:{tag(hw_p)}", (b, cp, *hw_p), ("pre1", plan)))
            hw_out = half(hw_p) if plan.reduction else hw_p
            rows: list[list[str | None]] = []
            for _, src in EDGES:
                stride, hw_in = edge_stride(plan, src), (hw_p if src < 2 else hw_out)
                names = {op: f"darts:{op}:c{c}:s{stride}:{tag(hw_in)}" for op in CELL_OPS}
                ops |= {n: (op, c, stride, (b, c, *hw_in)) for op, n in names.items()}
                rows.append([names.get(op) for op in OPS])
            cells.append(("reduce" if plan.reduction else "normal", rows))
            hw_pp, hw_p = hw_p, hw_out
        head = f"darts:head:c{self.c_out}-k{self.num_classes}:{tag(hw_p)}"
        fixed.append((head, (b, self.c_out, *hw_p), ("head", None)))
        return fixed, ops, cells

    def _fixed_module(self, part: str, plan: CellPlan | None, c_in: int) -> nn.Module:
        """A fresh affine-BN copy of a fixed part (what the discrete network runs)."""
        if part == "stem":
            return make_stem(c_in, self.c_stem)
        if part == "head":
            return make_head(self.c_out, self.num_classes)
        assert plan is not None
        return make_preprocess(plan, affine=True)[part == "pre1"]


def _lookup(table: Mapping[str, float], name: str, shape: tuple[int, ...]) -> float:
    try:
        return float(table[name])
    except KeyError:
        raise KeyError(
            f"latency table has no entry {name!r}; build the table from latency_ops({tuple(shape)})"
        ) from None

"""Forward growth of DARTS cells for ``search=petridish``: the seed and the moves of a parent genotype.

The cell's topology is the genotype's (two inputs per node); what grows is the capacity on its edges. A
move puts a heavier op beside an edge's op, reading the same input: ``{cell}_n{i}_op{j}:{op}``, with the
next one or two parametric ops of :data:`GROWTH_ORDER` after the edge's current op (a skip or a pool grows a
3×3 convolution, a 3×3 a 5×5). The candidate sits on that edge in *every* cell of the type (the genotype is
shared), one candidate per cell, one selector weight; the child swaps the op. The seed is the cheapest
genotype: every op ``skip_connect``, every node reading the two cell inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hwnas.models.darts_ops import CELL_TYPES, STEPS, edge_stride, macro_plan, make_op
from hwnas.models.growth import GrowthMove
from hwnas.search_space.base import ArchSpec

if TYPE_CHECKING:
    from hwnas.search_space.darts_cell import DartsCellSpace

#: DARTS ops from the cheapest to the costliest (per output pixel, at equal channels).
GROWTH_ORDER = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "dil_conv_3x3", "sep_conv_3x3",
                "dil_conv_5x5", "sep_conv_5x5")  # fmt: skip
PARAMETRIC = {"dil_conv_3x3", "sep_conv_3x3", "dil_conv_5x5", "sep_conv_5x5"}
UPGRADES_PER_EDGE = 2


def growth_seed(space: DartsCellSpace) -> ArchSpec:
    """Every op ``skip_connect``, every node reading inputs ``0-1`` (see the module docstring)."""
    return space.make(
        {
            f"{cell}_n{i}_{part}": ("0-1" if part == "inputs" else "skip_connect")
            for cell in CELL_TYPES
            for i in range(STEPS)
            for part in ("inputs", "op0", "op1")
        }
    )


def upgrades(op: str) -> list[str]:
    """The next parametric ops after ``op`` in :data:`GROWTH_ORDER` (at most ``UPGRADES_PER_EDGE``)."""
    later = GROWTH_ORDER[GROWTH_ORDER.index(op) + 1 :]
    return [o for o in later if o in PARAMETRIC][:UPGRADES_PER_EDGE]


def growth_moves(space: DartsCellSpace, spec: ArchSpec) -> list[GrowthMove]:
    """Every op upgrade of ``spec``'s edges; sites are ``cells.<c>.ops.<2i+j>`` of
    :class:`~hwnas.models.darts_cell.DartsNet` at this space's size."""
    _, plans, _ = macro_plan(space.channels, space.layers, space.stem_multiplier)
    v = spec.values
    moves = []
    for cell in CELL_TYPES:
        cells = [c for c, plan in enumerate(plans) if plan.reduction == (cell == "reduce")]
        for i in range(STEPS):
            srcs = [int(s) for s in str(v[f"{cell}_n{i}_inputs"]).split("-")]
            for j in (0, 1):
                name = f"{cell}_n{i}_op{j}"
                for op in upgrades(str(v[name])):
                    sites = tuple(f"cells.{c}.ops.{2 * i + j}" for c in cells)

                    def make(site: str, op: str = op, src: int = srcs[j]) -> object:
                        plan = plans[int(site.split(".")[1])]
                        return make_op(op, plan.channels, edge_stride(plan, src))

                    moves.append(GrowthMove(name=f"{name}:{op}", sites=sites, make=make, params={name: op},
                                            reads="input"))  # fmt: skip
    return moves

"""Forward growth of hourglass networks for ``search=petridish``: the seed and the moves of a parent.

* The seed is the smallest network at the widths a gradient search holds fixed
  (``search_space.gradient_widths``): one layer per down/up block, identity skips, the smallest kernels.
* A parent's moves, per level ``i`` (1-based) and block ``down``/``skip``/``up``:
  ``{block}{i}+layer`` (one more layer, where the space allows more) and, for down and up blocks,
  ``{block}{i}:k{k}`` (the next larger kernel). Each candidate is a ConvBNReLU of the move's kernel reading
  the block's output (its channels) and adding to it (:class:`hwnas.models.growth.GrowingNetwork`): the
  score of "more capacity of this kind, here". Widths do not grow (a parent's channels stay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hwnas.models.growth import GrowthMove
from hwnas.models.ops import ConvBNReLU
from hwnas.search_space.base import ArchSpec

if TYPE_CHECKING:
    from hwnas.search_space.hourglass import HourglassSpace


def growth_seed(space: HourglassSpace) -> ArchSpec:
    """The smallest architecture at the gradient widths (see the module docstring)."""
    fixed = space.mixed_supernet(num_classes=2).fixed  # the pinned widths, validated like DNAS's
    params: dict[str, Any] = dict(fixed)
    for name, values in space.choices().items():
        if name not in params:
            params[name] = min(values)
    return space.make(params)


def growth_moves(space: HourglassSpace, spec: ArchSpec) -> list[GrowthMove]:
    """Every move that grows ``spec`` within the space (see the module docstring); sites are submodules of
    :class:`~hwnas.models.hourglass.HourglassNet` (``down.0``, ``skip.2``, ...)."""
    choices, v = space.choices(), spec.values
    chans = space.channels(spec)
    moves: list[GrowthMove] = []
    for i in range(1, space.num_levels + 1):
        for block, c_out in (("down", chans[i]), ("skip", chans[i - 1]), ("up", chans[i - 1])):
            site = f"{block}.{i - 1}"
            kernel = int(v.get(f"{block}{i}_kernel", 3))
            layers = f"{block}{i}_layers"
            deeper = sorted(c for c in choices[layers] if c > v[layers])
            if deeper:
                moves.append(_move(f"{block}{i}+layer", site, c_out, kernel, {layers: deeper[0]}))
            if f"{block}{i}_kernel" in choices:
                larger = sorted(k for k in choices[f"{block}{i}_kernel"] if k > kernel)
                if larger:
                    name = f"{block}{i}:k{larger[0]}"
                    moves.append(_move(name, site, c_out, larger[0], {f"{block}{i}_kernel": larger[0]}))
    return moves


def _move(name: str, site: str, channels: int, kernel: int, params: dict[str, Any]) -> GrowthMove:
    return GrowthMove(
        name=name, sites=(site,), make=lambda _site: ConvBNReLU(channels, channels, kernel), params=params
    )

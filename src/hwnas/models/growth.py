"""Petridish's forward growth (Hu et al., NeurIPS 2019), plain torch: candidate layers attached to a parent
network that change neither its output nor its training, yet learn how much each would lower the loss.

A candidate ``c_m`` is attached at a *site* (a submodule of the parent, e.g. ``down.1``) through a forward
hook, and the site's output ``h`` becomes

    h + stop_forward(α_m · c_m(stop_gradient(r)))

where ``r`` is what the candidate reads: the site's output ``h`` (a layer stacked on a block) or the site's
input (an op beside an edge's op). A move may sit at several sites (a DARTS cell's edge in every cell of
that type): one candidate per site, one shared ``α_m``.

* ``stop_gradient`` (``h.detach()``): the candidate's gradient never reaches the parent's weights;
* ``stop_forward`` (``t − t.detach()``): the value added is exactly 0, so the parent computes exactly what it
  computed before, while the backward pass sees ``+ α_m · c_m(h)``: ``∂L/∂α_m = ⟨∂L/∂h', c_m(h)⟩`` (how much
  the candidate, scaled up, would lower the loss) and the candidate's weights are trained towards the
  negative loss gradient at its site (the boosting view of the paper).

The selector weights ``α`` (one per candidate) are given to :meth:`GrowingNetwork.forward`, never held by
the network, so an L1 penalty on them (the paper's sparse selection) and their optimizer stay apart from
the weights'. The strongest ``|α_m|`` are the moves a child keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


def stop_forward(t: torch.Tensor) -> torch.Tensor:
    """Exactly 0 in value, the identity for the gradient."""
    return t - t.detach()


@dataclass(frozen=True)
class GrowthMove:
    """One way a parent can grow: where the candidate sits, how to build it, and the child's parameters.

    Attributes:
        name: Readable and stable, e.g. ``up1+layer`` or ``down2:k5``.
        sites: Submodule paths in the parent network whose output the candidate adds to.
        make: Builds the candidate for a site (``make(site)``; output shaped like the site's output).
        params: The space parameters this move changes in the child (merged over the parent's).
        reads: ``output`` (the site's output) or ``input`` (the site's first input).
    """

    name: str
    sites: tuple[str, ...]
    make: Callable[[str], nn.Module] = field(compare=False, repr=False)
    params: Mapping[str, Any] = field(default_factory=dict)
    reads: str = "output"


class GrowingNetwork(nn.Module):
    """A parent network with stop-forward, stop-gradient candidates at the moves' sites.

    Args:
        parent: The parent architecture's network (trained with the candidates; its outputs unchanged).
        moves: The candidate moves (their ``make`` is called once here).
    """

    def __init__(self, parent: nn.Module, moves: Sequence[GrowthMove]) -> None:
        super().__init__()
        if not moves:
            raise ValueError("a growing network needs at least one candidate move")
        self.parent = parent
        self.names = [m.name for m in moves]
        self.candidates = nn.ModuleList(nn.ModuleList(m.make(site) for site in m.sites) for m in moves)
        self._alpha: torch.Tensor | None = None
        for j, move in enumerate(moves):
            if move.reads not in ("output", "input") or not move.sites:
                raise ValueError(f"move {move.name}: reads must be output|input and sites non-empty")
            for k, site in enumerate(move.sites):
                parent.get_submodule(site).register_forward_hook(self._hook(j, k, move.reads == "input"))

    def _hook(self, j: int, k: int, reads_input: bool) -> Callable[..., torch.Tensor | None]:
        def hook(_module: nn.Module, inputs: Any, out: torch.Tensor) -> torch.Tensor | None:
            if self._alpha is None:  # the parent alone (e.g. exported or evaluated without candidates)
                return None
            src = inputs[0] if reads_input else out
            return out + stop_forward(self._alpha[j] * self.candidates[j][k](src.detach()))

        return hook

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """The parent's output for ``x`` (unchanged in value); with ``alpha`` (one per move), the candidates
        join the backward pass."""
        if alpha is not None and alpha.shape != (len(self.names),):
            raise ValueError(f"alpha must have shape ({len(self.names)},), got {tuple(alpha.shape)}")
        self._alpha = alpha
        try:
            return self.parent(x)
        finally:
            self._alpha = None

    def ranking(self, alpha: torch.Tensor) -> list[tuple[str, float]]:
        """Moves by decreasing ``|α|`` (ties: the moves' order), with their ``|α|``."""
        strength = alpha.detach().abs().cpu().tolist()
        order = sorted(range(len(self.names)), key=lambda j: (-strength[j], j))
        return [(self.names[j], float(strength[j])) for j in order]

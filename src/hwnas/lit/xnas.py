"""XNAS's architecture update (Nayman et al., NeurIPS 2019): exponentiated gradient with expert wipe-out.

Every choice of a group (an edge's ops, a block's kernels or depths) is an *expert*; the mixture is the
forecaster ``p = softmax(α)``. After each validation batch each expert's loss is the linearised loss of
its own prediction, ``g_i = ∂ℓ/∂p_i`` (the gradient of the loss with respect to the mixing weight, i.e.
``⟨∂ℓ/∂y, op_i(x)⟩``), clipped to ``[−L, L]``, and

    α_i ← α_i − η · g_i,      η = √(2 ln N / T) / L       (the regret-optimal rate for N experts, T steps)

which is the exponentiated-gradient (Hedge) update of the weights ``exp(α)``. An expert whose ``α`` has
fallen below ``max_j α_j − 2 L η (T − t)`` can no longer become the leader in the ``T − t`` steps left
(each step moves a gap by at most ``2 L η``), so it is *wiped out*: its weight becomes exactly 0, and a
:class:`~hwnas.models.mixed.MixedOp` stops running it (the search gets cheaper as it goes). The leader
among the choices a finalizer may pick is never wiped.

The gradients come from one batched backward pass with the mixing weights as leaves (no per-sample
replay), on CPU or GPU alike. Plain torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from hwnas.models.mixed import ArchParameters

#: ``α`` of a wiped-out expert: its softmax weight is exactly 0 in float32, and it stays finite.
WIPED = -1.0e4


class ExpertAdvice:
    """The XNAS update of ``arch`` (see the module docstring).

    Args:
        arch: The architecture parameters it updates in place.
        total_steps: ``T``, the architecture steps of the search (sets ``η`` and the wipe-out margin).
        grad_bound: ``L``, the bound the expert gradients are clipped to.
        wipeout: Wipe out experts that can no longer lead (False = plain exponentiated gradient).
        never_chosen: ``{group: [choice index]}`` a finalizer never picks (DARTS's ``none``): they may be
            wiped out but never protect a group as its leader.
    """

    def __init__(
        self,
        arch: ArchParameters,
        *,
        total_steps: int,
        grad_bound: float = 1.0,
        wipeout: bool = True,
        never_chosen: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        if total_steps < 1 or not grad_bound > 0:
            raise ValueError(f"total_steps must be >= 1 and grad_bound > 0, got {total_steps}, {grad_bound}")
        self.arch, self.T, self.L, self.wipeout = arch, int(total_steps), float(grad_bound), bool(wipeout)
        self.eta = {
            k: math.sqrt(2.0 * math.log(max(2, a.shape[-1])) / self.T) / self.L
            for k, a in arch.alphas.items()
        }
        self.alive = {k: torch.ones_like(a, dtype=torch.bool) for k, a in arch.alphas.items()}
        self.finalizable = {}
        for k, a in arch.alphas.items():
            mask = torch.ones(a.shape[-1], dtype=torch.bool, device=a.device)
            mask[list((never_chosen or {}).get(k, []))] = False
            self.finalizable[k] = mask.expand_as(a)
        self.wiped_total = 0

    @torch.no_grad()
    def step(
        self,
        grads: Mapping[str, torch.Tensor],
        step: int,
        reg_grads: Mapping[str, torch.Tensor] | None = None,
    ) -> int:
        """One update at step ``step`` (0-based) from the expert gradients ``∂ℓ/∂p`` plus ``reg_grads`` (an α
        regulariser's ``∂R/∂α``), their sum clipped to ``[−L, L]``: an expert's α moves by at most ``L η`` per
        step, which is what makes a wiped-out expert provably unable to lead again. Returns the experts
        wiped out by this step."""
        wiped = 0
        remaining = max(0, self.T - int(step) - 1)
        for k, a in self.arch.alphas.items():
            alive = self.alive[k].to(a.device)
            g = grads[k].to(a.dtype)
            if reg_grads is not None and reg_grads.get(k) is not None:
                g = g + reg_grads[k]
            g = g.clamp(-self.L, self.L)  # the whole step: the wipe-out margin assumes |g| <= L
            a.sub_(self.eta[k] * g * alive)
            if self.wipeout:
                candidates = alive & self.finalizable[k].to(a.device)
                lead = a.masked_fill(~candidates, -math.inf).amax(dim=-1, keepdim=True)
                theta = lead - 2.0 * self.L * self.eta[k] * remaining
                out = alive & (a < theta) & torch.isfinite(lead)
                wiped += int(out.sum())
                alive &= ~out
                self.alive[k] = alive
            a.masked_fill_(~alive, WIPED)
        self.wiped_total += wiped
        return wiped

    def alive_fraction(self) -> float:
        """Share of experts still in the race."""
        total = sum(int(m.numel()) for m in self.alive.values())
        return sum(int(m.sum()) for m in self.alive.values()) / max(1, total)

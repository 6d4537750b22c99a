"""The differentiable-NAS core: mixed ops, architecture parameters kept apart, and the supernet contract.

Every gradient strategy (DARTS, GDAS, ...) drives a :class:`DifferentiableSupernet` the same way:

* the architecture parameters ``α`` live in an :class:`ArchParameters` module that is *not* part of the
  network, so ``net.parameters()`` never contains them and the weight optimizer cannot update them twice;
* the strategy turns ``α`` into mixing weights (a softmax for DARTS, a hard Gumbel sample with a
  straight-through gradient for GDAS) and passes them to ``net(x, weights)``;
* a :class:`MixedOp` computes ``Σ w_j · op_j(x)`` over the ops whose weight is non-zero in value (all of
  them under a softmax, the sampled one under a hard sample), so GDAS pays for one op per edge while its
  gradient still reaches every ``α`` of the edge through the straight-through estimator;
* ``finalize(α)`` turns the weights into the search space's parameters, deterministically;
* ``latency_ops(input_shape)`` names every distinct op (at the shape it runs at) for a per-op latency table
  measured with the project's own profilers, and ``expected_latency(probs, table)`` is the differentiable
  ``Σ softmax(α) · table`` the latency-aware losses use.

Plain torch: never imports Lightning.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


class MixedOp(nn.Module):
    """A weighted sum of candidate ops; the weights are an input, never a parameter of this module.

    Args:
        ops: Candidate modules mapping the same input to outputs of one shape. ``None`` is the ``none``
            op (contributes zeros, costs nothing).
    """

    def __init__(self, ops: Sequence[nn.Module | None]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(op if op is not None else nn.Identity() for op in ops)
        self.is_none = [op is None for op in ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, aux_skip: float = 0.0) -> torch.Tensor:
        """``Σ_j weights[j] · op_j(x)`` over ops whose weight is non-zero in value (+ ``aux_skip · x``).

        Args:
            x: The edge's input.
            weights: ``(n_ops,)`` mixing weights (a softmax, or a hard sample whose zeros skip their op).
            aux_skip: DARTS−'s auxiliary skip weight, added as ``aux_skip · x`` (shape-preserving edges only).
        """
        active = [j for j in range(len(self.ops)) if not self.is_none[j] and bool(weights[j].detach() != 0)]
        out: torch.Tensor | None = None
        for j in active:
            y = weights[j] * self.ops[j](x)
            out = y if out is None else out + y
        if out is None:  # only `none` is active: zeros, still connected to the weights' graph
            out = self._zero_like(x) * weights.sum()
        if aux_skip:
            out = out + aux_skip * x
        return out

    def _zero_like(self, x: torch.Tensor) -> torch.Tensor:
        """Zeros shaped like this edge's output (a stride-2 edge halves the resolution)."""
        for j, op in enumerate(self.ops):
            if not self.is_none[j]:
                with torch.no_grad():
                    return torch.zeros_like(op(x))
        return torch.zeros_like(x)


class ArchParameters(nn.Module):
    """The architecture parameters ``α``: one tensor per group, softmax over the last dimension.

    Held by the strategy's LightningModule next to (never inside) the network, so the weight optimizer
    built from ``net.parameters()`` cannot see them.

    Args:
        shapes: ``{group: shape}`` from :meth:`DifferentiableSupernet.alpha_shapes`.
        init_scale: Standard deviation of the initial values (DARTS: 1e-3, near-uniform mixtures).
        generator: Seeds the initial values.
    """

    def __init__(
        self,
        shapes: Mapping[str, Sequence[int]],
        *,
        init_scale: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.alphas = nn.ParameterDict(
            {
                name: nn.Parameter(init_scale * torch.randn(*shape, generator=generator))
                for name, shape in shapes.items()
            }
        )

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {name: p for name, p in self.alphas.items()}

    def probs(self) -> dict[str, torch.Tensor]:
        """``softmax(α)`` per group (differentiable): DARTS's mixing weights and the latency expectation's."""
        return {name: p.softmax(dim=-1) for name, p in self.alphas.items()}

    def detached(self) -> dict[str, torch.Tensor]:
        """A copy of ``α`` without gradient history (what a finalizer reads)."""
        return {name: p.detach().clone() for name, p in self.alphas.items()}


class DifferentiableSupernet(nn.Module, ABC):
    """A network that mixes candidate ops with externally supplied weights (see the module docstring).

    Attributes:
        aux_skip: DARTS−'s auxiliary skip weight on shape-preserving mixed edges (0 = off); the strategy
            decays it to 0 over the search.
    """

    aux_skip: float = 0.0

    @abstractmethod
    def alpha_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{group: shape}`` of the architecture parameters; the last dimension indexes the choices."""

    @abstractmethod
    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Logits for ``x`` under mixing ``weights`` (same groups and shapes as ``alpha_shapes``)."""

    @abstractmethod
    def finalize(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The search space's parameters chosen by ``α`` (deterministic: equal ``α`` → equal result)."""

    @abstractmethod
    def latency_ops(self, input_shape: tuple[int, ...]) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
        """Every distinct op for the latency table: ``{name: (module, its input shape)}`` when the network
        input is ``input_shape`` (``(1, C, H, W)``); names are stable across processes (they key a cache)."""

    @abstractmethod
    def expected_latency(self, probs: Mapping[str, torch.Tensor], table: Mapping[str, float]) -> torch.Tensor:
        """``E[latency]`` in ms under the choice probabilities ``probs``: differentiable in ``probs``."""

    def finalized_probs(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One-hot mixing weights of the architecture ``finalize(alphas)`` returns, so that
        ``expected_latency(finalized_probs(α), table)`` is the table latency of the *finalized* network
        (against ``expected_latency(softmax(α))``, the mixture's: the difference is the discretisation gap).
        Default: the largest ``α`` per group (ties: the lowest index), the rule of a per-group argmax."""
        return {  # torch's argmax returns the first of tied maxima
            name: nn.functional.one_hot(a.detach().argmax(dim=-1), a.shape[-1]).to(a.dtype)
            for name, a in alphas.items()
        }

    def never_chosen(self) -> dict[str, list[int]]:
        """Choice indices per group that ``finalize`` never picks (DARTS's ``none``): bounds of the
        expected latency over finalizable architectures leave them out."""
        return {}

    def limit_skips(self, alphas: Mapping[str, torch.Tensor], max_skips: int) -> dict[str, torch.Tensor]:
        """``α`` changed as little as possible so that ``finalize`` keeps at most ``max_skips`` skips in the
        normal cell (the collapse guard's fallback when even the first epoch had collapsed); spaces without
        a skip count return ``α`` unchanged."""
        return dict(alphas)

    def skip_count(self, params: Mapping[str, Any]) -> int | None:
        """Skip connections in the finalized normal cell (the collapse guard's count); ``None`` = n/a."""
        return None


def latency_range(
    net: DifferentiableSupernet, table: Mapping[str, float], steps: int = 200
) -> tuple[float, float]:
    """``(fastest, slowest)`` table latency over finalized architectures, found by descending (and
    ascending) the differentiable expectation itself, then finalizing: works for any supernet's cost model,
    and both ends are the latencies of real architectures (``finalized_probs``)."""
    out = []
    for sign in (1.0, -1.0):
        arch = ArchParameters(net.alpha_shapes(), init_scale=0.0)
        opt = torch.optim.Adam(arch.parameters(), lr=0.3)
        for _ in range(steps):
            opt.zero_grad()
            (sign * net.expected_latency(arch.probs(), table)).backward()
            opt.step()
        with torch.no_grad():
            out.append(float(net.expected_latency(net.finalized_probs(arch.detached()), table)))
    return min(out), max(out)

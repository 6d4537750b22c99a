"""DARTS's second-order architecture gradient: the unrolled hypergradient with a finite-difference
Hessian-vector product (Liu et al., ICLR 2019, eq. 7–8).

For ``w' = w − ξ (∇_w L_train(w, α) + λ w + μ v)`` (one virtual SGD step with weight decay ``λ`` and the
optimizer's momentum buffer ``v``, both independent of ``α``)::

    ∇_α L_val(w', α) ≈ ∇_α L_val(w', α) |_{w' fixed} − ξ · (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε

with ``w± = w ± ε ∇_{w'} L_val(w', α)`` and ``ε = eps_scale / ‖∇_{w'} L_val‖``. Pure torch on explicit
parameter dictionaries (``torch.func.functional_call``), so a test can compare it with a numerical
derivative of the unrolled objective on a tiny network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

WeightLoss = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


def virtual_step(
    params: Mapping[str, torch.Tensor],
    grads: Sequence[torch.Tensor],
    *,
    xi: float,
    weight_decay: float = 0.0,
    momentum: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """``w − ξ (g + λ w + μ v)`` for every parameter (detached: a new leaf per parameter)."""
    out: dict[str, torch.Tensor] = {}
    for (name, w), g in zip(params.items(), grads, strict=True):
        step = g + weight_decay * w.detach()
        if momentum is not None and name in momentum:
            step = step + momentum[name]
        out[name] = (w.detach() - xi * step).requires_grad_(True)
    return out


def unrolled_hypergradient(
    params: Mapping[str, torch.Tensor],
    alphas: Sequence[torch.Tensor],
    *,
    train_loss: WeightLoss,
    val_objective: WeightLoss,
    xi: float,
    weight_decay: float = 0.0,
    momentum: Mapping[str, torch.Tensor] | None = None,
    eps_scale: float = 0.01,
) -> list[torch.Tensor]:
    """The second-order gradient of ``val_objective(w', α)`` with respect to each of ``alphas``.

    Args:
        params: The network weights ``w`` (name → tensor), in the order the closures expect.
        alphas: The architecture parameters (leaves with ``requires_grad``) both closures read.
        train_loss: ``L_train(w, α)`` evaluated at the given weights.
        val_objective: ``L_val(w, α)`` (cross-entropy plus any α-only terms: latency, regularisers).
        xi: The virtual step's learning rate (DARTS uses the weights' learning rate).
        weight_decay: The weight optimizer's L2 decay, applied in the virtual step.
        momentum: The weight optimizer's momentum buffers already multiplied by its momentum factor.
        eps_scale: Finite-difference step relative to ``‖∇_{w'} L_val‖`` (DARTS: 0.01).
    """
    names = list(params)
    weights = [params[n] for n in names]
    g_train = torch.autograd.grad(train_loss(params), weights, allow_unused=True)
    g_train = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, g_train, strict=True)]
    unrolled = virtual_step(params, g_train, xi=xi, weight_decay=weight_decay, momentum=momentum)

    val = val_objective(unrolled)
    grads = torch.autograd.grad(val, list(alphas) + [unrolled[n] for n in names], allow_unused=True)
    d_alpha = [
        torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads[: len(alphas)], strict=True)
    ]
    d_w = [
        torch.zeros_like(unrolled[n]) if g is None else g
        for n, g in zip(names, grads[len(alphas) :], strict=True)
    ]

    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in d_w))
    if not torch.isfinite(norm) or float(norm) == 0.0:
        return [d.detach() for d in d_alpha]  # no path from w' to L_val: the first-order gradient is exact
    eps = eps_scale / norm

    def alpha_grad_at(sign: float) -> list[torch.Tensor]:
        shifted = {n: (params[n].detach() + sign * eps * d) for n, d in zip(names, d_w, strict=True)}
        g = torch.autograd.grad(train_loss(shifted), list(alphas), allow_unused=True)
        return [torch.zeros_like(a) if x is None else x for a, x in zip(alphas, g, strict=True)]

    g_plus, g_minus = alpha_grad_at(1.0), alpha_grad_at(-1.0)
    return [
        (da - xi * (gp - gm) / (2 * eps)).detach()
        for da, gp, gm in zip(d_alpha, g_plus, g_minus, strict=True)
    ]

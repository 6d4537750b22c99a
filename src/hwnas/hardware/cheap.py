"""Cheap, device-free cost metrics: parameters, MACs, FLOPs and peak activation memory.

These are *counted* on the real model (a forward pass with hooks), not guessed from the spec, so
they stay right when a space's ``build`` changes. The search can use them as constraints or as
extra objectives at no device cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

#: MACs per output element of each interpolation mode (weighted sum of the neighbours).
_INTERP_MACS = {"nearest": 0, "nearest-exact": 0, "linear": 2, "bilinear": 4, "bicubic": 16, "trilinear": 8}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return int(sum(p.numel() for p in model.parameters()))


class _InterpolateCounter(TorchFunctionMode):
    """Counts ``F.interpolate`` MACs, whether called by ``nn.Upsample`` or functionally in ``forward``."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func is F.interpolate and isinstance(out, torch.Tensor):
            mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
            self.macs += _INTERP_MACS.get(mode, 0) * out.numel()
        return out


def _conv_macs(m: nn.Module, out: torch.Tensor) -> int:
    # Each output element is a dot product over (in_channels / groups) * prod(kernel) inputs.
    k = int(np.prod(m.kernel_size))
    return int(out.numel()) * (m.in_channels // m.groups) * k


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass at ``input_shape`` (conv, linear, interpolation).

    Conv: ``out_elements * in_channels/groups * prod(kernel)``; Linear: ``out_elements * in_features``;
    interpolation: ``out_elements * neighbours`` (4 for bilinear). BatchNorm, activations, additions
    and pooling are not counted (they fold into convs or are memory-bound on every target we have).
    """
    total = 0

    def hook(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Linear):
            total += int(out.numel()) * m.in_features
        elif isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
            # Transposed: each *input* element is scattered to out_channels/groups * prod(k) outputs.
            total += int(inp[0].numel()) * (m.out_channels // m.groups) * int(np.prod(m.kernel_size))
        elif isinstance(m, _CONV):
            total += _conv_macs(m, out)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (*_CONV, nn.Linear))]
    counter = _InterpolateCounter()
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total + counter.macs


def peak_activation_bytes(
    model: nn.Module, input_shape: tuple[int, ...], *, bytes_per_element: int = 4
) -> int:
    """Approximate peak activation memory of one forward pass (default fp32, 4 bytes/element).

    Approximation (documented, cheap): the maximum over leaf modules of the bytes of their input plus
    output tensors, i.e. what one layer needs live at once. It ignores tensors held for later use
    (skip connections), so it is a lower bound; ``peak_activation_bytes_onnx`` does real liveness.
    """
    peak = int(np.prod(input_shape)) * bytes_per_element

    def hook(m: nn.Module, inp: tuple[Any, ...], out: Any) -> None:
        nonlocal peak
        n_in = sum(t.numel() for t in inp if isinstance(t, torch.Tensor))
        n_out = out.numel() if isinstance(out, torch.Tensor) else 0
        peak = max(peak, (n_in + n_out) * bytes_per_element)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(peak)


def peak_activation_bytes_onnx(onnx_path: str | Path, *, bytes_per_element: int = 4) -> int:
    """Peak live activation bytes of an ONNX graph executed in node order (tensor liveness).

    A tensor is live from the node that produces it until its last consumer has run; weights are
    excluded. This counts skip connections that a per-layer approximation misses.
    """
    import onnx

    from hwnas.hardware.onnx_fold import fold_constants

    # folded (and shape-inferred) first: an explicit pad or x.shape arithmetic would leave later shapes
    # unknown, counted as 0
    model = fold_constants(onnx.load(str(onnx_path)))
    g = model.graph
    weights = {i.name for i in g.initializer}
    size = {
        vi.name: int(np.prod([d.dim_value for d in vi.type.tensor_type.shape.dim])) * bytes_per_element
        for vi in list(g.input) + list(g.value_info) + list(g.output)
    }
    last_use: dict[str, int] = {}
    for idx, node in enumerate(g.node):
        for name in node.input:
            last_use[name] = idx
    outputs = {o.name for o in g.output}
    live = {i.name for i in g.input if i.name not in weights}
    peak = sum(size.get(n, 0) for n in live)
    for idx, node in enumerate(g.node):
        live.update(o for o in node.output if o)
        peak = max(peak, sum(size.get(n, 0) for n in live))
        live = {n for n in live if last_use.get(n, -1) > idx or n in outputs}
    return int(peak)


def cheap_metrics(
    model: nn.Module, input_shape: tuple[int, ...], *, onnx_path: str | Path | None = None
) -> dict[str, Any]:
    """``{"params", "macs", "flops", "peak_act_mb"}`` for ``model`` at ``input_shape``.

    ``peak_act_mb`` uses ONNX liveness when ``onnx_path`` is given, else the per-layer approximation.
    """
    macs = count_macs(model, input_shape)
    if onnx_path is not None:
        peak = peak_activation_bytes_onnx(onnx_path)
    else:
        peak = peak_activation_bytes(model, input_shape)
    return {
        "params": count_params(model),
        "macs": int(macs),
        "flops": int(2 * macs),
        "peak_act_mb": round(peak / 2**20, 4),
    }

"""Zero-cost scores: a candidate judged from its untrained weights and one batch, before any training.

Each score takes an untrained ``model`` and one batch ``(images [B, C, H, W], labels)`` and returns a
float, higher meaning "predicted more accurate". They are the published training-free proxies, written
here in plain torch (no maintained package implements them cleanly for segmentation networks):

* ``synflow`` (Tanaka et al. 2020): log of Σ|θ ⊙ ∂R/∂θ| with R the sum of the outputs of the network
  with |θ| on an all-ones input (data-free);
* ``naswot`` (Mellor et al. 2021): log-determinant of the kernel of the ReLUs' binary codes over the
  batch (how differently the untrained network cuts up different images);
* ``grad_norm``: Σ‖∂L/∂θ‖ of the cross-entropy on the batch;
* ``snip`` (Lee et al. 2019): Σ|θ ⊙ ∂L/∂θ|;
* ``meco`` (Jiang et al. 2023): Σ over convolutions of the minimum eigenvalue of the Pearson correlation
  between its output channels, on one image.

``params`` and ``flops`` are size scores from the evaluator's cheap metrics. ``make bench-proxy`` measures
each against full training, within latency bins (a size score mostly repeats the latency axis), and
``search.prescreen`` uses one to drop or order candidates before training.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from hwnas.utils.errors import ConfigError

IGNORE_INDEX = 255
Batch = tuple[torch.Tensor, torch.Tensor]


def _ce(model: nn.Module, batch: Batch) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y.long(), ignore_index=IGNORE_INDEX)


def _grads(model: nn.Module, batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    _ce(model, batch).backward()
    return [(p.detach(), p.grad.detach()) for p in model.parameters() if p.grad is not None]


def grad_norm(model: nn.Module, batch: Batch) -> float:
    return sum(float(g.norm()) for _, g in _grads(model, batch))


def snip(model: nn.Module, batch: Batch) -> float:
    return sum(float((p * g).abs().sum()) for p, g in _grads(model, batch))


def synflow(model: nn.Module, batch: Batch) -> float:
    net = copy.deepcopy(model).double().eval()  # BN with its initial statistics: the identity
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones((1, *batch[0].shape[1:]), dtype=torch.float64)
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return math.log(total + 1e-30)


def _relu_codes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    codes: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        codes.append((out.detach() > 0).flatten(1).float())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU | nn.ReLU6)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not codes:  # no ReLU modules (functional activations): the output's signs
        with torch.no_grad():
            codes.append((model(x) > 0).flatten(1).float())
    return torch.cat(codes, dim=1)


def naswot(model: nn.Module, batch: Batch) -> float:
    c = _relu_codes(model.train(), batch[0]).double()
    k = c @ c.T + (1 - c) @ (1 - c).T
    return float(torch.linalg.slogdet(k)[1])


def meco(model: nn.Module, batch: Batch) -> float:
    feats: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        feats.append(out.detach()[0].flatten(1).double())  # [C, H*W] of the first image

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.train()(batch[0][:2])  # two images: BatchNorm needs more than one value per channel
    finally:
        for h in handles:
            h.remove()
    total = 0.0
    for f in feats:
        if f.shape[0] < 2 or f.shape[1] < 2:
            continue
        corr = torch.nan_to_num(torch.corrcoef(f), nan=0.0)
        total += float(torch.linalg.eigvalsh(corr)[0])
    return total


SCORES: dict[str, Callable[[nn.Module, Batch], float]] = {
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "snip": snip,
    "meco": meco,
}
#: Scores read from the evaluator's cheap metrics (no model pass).
SIZE_SCORES = ("params", "flops")
NAMES = (*SCORES, *SIZE_SCORES)


def check_name(name: str, *, key: str) -> str:
    if name not in NAMES:
        raise ConfigError(
            f"unknown zero-cost score {name!r}", key=key, choices=NAMES, fix=f"e.g. {key}=naswot"
        )
    return name


def zero_cost(name: str, model: nn.Module, batch: Batch) -> float:
    """The zero-cost score ``name`` of the untrained ``model`` on ``batch`` (higher = predicted better)."""
    fn = SCORES[check_name(name, key="score")]
    state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        return float(fn(model, batch))
    finally:
        torch.set_rng_state(state)
        model.zero_grad(set_to_none=True)

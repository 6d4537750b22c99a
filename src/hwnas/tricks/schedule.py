"""Learning-rate schedules (a trick: switchable per run, same for every space and strategy)."""

from __future__ import annotations

import math

import torch


def cosine_warmup(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_frac: float = 0.05,
    min_lr_frac: float = 0.02,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up for ``warmup_frac`` of the steps, then cosine decay to ``min_lr_frac`` × lr."""
    warmup = max(1, int(round(total_steps * warmup_frac))) if warmup_frac > 0 else 0
    total = max(total_steps, warmup + 1)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_lr_frac + (1.0 - min_lr_frac) * 0.5 * (1.0 + math.cos(math.pi * t))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def constant(optimizer: torch.optim.Optimizer, *, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """No schedule: the learning rate stays where the optimiser put it."""
    del total_steps
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)

"""Building blocks shared by the candidate networks (plain torch, no Lightning)."""

from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """``k×k`` convolution (no bias) → BatchNorm → ReLU; ``same`` padding; optional stride."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


def conv_stack(c_in: int, c_out: int, *, layers: int, kernel: int, stride: int = 1) -> nn.Sequential:
    """``layers`` ConvBNReLU layers; the first changes channels (and applies ``stride``)."""
    mods: list[nn.Module] = []
    for i in range(layers):
        mods.append(ConvBNReLU(c_in if i == 0 else c_out, c_out, kernel, stride=stride if i == 0 else 1))
    return nn.Sequential(*mods)

"""The stacked-hourglass segmentation network (encoder–decoder with per-level skip blocks).

Modelled on the space searched for face segmentation on the Snapdragon 888: a stride-2 stem, ``S``
downsample blocks (stride-2 first layer), skip blocks on every level (0 layers = identity), and
upsample blocks (bilinear ×2 then convolutions) back to the stem's resolution; a small head with a
1×1 classifier, then bilinear ×2 to the input size. Plain torch; ONNX- and int8-friendly ops only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.models.ops import ConvBNReLU, conv_stack


def round8(x: float) -> int:
    """Channels rounded to a multiple of 8 (at least 8): what accelerators' tensor units like."""
    return max(8, int(round(x / 8.0)) * 8)


def level_channels(base_channels: int, expands: list[float], max_channels: int) -> list[int]:
    """Channels of the stem and of each level: each level expands the one above, rounded, capped."""
    chans = [int(base_channels)]
    for e in expands:
        chans.append(min(int(max_channels), round8(chans[-1] * float(e))))
    return chans


@dataclass(frozen=True)
class LevelConfig:
    """One level of the hourglass: its channels and the three blocks that touch it."""

    channels: int
    down_layers: int
    down_kernel: int
    skip_layers: int
    up_layers: int
    up_kernel: int


@dataclass(frozen=True)
class HourglassConfig:
    """A whole hourglass network as plain values (what a supernet activates and extracts)."""

    base_channels: int
    levels: tuple[LevelConfig, ...]


class HourglassNet(nn.Module):
    """Encoder–decoder returning ``(N, num_classes, H, W)`` logits for ``(N, C, H, W)`` inputs.

    Args:
        base_channels: Channels after the stem (and of the head).
        levels: One ``LevelConfig`` per downsampling level, shallow to deep.
        num_classes: Output classes (19 for FaceSynthetics).
        in_channels: Input image channels.
    """

    def __init__(
        self, *, base_channels: int, levels: list[LevelConfig], num_classes: int, in_channels: int = 3
    ) -> None:
        super().__init__()
        self.stem = ConvBNReLU(in_channels, base_channels, 3, stride=2)
        chans = [base_channels] + [lv.channels for lv in levels]
        self.down = nn.ModuleList(
            conv_stack(chans[i], chans[i + 1], layers=lv.down_layers, kernel=lv.down_kernel, stride=2)
            for i, lv in enumerate(levels)
        )
        # skip[i] carries the features of level i (resolution before down[i]) to the decoder.
        self.skip = nn.ModuleList(
            conv_stack(chans[i], chans[i], layers=lv.skip_layers, kernel=3)
            if lv.skip_layers
            else nn.Identity()
            for i, lv in enumerate(levels)
        )
        self.up = nn.ModuleList(
            conv_stack(chans[i + 1], chans[i], layers=lv.up_layers, kernel=lv.up_kernel)
            for i, lv in enumerate(levels)
        )
        self.head = nn.Sequential(
            ConvBNReLU(base_channels, base_channels, 3), nn.Conv2d(base_channels, num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        y = feats[-1]
        for i in reversed(range(len(self.down))):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            y = self.up[i](y) + self.skip[i](feats[i])
        y = self.head(y)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)

    @classmethod
    def from_config(cls, config: HourglassConfig, *, num_classes: int, in_channels: int = 3) -> HourglassNet:
        return cls(
            base_channels=config.base_channels,
            levels=list(config.levels),
            num_classes=num_classes,
            in_channels=in_channels,
        )

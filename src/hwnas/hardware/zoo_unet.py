"""U-Net (Ronneberger et al. 2015) as ``qai-hub-models``' ``unet_segmentation`` builds it, for its graph.

Qualcomm's ``unet_segmentation`` clones the ``milesial/Pytorch-UNet`` repository at run time (it is not in
the wheel) and builds ``UNet(n_channels=3, n_classes=2, bilinear=False)`` at 640x1280. This is that
published architecture written out (double 3x3 conv-BN-ReLU blocks, four max-pool downs from 64 to 1024
channels, four transposed-conv ups with skip concatenation, a 1x1 head), so the zoo has a second
segmentation graph; weights are random, as everywhere in the zoo.
"""

from __future__ import annotations

import torch
from torch import nn


def _double(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = _double(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """The 64-128-256-512-1024 U-Net with transposed-convolution upsampling (``bilinear=False``)."""

    def __init__(self, n_channels: int = 3, n_classes: int = 2) -> None:
        super().__init__()
        widths = (64, 128, 256, 512, 1024)
        self.inc = _double(n_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double(a, b)) for a, b in zip(widths, widths[1:], strict=False)
        )
        self.ups = nn.ModuleList(_Up(a, b) for a, b in zip(widths[::-1], widths[-2::-1], strict=False))
        self.outc = nn.Conv2d(widths[0], n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)

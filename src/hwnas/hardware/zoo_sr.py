"""Image-to-image graphs of ``qai-hub-models`` written out (their sources are not importable offline).

Qualcomm builds these from repositories it clones at run time (``aimet-model-zoo`` for QuickSRNet,
KAIR for DnCNN, ``SRGAN-PyTorch`` for SRGAN, aimet-model-zoo again for SESR-M5 and XLSR) or from its
vendored ``basicsr`` (Real-ESRGAN general x4v3,
whose ``SRVGGNetCompact`` is loaded from the wheel's own file). They are plain stacks of 3x3 convolutions
at high resolution with a pixel-shuffle upsampler: the kind of graph the roofline's memory terms must
get right, and different from every classification family. Weights are random, as everywhere in the zoo.
"""

from __future__ import annotations

import torch
from torch import nn

from hwnas.hardware.device_data import wheel_module


class DnCNN(nn.Module):
    """KAIR's ``DnCNN(in_nc=1, out_nc=1, nc=64, nb=17, act_mode="R")``: residual noise prediction."""

    def __init__(self, channels: int = 64, layers: int = 17) -> None:
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        body.append(nn.Conv2d(channels, 1, 3, padding=1))
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x)


class QuickSRNet(nn.Module):
    """aimet-model-zoo's ``QuickSRNetBase`` (scale 4, no ITO connection): conv stack, anchor, shuffle."""

    def __init__(self, channels: int, intermediate: int, scale: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
        for _ in range(intermediate):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(channels, 3 * scale * scale, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.scale = scale
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        anchor = torch.repeat_interleave(x, self.scale * self.scale, dim=1)
        return torch.clamp(self.shuffle(self.body(x) + anchor), 0.0, 1.0)


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.PReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRGAN's generator (Ledig et al. 2017; ``SRGAN-PyTorch``'s ``srresnet_x4``): 16 residual blocks, x4."""

    def __init__(self, c: int = 64, blocks: int = 16) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU())
        self.trunk = nn.Sequential(*[_Residual(c) for _ in range(blocks)])
        self.fuse = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        up = [nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()]
        self.up = nn.Sequential(*up, *[nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()])
        self.tail = nn.Conv2d(c, 3, 9, padding=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return self.tail(self.up(h + self.fuse(self.trunk(h))))


class _CollapsibleLinear(nn.Module):
    """aimet-model-zoo's ``CollapsibleLinearBlock`` left uncollapsed, as ``SESR_M5.from_pretrained`` loads it.

    The checkpoint holds the expanded form and Qualcomm never calls ``collapse()``, so the timed graph has
    the k x k conv to 256 channels and the 1x1 squeeze (manifest: 343K parameters, the expanded count).
    """

    def __init__(self, cin: int, cout: int, k: int, relu: bool, residual: bool = False) -> None:
        super().__init__()
        self.expand = nn.Conv2d(cin, 256, k, padding=k // 2, bias=False)
        self.squeeze = nn.Conv2d(256, cout, 1)
        self.act: nn.Module = nn.ReLU() if relu else nn.Identity()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.squeeze(self.expand(x))
        return self.act(x + y if self.residual else y)


class SESR(nn.Module):
    """``SESRRelease(num_channels=16, num_lblocks=5, scaling_factor=4)``: SESR-M5 x4 (Bhardwaj et al. 2022)."""

    def __init__(self, channels: int = 16, blocks: int = 5, scale: int = 4) -> None:
        super().__init__()
        self.anchor = nn.Conv2d(3, 3 * scale * scale, 1)  # AnchorOp: a frozen 1x1 conv, still a conv
        self.first = _CollapsibleLinear(3, channels, 5, relu=True)
        self.body = nn.Sequential(
            *[_CollapsibleLinear(channels, channels, 3, True, True) for _ in range(blocks)]
        )
        self.last = _CollapsibleLinear(channels, 3 * scale * scale, 5, relu=False)
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        return self.shuffle(self.last(self.body(h) + h) + self.anchor(x))


class XLSR(nn.Module):
    """``XLSRRelease(scaling_factor=4)`` (Ayazoglu 2021): grouped-conv G-blocks, concat, clipped ReLU."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.residual = nn.Conv2d(3, 16, 3, padding=1)
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 1),
            *[nn.Sequential(nn.Conv2d(32, 32, 3, padding=1, groups=4), nn.ReLU(), nn.Conv2d(32, 32, 1)) for _ in range(3)],
        )  # fmt: skip
        self.tail = nn.Sequential(
            nn.Conv2d(48, 32, 1), nn.ReLU(), nn.Conv2d(32, 3 * scale * scale, 3, padding=1)
        )
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tail(torch.cat([self.cnn(x), self.residual(x)], 1))
        return torch.clamp(self.shuffle(y), 0.0, 1.0)  # nn.Hardtanh(0, 1)


def srvgg_compact() -> nn.Module:
    """Real-ESRGAN general x4v3: the wheel's vendored ``basicsr`` ``SRVGGNetCompact`` (pure torch)."""
    mod = wheel_module("extern/basicsr/archs/srvgg_arch.py", "hwnas_srvgg_arch")
    return mod.SRVGGNetCompact(
        num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32, upscale=4, act_type="prelu"
    )


BUILDERS = {
    "dncnn": DnCNN,
    "quicksrnetsmall": lambda: QuickSRNet(32, 2),
    "quicksrnetmedium": lambda: QuickSRNet(32, 5),
    "quicksrnetlarge": lambda: QuickSRNet(64, 11),
    "srgan": SRResNet,
    "real_esrgan_general_x4v3": srvgg_compact,
    "sesr_m5": SESR,
    "xlsr": XLSR,
}

"""Image-to-image graphs of ``qai-hub-models`` written out (their sources are not importable offline).

Qualcomm builds these from repositories it clones at run time (``aimet-model-zoo`` for QuickSRNet,
KAIR for DnCNN, ``SRGAN-PyTorch`` for SRGAN) or from its vendored ``basicsr`` (Real-ESRGAN general x4v3,
whose ``SRVGGNetCompact`` is loaded from the wheel's own file). They are plain stacks of 3x3 convolutions
at high resolution with a pixel-shuffle upsampler: the kind of graph the roofline's memory terms must
get right, and different from every classification family. Weights are random, as everywhere in the zoo.
"""

from __future__ import annotations

import importlib.util

import torch
from torch import nn

from hwnas.hardware.device_data import package_dir


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


def srvgg_compact() -> nn.Module:
    """Real-ESRGAN general x4v3: the wheel's vendored ``basicsr`` ``SRVGGNetCompact`` (pure torch)."""
    path = package_dir() / "extern" / "basicsr" / "archs" / "srvgg_arch.py"
    spec = importlib.util.spec_from_file_location("hwnas_srvgg_arch", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
}

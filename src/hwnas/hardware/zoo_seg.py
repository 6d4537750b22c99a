"""Segmentation graphs of ``qai-hub-models`` written out (their sources are cloned at run time).

Qualcomm builds these from repositories it clones when a model is first used (jfzhang95's
``pytorch-deeplab-xception``, hszhao's ``semseg``, ``DDRNet.pytorch``), so nothing importable ships in
the wheel. Latency depends on the graph, not the weights, so each class below follows its published
design layer for layer (kernel sizes, channels, strides, dilations, upsampling) with random weights,
and each wrapper repeats what Qualcomm's own ``forward`` adds around the network (ImageNet
normalisation, arg-max or flip averaging), since that is part of the graph the device timed.

- ``deeplabv3_plus_mobilenet``: DeepLabV3+ on jfzhang95's MobileNetV2 (output stride 16, no 1280
  head, explicit ``F.pad`` before every depthwise conv), ASPP 1/6/12/18 + image pooling at 256
  channels, decoder with 24->48 low-level features, 21 classes, arg-max output.
- ``pspnet``: semseg's PSPNet with ``ade20k_pspnet101.yaml`` (ResNet-101, deep stem, output stride 8,
  PPM bins 1/2/3/6, 512-channel head, 150 classes) run on the image and its mirror in one batch of 2.
- ``ddrnet23_slim``: DDRNet-23-slim (planes 32, DAPPM 128, head 64, 19 classes, logits at 1/8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """``normalize_image_torchvision``: qai-hub-models feeds [0, 1] RGB and normalises in-graph."""
    mean = torch.tensor(_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _cbr(cin: int, cout: int, k: int = 1, stride: int = 1, pad: int = 0, dil: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, pad, dil, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


# --- DeepLabV3+ / MobileNetV2 (jfzhang95) ---------------------------------------------------------


class _InvertedResidual(nn.Module):
    """jfzhang95's block: ``F.pad`` sized for the dilation, then an unpadded depthwise conv."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: int, expand: int) -> None:
        super().__init__()
        hidden = round(cin * expand)
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 0, dilation, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        ]  # fmt: skip
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.pad = dilation  # (3 + 2 * (dilation - 1) - 1) // 2 on every side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(F.pad(x, (self.pad,) * 4))
        return x + out if self.residual else out


def _mobilenet_v2_os16() -> nn.Sequential:
    """Features only; once stride 16 is reached the next stage keeps dilation 1, the last gets 2.

    That off-by-one (the source updates ``rate`` after using it) is kept: it sets the 320-channel
    block's padding, which the device timed.
    """
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    layers: list[nn.Module] = [
        nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True))
    ]
    cin, current, rate = 32, 2, 1
    for t, c, n, s in settings:
        if current == 16:
            stride, dilation, rate = 1, rate, rate * s
        else:
            stride, dilation, current = s, 1, current * s
        for i in range(n):
            layers.append(_InvertedResidual(cin, c, stride if i == 0 else 1, dilation, t))
            cin = c
    return nn.Sequential(*layers)


class _ASPP(nn.Module):
    def __init__(self, cin: int = 320, c: int = 256, rates: tuple[int, ...] = (6, 12, 18)) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_cbr(cin, c)] + [_cbr(cin, c, 3, 1, r, r) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _cbr(cin, c))
        self.project = _cbr(c * (len(rates) + 2), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [b(x) for b in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[2:], mode="bilinear", align_corners=True))
        return self.project(torch.cat(outs, 1))


class DeepLabV3PlusMobileNet(nn.Module):
    """``DeepLab(backbone="mobilenet", output_stride=16, num_classes=21)`` inside ``DeepLabV3Model``."""

    def __init__(self, classes: int = 21) -> None:
        super().__init__()
        features = _mobilenet_v2_os16()
        self.low, self.high = features[:4], features[4:]
        self.aspp = _ASPP()
        self.reduce = _cbr(24, 48)
        self.head = nn.Sequential(
            _cbr(304, 256, 3, 1, 1), _cbr(256, 256, 3, 1, 1), nn.Conv2d(256, classes, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low = self.low(imagenet_normalize(image))
        x = self.aspp(self.high(low))
        low = self.reduce(low)
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=True)
        x = self.head(torch.cat((x, low), 1))
        x = F.interpolate(x, size=image.shape[2:], mode="bilinear", align_corners=True)
        return x.argmax(1).to(torch.uint8)


# --- PSPNet (hszhao semseg) -----------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3), as semseg's ``resnet.py``."""

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        cout = planes * 4
        self.body = nn.Sequential(
            _cbr(cin, planes), _cbr(planes, planes, 3, stride, dilation, dilation),
            nn.Conv2d(planes, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


def _stage(cin: int, planes: int, blocks: int, stride: int, dilation: int) -> nn.Sequential:
    """semseg sets every 3x3 of layer3/4 to the stage's dilation (torchvision keeps block 0 at the old one)."""
    layers = [_Bottleneck(cin, planes, stride, dilation)]
    layers += [_Bottleneck(planes * 4, planes, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class PSPNet(nn.Module):
    """``PSPNet(layers=101, bins=(1, 2, 3, 6), classes=150, zoom_factor=8)`` in its Qualcomm wrapper."""

    def __init__(self, classes: int = 150, blocks: tuple[int, ...] = (3, 4, 23, 3)) -> None:
        super().__init__()
        self.layer0 = nn.Sequential(
            _cbr(3, 64, 3, 2, 1), _cbr(64, 64, 3, 1, 1), _cbr(64, 128, 3, 1, 1), nn.MaxPool2d(3, 2, 1)
        )
        self.layers = nn.Sequential(
            _stage(128, 64, blocks[0], 1, 1), _stage(256, 128, blocks[1], 2, 1),
            _stage(512, 256, blocks[2], 1, 2), _stage(1024, 512, blocks[3], 1, 4),
        )  # fmt: skip
        self.ppm = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(b), _cbr(2048, 512)) for b in (1, 2, 3, 6)]
        )
        self.cls = nn.Sequential(_cbr(4096, 512, 3, 1, 1), nn.Dropout2d(0.1), nn.Conv2d(512, classes, 1))

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x = self.layers(self.layer0(x))
        size = x.shape[2:]
        x = torch.cat(
            [x] + [F.interpolate(p(x), size, mode="bilinear", align_corners=True) for p in self.ppm], 1
        )
        return F.interpolate(self.cls(x), size=(h, w), mode="bilinear", align_corners=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = F.softmax(self._net(imagenet_normalize(torch.cat([image, image.flip(3)], 0))), dim=1)
        return ((out[0] + out[1].flip(2)) / 2).unsqueeze(0)


# --- DDRNet-23-slim -------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _cbr(cin, planes, 3, stride, 1),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes),
        )
        self.down = _down(cin, planes, stride)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + (x if self.down is None else self.down(x))
        return F.relu(out) if self.relu else out


class _DDRBottleneck(nn.Module):
    """DDRNet's bottleneck: expansion 2 and, as the only block of its stage, no final ReLU."""

    expansion = 2

    def __init__(self, cin: int, planes: int, stride: int = 1, relu: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _cbr(cin, planes), _cbr(planes, planes, 3, stride, 1),
            nn.Conv2d(planes, planes * 2, 1, bias=False), nn.BatchNorm2d(planes * 2),
        )  # fmt: skip
        self.down = _down(cin, planes * 2, stride)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x) + (x if self.down is None else self.down(x))
        return F.relu(out) if self.relu else out


def _down(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


def _layer(block: type, cin: int, planes: int, n: int, stride: int = 1) -> nn.Sequential:
    """``_make_layer``: the last of several blocks drops its ReLU; a lone block keeps its default."""
    if n == 1:
        return nn.Sequential(block(cin, planes, stride))
    out = planes * block.expansion
    rest = [block(out, planes, 1, relu=i < n - 1) for i in range(1, n)]
    return nn.Sequential(block(cin, planes, stride, relu=True), *rest)


def _brc(cin: int, cout: int, k: int = 1, pad: int = 0) -> nn.Sequential:
    """Pre-activation unit (BN, ReLU, conv) used throughout DAPPM and the head."""
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, cout, k, padding=pad, bias=False)
    )


class _DAPPM(nn.Module):
    def __init__(self, cin: int, branch: int, cout: int) -> None:
        super().__init__()
        pools = [
            nn.AvgPool2d(5, 2, 2),
            nn.AvgPool2d(9, 4, 4),
            nn.AvgPool2d(17, 8, 8),
            nn.AdaptiveAvgPool2d(1),
        ]
        self.scale0 = _brc(cin, branch)
        self.scales = nn.ModuleList([nn.Sequential(p, _brc(cin, branch)) for p in pools])
        self.process = nn.ModuleList([_brc(branch, branch, 3, 1) for _ in pools])
        self.compression = _brc(branch * 5, cout)
        self.shortcut = _brc(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.scale0(x)]
        for scale, process in zip(self.scales, self.process, strict=True):
            up = F.interpolate(scale(x), size=x.shape[2:], mode="bilinear")
            outs.append(process(up + outs[-1]))
        return self.compression(torch.cat(outs, 1)) + self.shortcut(x)


class DDRNet23Slim(nn.Module):
    """``DualResNet(BasicBlock, [2, 2, 2, 2], planes=32, spp_planes=128, head_planes=64, augment=False)``."""

    def __init__(self, classes: int = 19, p: int = 32, spp: int = 128, head: int = 64) -> None:
        super().__init__()
        hi = p * 2
        self.stem = nn.Sequential(_conv_bn_relu_bias(3, p), _conv_bn_relu_bias(p, p))
        self.layer1, self.layer2 = _layer(BasicBlock, p, p, 2), _layer(BasicBlock, p, p * 2, 2, 2)
        self.layer3, self.layer4 = (
            _layer(BasicBlock, p * 2, p * 4, 2, 2),
            _layer(BasicBlock, p * 4, p * 8, 2, 2),
        )
        self.layer3_, self.layer4_ = _layer(BasicBlock, p * 2, hi, 2), _layer(BasicBlock, hi, hi, 2)
        self.layer5_, self.layer5 = (
            _layer(_DDRBottleneck, hi, hi, 1),
            _layer(_DDRBottleneck, p * 8, p * 8, 1, 2),
        )
        self.compression3 = nn.Sequential(nn.Conv2d(p * 4, hi, 1, bias=False), nn.BatchNorm2d(hi))
        self.compression4 = nn.Sequential(nn.Conv2d(p * 8, hi, 1, bias=False), nn.BatchNorm2d(hi))
        self.down3 = nn.Sequential(nn.Conv2d(hi, p * 4, 3, 2, 1, bias=False), nn.BatchNorm2d(p * 4))
        self.down4 = nn.Sequential(
            _cbr(hi, p * 4, 3, 2, 1), nn.Conv2d(p * 4, p * 8, 3, 2, 1, bias=False), nn.BatchNorm2d(p * 8)
        )
        self.spp = _DAPPM(p * 16, spp, p * 4)
        self.final = nn.Sequential(
            _brc(p * 4, head, 3, 1), nn.BatchNorm2d(head), nn.ReLU(), nn.Conv2d(head, classes, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = (image.shape[2] // 8, image.shape[3] // 8)
        x1 = self.layer1(self.stem(imagenet_normalize(image)))
        x2 = self.layer2(F.relu(x1))
        x = self.layer3(F.relu(x2))
        x_ = self.layer3_(F.relu(x2))
        up3 = F.interpolate(self.compression3(F.relu(x)), size=size, mode="bilinear")
        x, x_ = x + self.down3(F.relu(x_)), x_ + up3
        x = self.layer4(F.relu(x))
        x_ = self.layer4_(F.relu(x_))
        up4 = F.interpolate(self.compression4(F.relu(x)), size=size, mode="bilinear")
        x, x_ = x + self.down4(F.relu(x_)), x_ + up4
        x_ = self.layer5_(F.relu(x_))
        x = F.interpolate(self.spp(self.layer5(F.relu(x))), size=size, mode="bilinear")
        return self.final(x + x_)


def _conv_bn_relu_bias(cin: int, cout: int) -> nn.Sequential:
    """DDRNet's stem convs keep their bias (the only biased 3x3 convs in the network)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "deeplabv3_plus_mobilenet": DeepLabV3PlusMobileNet,
    "pspnet": PSPNet,
    "ddrnet23_slim": DDRNet23Slim,
}

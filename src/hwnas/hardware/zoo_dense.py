"""Dense-prediction graphs of ``qai-hub-models`` written out (their sources are cloned at run time).

Qualcomm builds PIDNet, MiDaS and SINet from repositories it clones (and patches) on first use, so
the wheel ships only the wrappers and the patch files. Latency depends on the graph, not on the
weights, so each class below follows the published design layer for layer with random weights, and
repeats what Qualcomm's wrapper adds around the network, since the device timed that too.

- ``pidnet``: PIDNet-S (``get_pred_model("pidnet-s", 19)``: planes 32, PAPPM 96, head 128) without
  the auxiliary P/D heads; ImageNet normalisation in-graph; 19-class logits at 1/8 resolution.
- ``midas``: MiDaS v2.1 small, an EfficientNet-Lite3 encoder (timm's, with TF "same" padding as
  geffnet's exportable build) and the expanding 64/128/256/512 fusion decoder; ImageNet
  normalisation in-graph; the patched output keeps its channel axis (1x1xHxW).
- ``sinet``: SINet (p=2, q=8, the ten-entry kernel/pooling config of Qualcomm's loader, 2 classes)
  behind Qualcomm's RGB->BGR swap and its mean/std scaling; logits at full resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.hardware.zoo_seg import (  # DDRNet's block; PIDNet derives from DDRNet
    BasicBlock,
    imagenet_normalize,
)


def _cb(cin: int, cout: int, k: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


def _up(x: torch.Tensor, size: tuple[int, ...] | None = None, scale: int | None = None) -> torch.Tensor:
    """Bilinear resize; a fixed ``scale`` is always the aligned-corners kind in these sources."""
    return F.interpolate(x, size=size, scale_factor=scale, mode="bilinear", align_corners=scale is not None)


# --- PIDNet-S (XuJiacong/PIDNet) ------------------------------------------------------------------


class _Bottleneck(nn.Module):
    """PIDNet's bottleneck never ends in a ReLU (its ``no_relu`` defaults to True everywhere used)."""

    expansion = 2

    def __init__(self, cin: int, planes: int, stride: int = 1, relu: bool = False) -> None:
        super().__init__()
        out = planes * 2
        self.body = nn.Sequential(
            nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out),
        )  # fmt: skip
        self.down = _cb(cin, out, 1, stride) if stride != 1 or cin != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.down is None else self.down(x))


def _layer(block: type[nn.Module], cin: int, planes: int, n: int, stride: int = 1) -> nn.Sequential:
    """A stage whose last block skips its closing ReLU (the next stage applies one itself)."""
    blocks = []
    for i in range(n):
        blocks.append(block(cin, planes, stride if i == 0 else 1, i < n - 1))
        cin = planes * block.expansion  # type: ignore[attr-defined]
    return nn.Sequential(*blocks)


def _brc(cin: int, cout: int, k: int = 1, groups: int = 1) -> nn.Sequential:
    """Pre-activation conv (BN, ReLU, conv) as in the PAPPM and the segmentation head."""
    return nn.Sequential(
        nn.BatchNorm2d(cin),
        nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, k, 1, k // 2, groups=groups, bias=False),
    )


class _PAPPM(nn.Module):
    """Parallel aggregation pyramid pooling: four pooled scales share one grouped 3x3."""

    def __init__(self, cin: int = 512, branch: int = 96, cout: int = 128) -> None:
        super().__init__()
        pools = [nn.AvgPool2d(k, s, k // 2) for k, s in ((5, 2), (9, 4), (17, 8))] + [nn.AdaptiveAvgPool2d(1)]
        self.scales = nn.ModuleList(nn.Sequential(p, *_brc(cin, branch)) for p in pools)
        self.scale0 = _brc(cin, branch)
        self.process = _brc(branch * 4, branch * 4, 3, groups=4)
        self.compression = _brc(branch * 5, cout)
        self.shortcut = _brc(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.scale0(x)
        pooled = [_up(s(x), x.shape[2:]) + x0 for s in self.scales]
        out = self.process(torch.cat(pooled, 1))
        return self.compression(torch.cat([x0, out], 1)) + self.shortcut(x)


class _PagFM(nn.Module):
    """Pixel-attention-guided fusion of the I-branch context into the P branch."""

    def __init__(self, cin: int, mid: int) -> None:
        super().__init__()
        self.f_x, self.f_y = _cb(cin, mid), _cb(cin, mid)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        sim = torch.sigmoid(torch.sum(self.f_x(x) * _up(self.f_y(y), size), dim=1).unsqueeze(1))
        return (1 - sim) * x + sim * _up(y, size)


class _LightBag(nn.Module):
    """Boundary-attention-guided fusion of P, I and D branches (PIDNet-S/M's light variant)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_p, self.conv_i = _cb(c, c), _cb(c, c)

    def forward(self, p: torch.Tensor, i: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        att = torch.sigmoid(d)
        return self.conv_p((1 - att) * i + p) + self.conv_i(i + att * p)


class PIDNetS(nn.Module):
    """``PidNet`` (CityscapesSegmentor): PIDNet-S in inference mode, logits at 1/8 resolution."""

    def __init__(self, classes: int = 19, p: int = 32) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, p, 3, 2, 1), nn.BatchNorm2d(p), nn.ReLU(inplace=True),
            nn.Conv2d(p, p, 3, 2, 1), nn.BatchNorm2d(p), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.layer1 = _layer(BasicBlock, p, p, 2)
        self.layer2 = _layer(BasicBlock, p, p * 2, 2, 2)
        self.layer3 = _layer(BasicBlock, p * 2, p * 4, 3, 2)
        self.layer4 = _layer(BasicBlock, p * 4, p * 8, 3, 2)
        self.layer5 = _layer(_Bottleneck, p * 8, p * 8, 2, 2)
        self.compression3, self.compression4 = _cb(p * 4, p * 2), _cb(p * 8, p * 2)
        self.pag3, self.pag4 = _PagFM(p * 2, p), _PagFM(p * 2, p)
        self.layer3_ = _layer(BasicBlock, p * 2, p * 2, 2)
        self.layer4_ = _layer(BasicBlock, p * 2, p * 2, 2)
        self.layer5_ = _layer(_Bottleneck, p * 2, p * 2, 1)
        self.layer3_d = BasicBlock(p * 2, p, relu=False)
        self.layer4_d = _layer(_Bottleneck, p, p, 1)
        self.layer5_d = _layer(_Bottleneck, p * 2, p * 2, 1)
        self.diff3, self.diff4 = _cb(p * 4, p, 3), _cb(p * 8, p * 2, 3)
        self.spp = _PAPPM(p * 16, 96, p * 4)
        self.dfm = _LightBag(p * 4)
        self.head = nn.Sequential(
            *_brc(p * 4, 128, 3), nn.BatchNorm2d(128), nn.ReLU(), nn.Conv2d(128, classes, 1)
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        size = (image.shape[2] // 8, image.shape[3] // 8)
        x = self.layer1(self.stem(imagenet_normalize(image)))
        x = F.relu(self.layer2(F.relu(x)))
        x_, x_d = self.layer3_(x), self.layer3_d(x)
        x = F.relu(self.layer3(x))
        x_ = self.pag3(x_, self.compression3(x))
        x_d = x_d + _up(self.diff3(x), size)
        x = F.relu(self.layer4(x))
        x_, x_d = self.layer4_(F.relu(x_)), self.layer4_d(F.relu(x_d))
        x_ = self.pag4(x_, self.compression4(x))
        x_d = x_d + _up(self.diff4(x), size)
        x_, x_d = self.layer5_(F.relu(x_)), self.layer5_d(F.relu(x_d))
        x = _up(self.spp(self.layer5(x)), size)
        return self.head(self.dfm(x_, x, x_d))


# --- MiDaS v2.1 small (isl-org/MiDaS) -------------------------------------------------------------


class _RCU(nn.Module):
    """Residual conv unit of the small decoder: ReLU-conv-ReLU-conv plus identity, biased convs."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3, 1, 1), nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class _Fusion(nn.Module):
    """Fusion block: skip RCU (absent on the deepest block, which has no skip), RCU, x2 up, 1x1.

    The source also builds the deepest block's skip RCU, but never calls it, so it is not in the
    exported graph (nor in Qualcomm's parameter count); it is left out here.
    """

    def __init__(self, c: int, out: int, skip: bool = True) -> None:
        super().__init__()
        self.res1 = _RCU(c) if skip else None
        self.res2 = _RCU(c)
        self.out_conv = nn.Conv2d(c, out, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.res1 is not None and skip is not None:
            x = x + self.res1(skip)
        x = _up(self.res2(x), scale=2)
        return self.out_conv(x)


def _static_same(net: nn.Module) -> nn.Module:
    """Give timm's TF-"same" strided convs a fixed ``ZeroPad2d``, as geffnet's exportable build does.

    timm pads at run time, which leaves shape arithmetic in the graph; for inputs divisible by the
    stride (MiDaS needs 32 anyway) the total pad is ``k - s``, the extra pixel right and bottom.
    """
    for parent in list(net.modules()):
        for name, child in parent.named_children():
            if type(child).__name__ == "Conv2dSame":
                total = child.kernel_size[0] - child.stride[0]
                conv = nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                                 groups=child.groups, bias=child.bias is not None)  # fmt: skip
                conv.load_state_dict(child.state_dict())
                setattr(parent, name, nn.Sequential(nn.ZeroPad2d((total // 2, total - total // 2) * 2), conv))
    return net


class MidasSmall(nn.Module):
    """``Midas``: ``MidasNet_small(features=64, efficientnet_lite3, expand=True, non_negative=True)``."""

    def __init__(self, features: int = 64) -> None:
        super().__init__()
        from hwnas.hardware.zoo import timm_module

        net = _static_same(timm_module().create_model("tf_efficientnet_lite3", pretrained=False))
        # timm folds the stem activation into ``bn1``; geffnet keeps it as ``act1``: same graph.
        b, seq = net.blocks, nn.Sequential
        self.encoder = nn.ModuleList([seq(net.conv_stem, net.bn1, *b[0:2]), b[2], seq(*b[3:5]), seq(*b[5:7])])
        widths = [features * 2**i for i in range(4)]
        self.rn = nn.ModuleList(
            nn.Conv2d(cin, c, 3, 1, 1, bias=False) for cin, c in zip((32, 48, 136, 384), widths, strict=True)
        )
        self.fuse = nn.ModuleList(
            [_Fusion(features, features)] + [_Fusion(c, c // 2, skip=i < 2) for i, c in enumerate(widths[1:])]
        )
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, 3, 1, 1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(features // 2, 32, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(32, 1, 1), nn.ReLU(),
        )  # fmt: skip

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x, feats = imagenet_normalize(image), []
        for stage, rn in zip(self.encoder, self.rn, strict=True):
            x = stage(x)
            feats.append(rn(x))
        x = self.fuse[3](feats[3])
        for i in (2, 1, 0):
            x = self.fuse[i](x, feats[i])
        return self.output_conv(x)


# --- SINet (clovaai/ext_portrait_segmentation) ----------------------------------------------------


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3)


def _cbr_prelu(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), _bn(cout), nn.PReLU(cout))


class _Squeeze(nn.Module):
    """SE with PReLU gates and no sigmoid (the source's choice); ``divide=1`` is a single layer."""

    def __init__(self, c: int, divide: int) -> None:
        super().__init__()
        h = c // divide
        layers = [nn.Linear(c, h), nn.PReLU(h), nn.Linear(h, c), nn.PReLU(c)] if divide > 1 else []
        self.dense = nn.Sequential(*(layers or [nn.Linear(c, c), nn.PReLU(c)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        gate = self.dense(F.avg_pool2d(x, kernel_size=[h, w]).view(b, -1))
        return gate.view(b, c, 1, 1) * x


def _se_sep(cin: int, cout: int, divide: int) -> nn.Sequential:
    """Strided depthwise 3x3, squeeze, pointwise, BN, PReLU (``SEseparableCBR``)."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 2, 1, groups=cin, bias=False), _Squeeze(cin, divide),
        nn.Conv2d(cin, cout, 1, bias=False), _bn(cout), nn.PReLU(cout),
    )  # fmt: skip


class _S2Block(nn.Module):
    """Optional avg-pool by ``pool``, depthwise k x k + BN, PReLU, pointwise, bilinear back up, BN."""

    def __init__(self, cin: int, cout: int, k: int, pool: int) -> None:
        super().__init__()
        self.pool = pool
        self.body = nn.Sequential(
            nn.Conv2d(cin, cin, k, 1, k // 2, groups=cin, bias=False), _bn(cin),
            nn.PReLU(cin), nn.Conv2d(cin, cout, 1, bias=False),
        )  # fmt: skip
        self.bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool, self.pool)
        x = self.body(x)
        if self.pool > 1:
            x = _up(x, scale=self.pool)
        return self.bn(x)


class _S2Module(nn.Module):
    """Grouped 1x1 reduce, channel shuffle, two S2 blocks on the same input, concat, residual, BN-PReLU."""

    def __init__(self, cin: int, cout: int, config: tuple[tuple[int, int], ...], add: bool = True) -> None:
        super().__init__()
        n = cout // 2
        self.reduce = nn.Conv2d(cin, n, 1, bias=False, groups=2)
        (k1, p1), (k2, p2) = config
        self.d1, self.d2 = _S2Block(n, cout - n, k1, p1), _S2Block(n, n, k2, p2)
        self.br = nn.Sequential(_bn(cout), nn.PReLU(cout))
        self.add = add

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        b, c, h, w = y.shape
        y = torch.transpose(y.view(b, 2, c // 2, h, w), 1, 2).contiguous().view(b, -1, h, w)
        out = torch.cat([self.d1(y), self.d2(y)], 1)
        return self.br(x + out if self.add else out)


#: (kernel, avg-pool) of each S2 block, two per module, as Qualcomm's loader passes them.
SINET_CONFIG = (
    ((3, 1), (5, 1)), ((3, 1), (3, 1)), ((3, 1), (5, 1)), ((3, 1), (3, 1)), ((5, 1), (3, 2)),
    ((5, 2), (3, 4)), ((3, 1), (3, 1)), ((5, 1), (5, 1)), ((3, 2), (3, 4)), ((3, 1), (5, 2)),
)  # fmt: skip


class SINet(nn.Module):
    """``SINet`` (SelfieSegmentor): ``SINet(classes=2, p=2, q=8, chnn=1)`` with BGR mean/std input."""

    MEAN_BGR = (107.304565, 115.69884, 132.35703)
    STD_BGR = (63.97182, 65.1337, 68.29726)

    def __init__(self, classes: int = 2, p: int = 2, q: int = 8) -> None:
        super().__init__()
        d1, d2, d3 = 16, 48, 96
        cfg = SINET_CONFIG
        self.level1 = _cbr_prelu(3, 12, 3, 2)
        self.level2_0 = _se_sep(12, d1, divide=1)
        self.level2 = nn.Sequential(*(_S2Module(d2 if i else d1, d2, cfg[i], add=i > 0) for i in range(p)))
        self.br2 = nn.Sequential(_bn(d1 + d2), nn.PReLU(d1 + d2))
        self.level3_0 = _se_sep(d1 + d2, d2, divide=2)
        self.level3 = nn.Sequential(
            *(_S2Module(d3 if i else d2, d3, cfg[2 + i], add=i > 0) for i in range(q))
        )
        self.br3 = nn.Sequential(_bn(d2 + d3), nn.PReLU(d2 + d3))
        self.enc_classifier = nn.Conv2d(d2 + d3, classes, 1, bias=False)
        self.bn_3, self.bn_2 = _bn(classes), _bn(classes)
        self.level2_c = _cbr_prelu(d2, classes, 1)
        self.classifier = nn.Conv2d(classes, classes, 3, 1, 1, bias=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.MEAN_BGR, dtype=image.dtype).view(1, 3, 1, 1) / 255
        std = torch.tensor(self.STD_BGR, dtype=image.dtype).view(1, 3, 1, 1)
        x = (image[:, [2, 1, 0]] - mean) / std  # Qualcomm's scaling: mean in [0, 1], std not rescaled
        out2_0 = self.level2_0(self.level1(x))
        out2 = self.level2(out2_0)
        out3_0 = self.level3_0(self.br2(torch.cat([out2_0, out2], 1)))
        enc = self.enc_classifier(self.br3(torch.cat([out3_0, self.level3(out3_0)], 1)))
        stage1 = self.bn_3(_up(enc, scale=2))
        confidence = torch.max(nn.Softmax2d()(stage1), dim=1)[0]
        gate = (1 - confidence).unsqueeze(1).expand(stage1.shape)
        stage2 = self.bn_2(_up(self.level2_c(out2) * gate + stage1, scale=2))
        return self.classifier(_up(stage2, scale=2))


BUILDERS: dict[str, Callable[[], nn.Module]] = {"pidnet": PIDNetS, "midas": MidasSmall, "sinet": SINet}

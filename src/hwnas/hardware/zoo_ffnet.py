"""FFNet segmentation graphs of ``qai-hub-models`` written out (their source is cloned at run time).

Qualcomm's ``cityscapes_segmentation/ffnet_model.py`` builds these through the model registry of
``Qualcomm-AI-research/FFNet`` (Mehta et al., "Simple and Efficient Architectures for Semantic
Segmentation", CVPRW 2022), which it clones on first use, so nothing importable ships in the wheel.
Latency depends on the graph, not the weights, so the classes below follow that published design
(block types, channel counts, strides, adapter and up-head wiring, nearest upsampling, heads) with
random weights. The wrapper's ``forward`` normalises a [0, 1] RGB image with ImageNet statistics
and returns raw logits, so the graph does the same. The patch diffs in the wheel only rename a
dataset folder and read paths lazily; they do not touch the network.

- ``ffnet_40s`` / ``ffnet_54s`` / ``ffnet_78s``: "dBBB mobile" variants: the slim ResNet backbone
  (3x3 stem to 32 then 64 channels, both stride 2; four BasicBlock stages of 64/128/192/320 channels,
  every stage stride 2, hence "d"), head "B_mobile" (1x1 adapters to 64/128/128/256, up-branch
  outputs 96/96/64/32) and segmentation head "B" (3x3 to 256, 3x3 to 19). Input 1024x2048, logits
  at 1/8: 128x256.
- ``ffnet_78s_lowres``: "BCC mobile" 78S with the first stage at stride 1, head "C_mobile" (adapters
  to 128 each, up-branch outputs 128/16/16/16) and segmentation head "C" (3x3 to 128, 1x1 to 19).
  Qualcomm switches the Gaussian pre-downsampling off and feeds 512x1024 directly; logits at 1/4.
- ``ffnet_122ns_lowres``: "CCC mobile" 122NS: the narrow three-stage backbone (3x3 stem 64, 64
  stride 2 each, then a stride-1 3x3 to 64 that gives the 1/4 branch; BasicBlock stages of 16/24/20
  blocks at 64/128/256 channels), head "C_mobile" and segmentation head "C", 512x1024 in, 1/4 out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.hardware.zoo_seg import imagenet_normalize

_CLASSES = 19

#: Up-head presets: (adapter widths, up-branch output widths) for heads "B_mobile" and "C_mobile".
_HEADS = {
    "B": ((64, 128, 128, 256), (96, 96, 64, 32)),
    "C": ((128, 128, 128, 128), (128, 16, 16, 16)),
}


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU: FFNet's stems, adapters and up-branch convs are all this."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class _Basic(nn.Module):
    """ResNet BasicBlock; the projection shortcut appears whenever width or stride changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.short: nn.Module = nn.Identity()
        if cin != cout or stride != 1:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.short(x) + self.body(x))


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` BasicBlocks; only the first changes width or resolution."""
    return nn.Sequential(
        *(_Basic(cin if i == 0 else cout, cout, stride if i == 0 else 1) for i in range(blocks))
    )


class _SlimBackbone(nn.Module):
    """FFNet's "S" ResNet: two stride-2 3x3 stem convs, four BasicBlock stages (branches 1..4)."""

    def __init__(
        self, blocks: Sequence[int], strides: Sequence[int], widths: Sequence[int] = (64, 128, 192, 320)
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, 32, stride=2), _cbr(32, 64, stride=2))
        ins = (64, *widths[:-1])
        self.stages = nn.ModuleList(
            _stage(i, o, n, s) for i, o, n, s in zip(ins, widths, blocks, strides, strict=True)
        )
        self.out_channels = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class _NarrowBackbone(nn.Module):
    """FFNet's "NS" ResNet: a three-conv stem gives the 1/4 branch, three stride-2 stages the rest."""

    def __init__(self, blocks: Sequence[int], widths: Sequence[int] = (64, 64, 128, 256)) -> None:
        super().__init__()
        self.stem = nn.Sequential(_cbr(3, 64, stride=2), _cbr(64, 64, stride=2), _cbr(64, widths[0]))
        self.stages = nn.ModuleList(
            _stage(i, o, n, 2) for i, o, n in zip(widths[:-1], widths[1:], blocks, strict=True)
        )
        self.out_channels = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Mobile FFNets upsample with nearest neighbour to the finer branch's exact size."""
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


class _UpHead(nn.Module):
    """Adapters, a top-down up-branch, concat of all scales at the finest one, then the classifier.

    Branches are ordered fine to coarse. Each coarser level is squeezed by a 1x1 conv to the next
    finer adapter width, upsampled and added to it; every level also gets a 3x3 "smoothing" conv
    whose outputs are upsampled to the finest level and concatenated for the segmentation head.
    """

    def __init__(self, in_chans: Sequence[int], head: str) -> None:
        super().__init__()
        base, outs = _HEADS[head]
        self.adapt = nn.ModuleList(_cbr(i, b, k=1) for i, b in zip(in_chans, base, strict=True))
        self.smooth = nn.ModuleList(_cbr(b, o) for b, o in zip(base, outs, strict=True))
        self.squeeze = nn.ModuleList(_cbr(base[i + 1], base[i], k=1) for i in range(len(base) - 1))
        mid, k_out = (256, 3) if head == "B" else (128, 1)
        self.classify = nn.Sequential(
            nn.Conv2d(sum(outs), mid, 3, 1, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, _CLASSES, k_out, 1, k_out // 2),
        )  # fmt: skip

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        x = [a(f) for a, f in zip(self.adapt, feats, strict=True)]
        level = x[-1]
        smoothed = [self.smooth[-1](level)]
        for i in range(len(x) - 2, -1, -1):
            level = _up(self.squeeze[i](level), x[i]) + x[i]
            smoothed.insert(0, self.smooth[i](level))
        fine = smoothed[0]
        return self.classify(torch.cat([fine, *(_up(s, fine) for s in smoothed[1:])], dim=1))


class FFNetSeg(nn.Module):
    """Qualcomm's ``CityscapesSegmentor`` around FFNet: normalise in-graph, return raw logits."""

    def __init__(self, backbone: nn.Module, head: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = _UpHead(backbone.out_channels, head)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(imagenet_normalize(image)))


def _slim(blocks: tuple[int, ...], strides: tuple[int, ...], head: str) -> FFNetSeg:
    return FFNetSeg(_SlimBackbone(blocks, strides), head)


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "ffnet_40s": partial(_slim, (4, 5, 6, 4), (2, 2, 2, 2), "B"),
    "ffnet_54s": partial(_slim, (5, 8, 8, 5), (2, 2, 2, 2), "B"),
    "ffnet_78s": partial(_slim, (6, 12, 12, 8), (2, 2, 2, 2), "B"),
    "ffnet_78s_lowres": partial(_slim, (6, 12, 12, 8), (1, 2, 2, 2), "C"),
    "ffnet_122ns_lowres": lambda: FFNetSeg(_NarrowBackbone((16, 24, 20)), "C"),
}

"""An elastic hourglass supernet: every network of a hourglass space's ranges shares its weights.

The supernet holds the largest configuration (widest levels, deepest blocks, largest kernels, deepest
skips). A sub-network is a :class:`~hwnas.models.hourglass.HourglassConfig`; activating it makes the
forward pass use

* **elastic width**: the first ``c`` output (and input) channels of each convolution and BatchNorm;
* **elastic depth**: the first ``k`` layers of each down, up and skip block (0 skip layers = identity);
* **elastic kernel**: the centre ``k×k`` of the largest kernel (``kernel_mode="shared"``, as
  Once-for-All without its transform matrices) or a separate weight per kernel size
  (``kernel_mode="separate"``); ``make bench-supernet`` says which ranks better.

Contract (as Once-for-All's supernets): ``set_active(config)``, ``sample(rng)``, ``extract(config)``: a
standalone :class:`HourglassNet` holding copies of the active slices, whose outputs equal the active
supernet's exactly (tested). Plain torch; never imports Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hwnas.models.hourglass import HourglassConfig, HourglassNet, LevelConfig, level_channels
from hwnas.models.ops import ConvBNReLU

KERNEL_MODES = ("shared", "separate")


@dataclass(frozen=True)
class ElasticRanges:
    """The choices a hourglass supernet must contain (a hourglass search space's ranges)."""

    num_levels: int
    base_channels: tuple[int, ...]
    layers: tuple[int, ...]
    kernels: tuple[int, ...]
    expand: tuple[float, ...]
    skip_layers: tuple[int, ...]
    max_channels: int

    def config(
        self, *, base: int, expands: Sequence[float], down: Sequence[tuple[int, int]],
        skips: Sequence[int], up: Sequence[tuple[int, int]],
    ) -> HourglassConfig:  # fmt: skip
        """A config from per-level choices (``down``/``up``: ``(layers, kernel)`` per level)."""
        chans = level_channels(base, list(expands), self.max_channels)
        levels = tuple(
            LevelConfig(
                channels=chans[i + 1],
                down_layers=down[i][0],
                down_kernel=down[i][1],
                skip_layers=skips[i],
                up_layers=up[i][0],
                up_kernel=up[i][1],
            )  # fmt: skip
            for i in range(self.num_levels)
        )
        return HourglassConfig(base_channels=chans[0], levels=levels)

    def extreme(self, pick: type[max] | type[min]) -> HourglassConfig:
        """The largest (``pick=max``) or smallest (``pick=min``) network of the ranges."""
        n = self.num_levels
        dk = (pick(self.layers), pick(self.kernels))
        return self.config(
            base=pick(self.base_channels),
            expands=[pick(self.expand)] * n,
            down=[dk] * n,
            skips=[pick(self.skip_layers)] * n,
            up=[dk] * n,
        )

    def sample(self, rng: np.random.Generator) -> HourglassConfig:
        """One network drawn uniformly per choice (the way the search space samples)."""
        n = self.num_levels

        def one(seq: Sequence):
            return seq[int(rng.integers(len(seq)))]

        return self.config(
            base=one(self.base_channels),
            expands=[one(self.expand) for _ in range(n)],
            down=[(one(self.layers), one(self.kernels)) for _ in range(n)],
            skips=[one(self.skip_layers) for _ in range(n)],
            up=[(one(self.layers), one(self.kernels)) for _ in range(n)],
        )


class ElasticConvBNReLU(nn.Module):
    """A ``ConvBNReLU`` whose output channels, input channels and kernel size are chosen per call."""

    def __init__(
        self, c_in: int, c_out: int, kernels: Sequence[int], *, stride: int = 1, kernel_mode: str = "shared"
    ) -> None:
        super().__init__()
        if kernel_mode not in KERNEL_MODES:
            raise ValueError(f"kernel_mode must be one of {KERNEL_MODES}, got {kernel_mode!r}")
        self.kernels = tuple(sorted({int(k) for k in kernels}))
        self.kmax = self.kernels[-1]
        self.stride = int(stride)
        self.kernel_mode = kernel_mode
        sizes = (self.kmax,) if kernel_mode == "shared" else self.kernels
        self.weights = nn.ParameterDict({str(k): nn.Parameter(torch.empty(c_out, c_in, k, k)) for k in sizes})
        for w in self.weights.values():  # nn.Conv2d's default initialisation
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.bn = nn.BatchNorm2d(c_out)

    def weight(self, c_out: int, c_in: int, kernel: int) -> torch.Tensor:
        """The active ``[c_out, c_in, kernel, kernel]`` slice."""
        if kernel not in self.kernels:
            raise ValueError(f"kernel {kernel} is not one of this layer's {self.kernels}")
        if self.kernel_mode == "separate":
            return self.weights[str(kernel)][:c_out, :c_in]
        off = (self.kmax - kernel) // 2
        return self.weights[str(self.kmax)][:c_out, :c_in, off : off + kernel, off : off + kernel]

    def forward(self, x: torch.Tensor, c_out: int, kernel: int) -> torch.Tensor:
        w = self.weight(c_out, x.shape[1], kernel)
        y = F.conv2d(x, w, None, self.stride, kernel // 2)
        bn = self.bn
        y = F.batch_norm(
            y, bn.running_mean[:c_out], bn.running_var[:c_out], bn.weight[:c_out], bn.bias[:c_out],
            self.training, bn.momentum if bn.momentum is not None else 0.1, bn.eps,
        )  # fmt: skip
        return F.relu(y)

    @torch.no_grad()
    def copy_to(self, target: ConvBNReLU, *, c_in: int, c_out: int, kernel: int) -> None:
        """Write the active slice into a standalone ``ConvBNReLU`` of the same shape."""
        conv, bn = target[0], target[1]
        conv.weight.copy_(self.weight(c_out, c_in, kernel))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(self.bn, name)[:c_out])
        bn.num_batches_tracked.copy_(self.bn.num_batches_tracked)


class ElasticHourglass(nn.Module):
    """The hourglass supernet of ``ranges`` (see the module docstring).

    Args:
        ranges: The choices every sub-network is drawn from.
        num_classes: Output classes.
        in_channels: Input image channels.
        kernel_mode: ``shared`` (centre slices of the largest kernel) or ``separate`` weights per kernel.
    """

    def __init__(
        self, ranges: ElasticRanges, *, num_classes: int, in_channels: int = 3, kernel_mode: str = "shared"
    ) -> None:
        super().__init__()
        self.ranges = ranges
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.kernel_mode = kernel_mode
        big = ranges.extreme(max)
        chans = [big.base_channels] + [lv.channels for lv in big.levels]
        depth, skip, ks = max(ranges.layers), max(ranges.skip_layers), ranges.kernels

        def block(c_in: int, c_out: int, n: int, kernels: Sequence[int], stride: int = 1) -> nn.ModuleList:
            return nn.ModuleList(
                ElasticConvBNReLU(
                    c_in if j == 0 else c_out,
                    c_out,
                    kernels,
                    stride=stride if j == 0 else 1,
                    kernel_mode=kernel_mode,
                )  # fmt: skip
                for j in range(n)
            )

        n = ranges.num_levels
        self.stem = ElasticConvBNReLU(in_channels, chans[0], (3,), stride=2, kernel_mode=kernel_mode)
        self.down = nn.ModuleList(block(chans[i], chans[i + 1], depth, ks, stride=2) for i in range(n))
        self.skip = nn.ModuleList(block(chans[i], chans[i], skip, (3,)) for i in range(n))
        self.up = nn.ModuleList(block(chans[i + 1], chans[i], depth, ks) for i in range(n))
        self.head = ElasticConvBNReLU(chans[0], chans[0], (3,), kernel_mode=kernel_mode)
        classifier = nn.Conv2d(chans[0], num_classes, 1)
        self.classifier_weight, self.classifier_bias = classifier.weight, classifier.bias
        # The extremes are asked for on every training step: computed once.
        self._largest, self._smallest = big, ranges.extreme(min)
        self.active: HourglassConfig = big

    # -- the supernet contract -------------------------------------------------------------------
    def set_active(self, config: HourglassConfig) -> None:
        """Make ``forward`` run ``config`` (checked against the supernet's ranges)."""
        self._check(config)
        self.active = config

    def sample(self, rng: np.random.Generator) -> HourglassConfig:
        return self.ranges.sample(rng)

    def largest(self) -> HourglassConfig:
        return self._largest

    def smallest(self) -> HourglassConfig:
        return self._smallest

    @torch.no_grad()
    def extract(self, config: HourglassConfig | None = None) -> HourglassNet:
        """A standalone ``HourglassNet`` of ``config`` (default: the active one) with the shared weights."""
        cfg = self.active if config is None else config
        self._check(cfg)
        net = HourglassNet.from_config(cfg, num_classes=self.num_classes, in_channels=self.in_channels)
        chans = [cfg.base_channels] + [lv.channels for lv in cfg.levels]
        self.stem.copy_to(net.stem, c_in=self.in_channels, c_out=chans[0], kernel=3)
        for i, lv in enumerate(cfg.levels):
            for j in range(lv.down_layers):
                c_in = chans[i] if j == 0 else chans[i + 1]
                self.down[i][j].copy_to(net.down[i][j], c_in=c_in, c_out=chans[i + 1], kernel=lv.down_kernel)
            for j in range(lv.skip_layers):
                self.skip[i][j].copy_to(net.skip[i][j], c_in=chans[i], c_out=chans[i], kernel=3)
            for j in range(lv.up_layers):
                c_in = chans[i + 1] if j == 0 else chans[i]
                self.up[i][j].copy_to(net.up[i][j], c_in=c_in, c_out=chans[i], kernel=lv.up_kernel)
        self.head.copy_to(net.head[0], c_in=chans[0], c_out=chans[0], kernel=3)
        net.head[1].weight.copy_(self.classifier_weight[:, : chans[0]])
        net.head[1].bias.copy_(self.classifier_bias)
        return net.train(self.training)

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.active
        chans = [cfg.base_channels] + [lv.channels for lv in cfg.levels]
        size = x.shape[-2:]
        feats = [self.stem(x, chans[0], 3)]
        for i, lv in enumerate(cfg.levels):
            y = feats[-1]
            for j in range(lv.down_layers):
                y = self.down[i][j](y, chans[i + 1], lv.down_kernel)
            feats.append(y)
        y = feats[-1]
        for i in reversed(range(len(cfg.levels))):
            lv = cfg.levels[i]
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            for j in range(lv.up_layers):
                y = self.up[i][j](y, chans[i], lv.up_kernel)
            s = feats[i]
            for j in range(lv.skip_layers):
                s = self.skip[i][j](s, chans[i], 3)
            y = y + s
        y = self.head(y, chans[0], 3)
        y = F.conv2d(y, self.classifier_weight[:, : chans[0]], self.classifier_bias)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)

    def _check(self, cfg: HourglassConfig) -> None:
        big = self._largest
        ok = len(cfg.levels) == len(big.levels) and cfg.base_channels <= big.base_channels
        for lv, top in zip(cfg.levels, big.levels, strict=False):
            ok = ok and lv.channels <= top.channels and lv.down_layers <= top.down_layers
            ok = ok and lv.up_layers <= top.up_layers and lv.skip_layers <= top.skip_layers
            ok = ok and lv.down_kernel in self.ranges.kernels and lv.up_kernel in self.ranges.kernels
        if not ok:
            raise ValueError(f"{cfg} is outside this supernet's ranges {self.ranges}")


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Sequence[torch.Tensor]) -> nn.Module:
    """Re-estimate every BatchNorm's statistics of ``model`` on ``batches`` (exact averages, no momentum).

    Weights inherited from a supernet were trained under many sub-networks' statistics; Once-for-All
    and BigNAS re-estimate them on a few training batches before a sub-network is scored.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = the exact mean over the batches
    model.train()
    for x in batches:
        model(x)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    return model.eval()

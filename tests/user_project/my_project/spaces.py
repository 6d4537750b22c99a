"""``TinySegSpace``: a user's own search space, written against ``hwnas.search_space.base.SearchSpace`` only."""

from __future__ import annotations

from typing import Any

from torch import nn

from hwnas.search_space.base import ArchSpec, SearchSpace


class TinySegSpace(SearchSpace):
    """A plain convolutional segmenter: width, depth and kernel size are searched; output at input size."""

    name = "tiny_seg"

    def __init__(self, widths: list[int] | None = None) -> None:
        self.widths = list(widths or [4, 8, 12])

    def choices(self) -> dict[str, list[Any]]:
        return {"width": self.widths, "depth": [1, 2, 3], "kernel": [3, 5]}

    def baseline(self) -> ArchSpec:
        return self.make({"width": self.widths[-1], "depth": 2, "kernel": 3})

    def build(self, spec: ArchSpec, *, num_classes: int, in_channels: int = 3) -> nn.Module:
        width, k = int(spec["width"]), int(spec["kernel"])
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(int(spec["depth"])):
            layers += [nn.Conv2d(channels, width, k, padding=k // 2), nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(channels, num_classes, 1))
        return nn.Sequential(*layers)

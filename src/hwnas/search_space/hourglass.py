"""``search_space=hourglass``: the stacked-hourglass face-segmentation space (Snapdragon 888 search).

Flat parameter names (always all present, so NSGA-II crosses over every one of them):
``base_channels``, and per level ``i`` (1..num_levels): ``down{i}_layers``, ``down{i}_kernel``,
``down{i}_expand``, ``skip{i}_layers``, ``up{i}_layers``, ``up{i}_kernel``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx

from hwnas.models.elastic_hourglass import ElasticHourglass, ElasticRanges
from hwnas.models.growth import GrowthMove
from hwnas.models.hourglass import HourglassConfig, HourglassNet, LevelConfig, level_channels
from hwnas.models.mixed_hourglass import MixedHourglass
from hwnas.search_space import hourglass_growth
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.utils.errors import ConfigError, InvalidArchError


class HourglassSpace(SearchSpace):
    """Encoder–decoder segmentation space with per-level depth, kernel, width and skip choices.

    Args:
        num_levels: Downsampling levels after the stride-2 stem (input sides must divide by
            ``2 ** (num_levels + 1)``).
        base_channels: Choices for the stem/head width.
        layers: Choices for down/up block depth.
        kernels: Choices for down/up kernel sizes.
        expand: Channel expansion factors of each downsample block (relative to the level above).
        skip_layers: Choices for skip block depth (0 = identity skip).
        max_channels: Cap on any level's channels.
        baseline: A hand-designed architecture (a full parameter mapping) returned by ``baseline()``.
        gradient_widths: The widths a gradient search holds fixed (it searches kernels and depths):
            ``{base_channels: 16, expand: 1.5}`` (``expand`` for every level, or ``down{i}_expand``
            keys); ``None`` = the baseline's widths.
    """

    name = "hourglass"

    def __init__(
        self,
        *,
        num_levels: int = 4,
        base_channels: Sequence[int] = (16, 24, 32, 48),
        layers: Sequence[int] = (1, 2, 3, 4),
        kernels: Sequence[int] = (3, 5, 7),
        expand: Sequence[float] = (1.0, 1.5, 2.0),
        skip_layers: Sequence[int] = (0, 1, 2),
        max_channels: int = 256,
        baseline: Mapping[str, Any] | None = None,
        gradient_widths: Mapping[str, Any] | None = None,
    ) -> None:
        if num_levels < 1:
            raise ConfigError("must be at least 1", key="search_space.num_levels", fix="set it to 1..5")
        for key, seq in (
            ("base_channels", base_channels),
            ("layers", layers),
            ("kernels", kernels),
            ("expand", expand),
        ):
            if not seq:
                raise ConfigError("must list at least one choice", key=f"search_space.{key}")
        bad_k = [k for k in kernels if k % 2 == 0 or k < 1]
        if bad_k:
            raise ConfigError(
                f"kernel sizes must be odd and positive, got {bad_k}", key="search_space.kernels"
            )
        self.num_levels = int(num_levels)
        self._choices: dict[str, list[Any]] = {"base_channels": [int(c) for c in base_channels]}
        for i in range(1, self.num_levels + 1):
            self._choices[f"down{i}_layers"] = [int(v) for v in layers]
            self._choices[f"down{i}_kernel"] = [int(v) for v in kernels]
            self._choices[f"down{i}_expand"] = [float(v) for v in expand]
            self._choices[f"skip{i}_layers"] = [int(v) for v in skip_layers]
            self._choices[f"up{i}_layers"] = [int(v) for v in layers]
            self._choices[f"up{i}_kernel"] = [int(v) for v in kernels]
        self.max_channels = int(max_channels)
        self._baseline = dict(baseline) if baseline else None
        widths = dict(gradient_widths or {})
        if "expand" in widths:
            e = widths.pop("expand")
            widths |= {f"down{i}_expand": e for i in range(1, self.num_levels + 1)}
        self.gradient_widths = widths

    def choices(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self._choices.items()}

    @property
    def divisor(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (self.num_levels + 1)

    def channels(self, spec: ArchSpec) -> list[int]:
        """Channels of the stem and of each level, after expansion and the cap."""
        v = spec.values
        expands = [float(v[f"down{i}_expand"]) for i in range(1, self.num_levels + 1)]
        return level_channels(int(v["base_channels"]), expands, self.max_channels)

    def check(self, spec: ArchSpec, *, input_size: tuple[int, int] | None = None) -> None:
        if input_size is None:
            return
        h, w = input_size
        if h % self.divisor or w % self.divisor:
            raise InvalidArchError(
                f"input {h}x{w} is not divisible by {self.divisor} (stem + {self.num_levels} stride-2 levels)",
                key="dataset.image_size",
                fix=f"use an image size that is a multiple of {self.divisor}, or fewer search_space.num_levels",
            )

    def baseline(self) -> ArchSpec:
        """The hand-designed reference architecture from the config (or a sensible default)."""
        if self._baseline is None:
            params: dict[str, Any] = {
                "base_channels": self._choices["base_channels"][len(self._choices["base_channels"]) // 2]
            }
            for i in range(1, self.num_levels + 1):
                params |= {
                    f"down{i}_layers": self._choices[f"down{i}_layers"][
                        min(1, len(self._choices[f"down{i}_layers"]) - 1)
                    ],
                    f"down{i}_kernel": self._choices[f"down{i}_kernel"][0],
                    f"down{i}_expand": self._choices[f"down{i}_expand"][-1],
                    f"skip{i}_layers": self._choices[f"skip{i}_layers"][
                        min(1, len(self._choices[f"skip{i}_layers"]) - 1)
                    ],
                    f"up{i}_layers": self._choices[f"up{i}_layers"][0],
                    f"up{i}_kernel": self._choices[f"up{i}_kernel"][0],
                }
            return self.make(params)
        return self.make(self._baseline)

    def build(self, spec: ArchSpec, *, num_classes: int, in_channels: int = 3) -> HourglassNet:
        return HourglassNet.from_config(
            self.model_config(spec), num_classes=num_classes, in_channels=in_channels
        )

    def model_config(self, spec: ArchSpec) -> HourglassConfig:
        """``spec`` as the plain model description that builds it (and that the supernet activates)."""
        self.validate(spec)
        v = spec.values
        chans = self.channels(spec)
        levels = tuple(
            LevelConfig(
                channels=chans[i],
                down_layers=int(v[f"down{i}_layers"]),
                down_kernel=int(v[f"down{i}_kernel"]),
                skip_layers=int(v[f"skip{i}_layers"]),
                up_layers=int(v[f"up{i}_layers"]),
                up_kernel=int(v[f"up{i}_kernel"]),
            )
            for i in range(1, self.num_levels + 1)
        )
        return HourglassConfig(base_channels=chans[0], levels=levels)

    def arch_graph(self, spec: ArchSpec) -> nx.DiGraph:
        """The blocks as a U: one row per resolution (stem row on top), encoder left, decoder right.

        Nodes: ``stem``, per level ``down{i}`` / ``skip{i}`` / ``up{i}`` labelled ``layers×k<kernel> c<out
        channels>`` (an identity skip says so), ``head``. Edges into an up block are the ×2 bilinear
        upsample and the skip's add.
        """
        config = self.model_config(spec)
        chans = [config.base_channels] + [lv.channels for lv in config.levels]
        n = len(config.levels)
        # Rows are layers (0 = stem's resolution, -i below it); insertion order is the order within a row:
        # stem, skip1, up1, head on top, then down{i}, skip{i+1}, up{i+1} in row -i.
        graph = nx.DiGraph(name=spec.key, align="horizontal")
        graph.add_node("stem", label=f"stem\n3×3 s2 c{chans[0]}", kind="input", layer=0)
        for i, lv in enumerate(config.levels, start=1):
            label = f"down{i}\n{lv.down_layers}×k{lv.down_kernel} c{chans[i]}"
            graph.add_node(f"down{i}", label=label, kind="down", layer=-i)
        for i, lv in enumerate(config.levels, start=1):
            body = f"{lv.skip_layers}×k3 c{chans[i - 1]}" if lv.skip_layers else "identity"
            graph.add_node(f"skip{i}", label=f"skip{i}\n{body}", kind="skip", layer=1 - i)
        for i, lv in enumerate(config.levels, start=1):
            label = f"up{i}\n{lv.up_layers}×k{lv.up_kernel} c{chans[i - 1]}"
            graph.add_node(f"up{i}", label=label, kind="up", layer=1 - i)
        graph.add_node("head", label=f"head\nc{chans[0]}", kind="output", layer=0)
        for i in range(1, n + 1):
            above = "stem" if i == 1 else f"down{i - 1}"
            graph.add_edge(above, f"down{i}", label="")
            graph.add_edge(above, f"skip{i}", label="")
            graph.add_edge(f"skip{i}", f"up{i}", label="add")
            graph.add_edge(f"down{n}" if i == n else f"up{i + 1}", f"up{i}", label="×2")
        graph.add_edge("up1", "head", label="")
        return graph

    def growth_seed(self) -> ArchSpec:
        """Petridish's start: the smallest network at ``gradient_widths`` (:mod:`.hourglass_growth`)."""
        return hourglass_growth.growth_seed(self)

    def growth_moves(self, spec: ArchSpec) -> list[GrowthMove]:
        """Petridish's candidate moves from ``spec``: one more layer, or the next kernel, per block."""
        return hourglass_growth.growth_moves(self, spec)

    def ranges(self) -> ElasticRanges:
        """This space's choices as the ranges a weight-sharing supernet must contain."""
        c = self._choices
        return ElasticRanges(
            num_levels=self.num_levels,
            base_channels=tuple(c["base_channels"]),
            layers=tuple(sorted(set(c["down1_layers"]) | set(c["up1_layers"]))),
            kernels=tuple(sorted(set(c["down1_kernel"]) | set(c["up1_kernel"]))),
            expand=tuple(c["down1_expand"]),
            skip_layers=tuple(c["skip1_layers"]),
            max_channels=self.max_channels,
        )

    def supernet(
        self, *, num_classes: int, in_channels: int = 3, kernel_mode: str = "shared"
    ) -> ElasticHourglass:
        """The elastic supernet holding every architecture of this space (``evaluator=supernet``)."""
        return ElasticHourglass(
            self.ranges(), num_classes=num_classes, in_channels=in_channels, kernel_mode=kernel_mode
        )

    def mixed_supernet(
        self, *, num_classes: int, in_channels: int = 3, fixed: Mapping[str, Any] | None = None
    ) -> MixedHourglass:
        """The mixed network gradient-based strategies search (DARTS, GDAS): kernels and depths are mixed.

        Widths are not searched by gradient: ``base_channels`` and every ``down{i}_expand`` come from
        ``fixed``, else from ``baseline()``. Any other parameter named in ``fixed`` is narrowed to that
        one value (its group keeps a single choice). ``finalize`` returns a full parameter set of this
        space.

        Args:
            num_classes: Output classes.
            in_channels: Input image channels.
            fixed: ``{param name: value}`` for the widths (and any choice to keep out of the search).
        """
        fixed = self.gradient_widths | dict(fixed or {})
        unknown = sorted(set(fixed) - set(self._choices))
        if unknown:
            raise ConfigError(
                f"unknown parameters {unknown}",
                key="search_space.gradient_widths",
                choices=["base_channels", "expand", *self._choices],
            )
        try:
            base = dict(self._baseline) if self._baseline else self.baseline().values
            spec = self.make(base | fixed)  # validates every fixed value
        except InvalidArchError as exc:
            raise ConfigError(
                f"the widths a gradient search holds fixed are not in the space: {exc.message}",
                key="search_space.gradient_widths",
                fix="set search_space.gradient_widths={base_channels: <a base_channels choice>, expand: <an expand "
                "choice>} (null = the baseline's widths, which must then be in the ranges)",
            ) from exc
        # The space's own value (2.0, not 2), so finalized parameters key like sampled ones.
        pinned = {name: self._choices[name][self._choices[name].index(spec[name])] for name in spec.values}
        widths = ["base_channels"] + [f"down{i}_expand" for i in range(1, self.num_levels + 1)]
        searched = {
            name: [pinned[name]] if name in fixed else list(values)
            for name, values in self._choices.items()
            if name not in widths
        }
        return MixedHourglass(
            choices=searched,
            channels=self.channels(spec),
            fixed={name: pinned[name] for name in widths},
            num_classes=num_classes,
            in_channels=in_channels,
        )

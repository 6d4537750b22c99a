"""Mixed layers for the hourglass space: gradient-based NAS (DARTS, GDAS) on the segmentation network.

:class:`MixedHourglass` is the network of :mod:`hwnas.models.hourglass` with every depth and kernel choice
mixed (the :class:`~hwnas.models.mixed.DifferentiableSupernet` contract); widths are fixed, so each
level's channels are known. A block holds, per layer position up to its deepest choice, one ConvBNReLU
per kernel choice (separate weights: a 3×3 never shares with a 7×7). Under mixing weights

* a layer's output is ``Σ_k w_kernel[k] · conv_k(h)`` (a :class:`MixedOp`; every layer of a block uses
  the block's one kernel weight vector, as the space has one kernel per block);
* a block's output is ``Σ_l w_layers[l] · h_{count_l}``, ``h_n`` the output after ``n`` layers
  (``h_0`` = the input: a skip block with 0 layers is the identity).

Branches whose weight is exactly 0 in value are never run, and layers deeper than the deepest depth
with a non-zero weight are not run: a hard GDAS sample costs one path, and its straight-through weights
still carry gradient to every ``α`` of the group. DARTS−'s ``aux_skip · input`` goes on every mixed choice
whose input and output shapes agree: the kernel mixture of the non-first layers of down and up blocks
(and of an up block's first layer when its channels do not change), and the depth mixture of the skip
blocks (whose layers have no kernel choice to carry it). The depth mixture of a down or up block is not
shape-preserving, so it gets none. Plain torch; never imports Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.models.mixed import DifferentiableSupernet, MixedOp
from hwnas.models.ops import ConvBNReLU

# The searched groups of each level, in the space's parameter order: ``{block}{level}_{choice}``.
_GROUPS = (("down", "layers"), ("down", "kernel"), ("skip", "layers"), ("up", "layers"), ("up", "kernel"))


class MixedBlock(nn.Module):
    """A conv stack whose kernel (shared by its layers) and layer count are mixed.

    Args:
        c_in: Input channels.
        c_out: Output channels (every layer's).
        kernels: Kernel choices (one conv per choice and layer position).
        counts: Layer-count choices; 0 (identity) only where input and output shapes agree.
        stride: Stride of the first layer.
    """

    def __init__(
        self, c_in: int, c_out: int, *, kernels: Sequence[int], counts: Sequence[int], stride: int = 1
    ) -> None:
        super().__init__()
        self.kernels = tuple(int(k) for k in kernels)
        self.counts = tuple(int(c) for c in counts)
        self.preserving = c_in == c_out and stride == 1
        if min(self.counts) < 0 or (0 in self.counts and not self.preserving):
            raise ValueError(
                f"layer counts {self.counts} are invalid for a {c_in}->{c_out} stride-{stride} block: "
                "counts must be >= 0, and 0 (identity) needs equal input and output shapes"
            )
        self.layers = nn.ModuleList(
            MixedOp(
                [
                    ConvBNReLU(c_in if j == 0 else c_out, c_out, k, stride=stride if j == 0 else 1)
                    for k in kernels
                ]
            )
            for j in range(max(self.counts))
        )

    def forward(
        self, x: torch.Tensor, w_kernel: torch.Tensor | None, w_layers: torch.Tensor, aux_skip: float = 0.0
    ) -> torch.Tensor:
        """``Σ_l w_layers[l] · h_{count_l}`` (see the module docstring); ``w_kernel=None``: one kernel."""
        wk = x.new_ones(1) if w_kernel is None else w_kernel
        active = [i for i in range(len(self.counts)) if bool(w_layers[i].detach() != 0)]
        deepest = max((self.counts[i] for i in active), default=0)
        hs = [x]
        for j in range(deepest):
            aux = aux_skip if len(self.kernels) > 1 and (j > 0 or self.preserving) else 0.0
            hs.append(self.layers[j](hs[-1], wk, aux))
        out: torch.Tensor | None = None
        for i in active:
            y = w_layers[i] * hs[self.counts[i]]
            out = y if out is None else out + y
        if out is None:  # every weight is 0: zeros shaped like the output, still on the weights' graph
            with torch.no_grad():
                shape = self.layers[0].ops[0](x).shape if self.layers else x.shape
            out = x.new_zeros(shape) * w_layers.sum()
        if aux_skip and self.preserving and len(self.kernels) == 1:
            out = out + aux_skip * x
        return out


class MixedHourglass(DifferentiableSupernet):
    """The hourglass network with mixed per-block kernels and layer counts (see the module docstring).

    Args:
        choices: The searched groups, ``{param name: choice values}``: per level ``i`` (1-based)
            ``down{i}_kernel``, ``down{i}_layers``, ``skip{i}_layers``, ``up{i}_kernel``, ``up{i}_layers``.
        channels: Channels of the stem and of each level (``level_channels`` of the fixed widths).
        fixed: The space's remaining (width) parameters, copied into every ``finalize`` result.
        num_classes: Output classes.
        in_channels: Input image channels.
    """

    def __init__(
        self,
        *,
        choices: Mapping[str, Sequence[Any]],
        channels: Sequence[int],
        fixed: Mapping[str, Any],
        num_classes: int,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.num_levels = len(channels) - 1
        self.chans = [int(c) for c in channels]
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.fixed = dict(fixed)
        names = [f"{b}{i}_{p}" for i in range(1, self.num_levels + 1) for b, p in _GROUPS]
        missing = [n for n in names if n not in choices or not choices[n]]
        if self.num_levels < 1 or missing:
            raise ValueError(f"MixedHourglass needs >= 1 level and choices for {names}; missing {missing}")
        self.choices = {n: list(choices[n]) for n in names}
        c, n = self.choices, self.num_levels
        self.stem = ConvBNReLU(in_channels, self.chans[0], 3, stride=2)

        def block(kind: str, i: int, c_in: int, c_out: int, stride: int = 1) -> MixedBlock:
            kernels = c.get(f"{kind}{i + 1}_kernel", [3])
            return MixedBlock(c_in, c_out, kernels=kernels, counts=c[f"{kind}{i + 1}_layers"], stride=stride)

        ch = self.chans
        self.down = nn.ModuleList(block("down", i, ch[i], ch[i + 1], stride=2) for i in range(n))
        self.skip = nn.ModuleList(block("skip", i, ch[i], ch[i]) for i in range(n))
        self.up = nn.ModuleList(block("up", i, ch[i + 1], ch[i]) for i in range(n))
        self.head = nn.Sequential(ConvBNReLU(ch[0], ch[0], 3), nn.Conv2d(ch[0], num_classes, 1))

    # -- the differentiable contract ------------------------------------------------------------
    def alpha_shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: (len(values),) for name, values in self.choices.items()}

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [n for n in self.choices if n not in weights]
        if missing:
            raise KeyError(f"mixing weights lack the groups {missing} (see alpha_shapes())")
        size, aux = x.shape[-2:], float(self.aux_skip)
        feats = [self.stem(x)]
        for i, block in enumerate(self.down):
            feats.append(
                block(feats[-1], weights[f"down{i + 1}_kernel"], weights[f"down{i + 1}_layers"], aux)
            )
        y = feats[-1]
        for i in reversed(range(self.num_levels)):
            y = F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False)
            up = self.up[i](y, weights[f"up{i + 1}_kernel"], weights[f"up{i + 1}_layers"], aux)
            y = up + self.skip[i](feats[i], None, weights[f"skip{i + 1}_layers"], aux)
        y = self.head(y)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)

    def finalize(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The fixed widths plus, per group, the choice with the largest ``α`` (ties: the lowest index)."""
        params = dict(self.fixed)
        for name, values in self.choices.items():
            a = alphas[name].detach().float().cpu().reshape(-1)
            if a.numel() != len(values) or not bool(torch.isfinite(a).all()):
                raise ValueError(f"α[{name!r}] must hold {len(values)} finite values, got {a.tolist()}")
            params[name] = values[int((a == a.max()).nonzero()[0])]
        return params

    def latency_ops(self, input_shape: tuple[int, ...]) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
        """Every distinct op at its input shape (the names are listed in :meth:`_layout`)."""
        n, h, w = self._input(input_shape)
        return {name: (module, (n, *shape)) for name, module, shape in self._layout(h, w).values()}

    def expected_latency(
        self,
        probs: Mapping[str, torch.Tensor],
        table: Mapping[str, float],
        *,
        input_shape: tuple[int, ...] | None = None,
    ) -> torch.Tensor:
        """``E[latency]`` (ms): the fixed parts plus each block's expected cost under ``probs``.

        A down or up block costs ``Σ_l Σ_k p_layers[l] · p_kernel[k] · (first(k) + (count_l − 1) · rest(k))``
        (``first``: its channel-changing layer, ``rest``: one shape-preserving layer, both of kernel ``k``);
        a skip block ``Σ_l p_layers[l] · count_l · layer`` (its 3×3 layer; 0 layers cost nothing). Layers
        are assumed to cost the same whatever surrounds them, so the sum is linear in each group's ``p``.

        Args:
            probs: ``softmax(α)`` per group.
            table: ``{name: ms}`` measured for the ops of :meth:`latency_ops` at one input shape.
            input_shape: That shape; by default read from the table's (single) stem entry.
        """
        h, w = self._table_size(table) if input_shape is None else self._input(input_shape)[1:]
        lay = self._layout(h, w)
        ref = next(iter(probs.values()))

        def cost(*roles: tuple) -> torch.Tensor:
            return torch.tensor(
                [_lookup(table, lay[r][0]) for r in roles], dtype=ref.dtype, device=ref.device
            )

        total = cost(("stem",), ("head",), ("classifier",), ("resize",)).sum()
        for i in range(self.num_levels):
            total = total + cost(("upsample", i)).sum()
            for kind, blk in (("down", self.down[i]), ("up", self.up[i])):
                ks = range(len(blk.kernels))
                first = cost(*[(kind, i, k, "first") for k in ks])
                rest = cost(*[(kind, i, k, "rest") for k in ks]) if len(blk.layers) > 1 else first * 0
                counts = torch.tensor(blk.counts, dtype=ref.dtype, device=ref.device)[:, None]
                per = torch.where(counts > 0, first + (counts - 1) * rest, torch.zeros_like(first))
                total = total + probs[f"{kind}{i + 1}_layers"] @ per @ probs[f"{kind}{i + 1}_kernel"]
            counts = torch.tensor(self.skip[i].counts, dtype=ref.dtype, device=ref.device)
            layer = cost(("skip", i)) if len(self.skip[i].layers) else counts[:1] * 0
            total = total + probs[f"skip{i + 1}_layers"] @ (counts * layer)
        return total

    # -- shapes and names -------------------------------------------------------------------------
    def _layout(self, h: int, w: int) -> dict[tuple, tuple[str, nn.Module, tuple[int, int, int]]]:
        """``{role: (name, module, (C, H, W) input)}`` of every op when the network input is ``h×w``.

        Names end in the op's input ``H×W``; level ``i`` is 1-based, as in the space's parameter names:
        ``hg:stem:k3:c{in}-{c0}:{H}x{W}``, ``hg:L{i}:down:first:k{k}:c{in}-{out}:..`` (the stride-2 layer),
        ``hg:L{i}:down:rest:k{k}:c{out}-{out}:..``, ``hg:L{i}:skip:k3:c{c}-{c}:..``,
        ``hg:L{i}:upsample:c{c}:..`` (the bilinear ×2 feeding up block ``i``), ``hg:L{i}:up:first:k{k}:..``,
        ``hg:L{i}:up:rest:k{k}:..``, ``hg:head:k3:..``, ``hg:classifier:k1:c{c0}-{K}:..`` and
        ``hg:resize:c{K}:{H}x{W}-{input H}x{input W}`` (the final resize). Skip additions are not counted.
        """
        res = [(h >> (i + 1), w >> (i + 1)) for i in range(self.num_levels + 1)]
        ch, nc, out = self.chans, self.num_classes, {}

        def conv(
            role: tuple, where: str, module: nn.Module, k: int, c_in: int, c_out: int, hw: tuple
        ) -> None:
            out[role] = (f"hg:{where}:k{k}:c{c_in}-{c_out}:{hw[0]}x{hw[1]}", module, (c_in, *hw))

        conv(("stem",), "stem", self.stem, 3, self.in_channels, ch[0], (h, w))
        for i in range(self.num_levels):
            lv, r = f"L{i + 1}", res[i + 1]
            for kind, c_in, c_out, r_rest in (
                ("down", ch[i], ch[i + 1], res[i + 1]), ("up", ch[i + 1], ch[i], res[i])
            ):  # fmt: skip
                blk: MixedBlock = getattr(self, kind)[i]
                for k, size in enumerate(blk.kernels):
                    conv(
                        (kind, i, k, "first"),
                        f"{lv}:{kind}:first",
                        blk.layers[0].ops[k],
                        size,
                        c_in,
                        c_out,
                        res[i],
                    )
                    if len(blk.layers) > 1:
                        rest = blk.layers[1].ops[k]
                        conv((kind, i, k, "rest"), f"{lv}:{kind}:rest", rest, size, c_out, c_out, r_rest)
            if len(self.skip[i].layers):
                conv(("skip", i), f"{lv}:skip", self.skip[i].layers[0].ops[0], 3, ch[i], ch[i], res[i])
            upsample = nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
            out[("upsample", i)] = (f"hg:{lv}:upsample:c{ch[i + 1]}:{r[0]}x{r[1]}", upsample, (ch[i + 1], *r))
        conv(("head",), "head", self.head[0], 3, ch[0], ch[0], res[0])
        conv(("classifier",), "classifier", self.head[1], 1, ch[0], nc, res[0])
        resize = nn.Upsample(size=(h, w), mode="bilinear", align_corners=False)
        r = res[0]
        out[("resize",)] = (f"hg:resize:c{nc}:{r[0]}x{r[1]}-{h}x{w}", resize, (nc, *r))
        return out

    def _input(self, input_shape: Sequence[int]) -> tuple[int, int, int]:
        """``(N, H, W)`` of a ``(N, C, H, W)`` network input, checked against the levels' halvings."""
        shape = tuple(int(v) for v in input_shape)
        div = 2 ** (self.num_levels + 1)
        if len(shape) != 4 or shape[1] != self.in_channels or shape[2] % div or shape[3] % div:
            raise ValueError(
                f"input shape {shape} must be (N, {self.in_channels}, H, W) with H and W multiples of {div} "
                f"(the stem and {self.num_levels} stride-2 levels)"
            )
        return shape[0], shape[2], shape[3]

    def _table_size(self, table: Mapping[str, float]) -> tuple[int, int]:
        """The input ``H×W`` a latency table was measured at, read from its one stem entry."""
        prefix = f"hg:stem:k3:c{self.in_channels}-{self.chans[0]}:"
        sizes = sorted({name[len(prefix) :] for name in table if name.startswith(prefix)})
        if len(sizes) != 1:
            raise ValueError(
                f"cannot tell the input size of the latency table: stem entries {prefix}* at {sizes}; "
                "pass input_shape=, or a table built from latency_ops(input_shape) at one shape"
            )
        h, w = sizes[0].split("x")
        return int(h), int(w)


def _lookup(table: Mapping[str, float], name: str) -> float:
    if name not in table:
        raise KeyError(f"latency table has no entry {name!r}; measure the ops of latency_ops(input_shape)")
    return float(table[name])

"""The mixed hourglass network (DARTS/GDAS on the segmentation space): shapes, gradients to every α,
one path under a hard sample (equal to the finalized network), deterministic finalize, the latency
expectation against a hand computation, and latency ops at the shapes they really run at."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hwnas.models.mixed import ArchParameters
from hwnas.models.mixed_hourglass import MixedHourglass
from hwnas.search_space.hourglass import HourglassSpace
from hwnas.utils.errors import ConfigError

torch.set_num_threads(1)

NUM_CLASSES = 5
# Chosen choice indices per group for the hard-sample tests: shallower than the deepest, a 0-layer skip.
CHOICE = {
    "down1_layers": 1, "down1_kernel": 1, "skip1_layers": 0, "up1_layers": 2, "up1_kernel": 0,
    "down2_layers": 0, "down2_kernel": 0, "skip2_layers": 2, "up2_layers": 1, "up2_kernel": 1,
}  # fmt: skip


def _space() -> HourglassSpace:
    # Baseline widths: base 8, expand 2.0 on both levels -> channels [8, 16, 32].
    return HourglassSpace(
        num_levels=2, base_channels=[8], layers=[1, 2, 3], kernels=[3, 5], expand=[1.0, 2.0],
        skip_layers=[0, 1, 2], max_channels=32,
    )  # fmt: skip


def _net(seed: int = 0) -> MixedHourglass:
    torch.manual_seed(seed)
    return _space().mixed_supernet(num_classes=NUM_CLASSES)


def _arch(net: MixedHourglass, seed: int = 0) -> ArchParameters:
    return ArchParameters(net.alpha_shapes(), generator=torch.Generator().manual_seed(seed))


def _straight_through(arch: ArchParameters, choice: dict[str, int]) -> dict[str, torch.Tensor]:
    """GDAS's weights: a one-hot value whose gradient is the softmax's."""
    out = {}
    for name, soft in arch.probs().items():
        hard = torch.zeros_like(soft)
        hard[choice[name]] = 1.0
        out[name] = hard - soft.detach() + soft
    return out


def _convs_called(net: nn.Module, run) -> list[nn.Module]:
    called: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: called.append(mod))
        for m in net.modules()
        if isinstance(m, nn.Conv2d)
    ]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return called


def test_forward_gives_logits_at_input_size_and_every_group_gets_gradient_under_softmax() -> None:
    net, x = _net(), torch.randn(2, 3, 32, 32)
    arch = _arch(net)
    assert net.alpha_shapes() == {
        "down1_layers": (3,), "down1_kernel": (2,), "skip1_layers": (3,), "up1_layers": (3,), "up1_kernel": (2,),
        "down2_layers": (3,), "down2_kernel": (2,), "skip2_layers": (3,), "up2_layers": (3,), "up2_kernel": (2,),
    }  # fmt: skip
    out = net(x, arch.probs())
    assert out.shape == (2, NUM_CLASSES, 32, 32)
    (out * torch.randn_like(out)).sum().backward()
    for name, alpha in arch.as_dict().items():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, name
    # The α live apart from the network: the weight optimizer never sees them.
    net_ids = {id(p) for p in net.parameters()}
    assert not net_ids & {id(p) for p in arch.parameters()}
    assert net.skip_count(net.finalize(arch.detached())) is None


def test_a_hard_sample_runs_only_the_chosen_path_and_still_trains_every_alpha() -> None:
    net, x = _net(), torch.randn(2, 3, 32, 32)
    arch = _arch(net)
    weights = _straight_through(arch, CHOICE)
    out: list[torch.Tensor] = []
    called = _convs_called(net, lambda: out.append(net(x, weights)))
    expected = [net.stem[0]]
    for i, lv in ((0, "1"), (1, "2")):
        for kind in ("down", "up"):
            count = net.choices[f"{kind}{lv}_layers"][CHOICE[f"{kind}{lv}_layers"]]
            k = CHOICE[f"{kind}{lv}_kernel"]
            expected += [getattr(net, kind)[i].layers[j].ops[k][0] for j in range(count)]
        count = net.choices[f"skip{lv}_layers"][CHOICE[f"skip{lv}_layers"]]
        expected += [net.skip[i].layers[j].ops[0][0] for j in range(count)]
    expected += [net.head[0][0], net.head[1]]
    assert len(called) == len(expected)
    assert {id(m) for m in called} == {id(m) for m in expected}
    (out[0] * torch.randn_like(out[0])).sum().backward()
    for name, alpha in arch.as_dict().items():
        assert (alpha.grad != 0).all(), (name, alpha.grad)


def test_the_hard_path_is_the_finalized_network() -> None:
    space, net, x = _space(), _net(), torch.randn(2, 3, 32, 32)
    alphas = {
        name: nn.functional.one_hot(torch.tensor(CHOICE[name]), n).float()
        for name, (n,) in net.alpha_shapes().items()
    }
    spec = space.make(net.finalize(alphas))
    built = space.build(spec, num_classes=NUM_CLASSES)
    # Same conv count as the mixed net's chosen path.
    hard = {name: a.clone() for name, a in alphas.items()}
    n_called = len(_convs_called(net, lambda: net(x, hard)))
    assert n_called == sum(isinstance(m, nn.Conv2d) for m in built.modules())
    # With the chosen weights copied in, the standalone network computes the same function.
    built.stem.load_state_dict(net.stem.state_dict())
    built.head.load_state_dict(net.head.state_dict())
    for i, lv in ((0, "1"), (1, "2")):
        for kind in ("down", "up"):
            k = CHOICE[f"{kind}{lv}_kernel"]
            for j, layer in enumerate(getattr(built, kind)[i]):
                layer.load_state_dict(getattr(net, kind)[i].layers[j].ops[k].state_dict())
        if not isinstance(built.skip[i], nn.Identity):
            for j, layer in enumerate(built.skip[i]):
                layer.load_state_dict(net.skip[i].layers[j].ops[0].state_dict())
    net.eval(), built.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x, hard), built(x))


def test_finalize_is_deterministic_valid_and_picks_the_largest_alpha() -> None:
    space, net = _space(), _net()
    arch = _arch(net, seed=3)
    a, b = net.finalize(arch.detached()), net.finalize(arch.detached())
    assert a == b
    space.make(a)
    # Ties go to the lowest index; widths are the baseline's.
    zeros = {name: torch.zeros(shape) for name, shape in net.alpha_shapes().items()}
    tied = net.finalize(zeros)
    base = space.baseline()
    assert tied["base_channels"] == base["base_channels"] == 8
    assert tied["down1_expand"] == tied["down2_expand"] == 2.0
    assert all(tied[name] == space.choices()[name][0] for name in net.alpha_shapes())
    hand = {name: torch.zeros(shape) for name, shape in net.alpha_shapes().items()}
    hand["down1_layers"][2] = 1.0
    hand["up2_kernel"][1] = 0.5
    hand["skip2_layers"] = torch.tensor([0.1, 0.3, 0.3])
    picked = net.finalize(hand)
    assert (picked["down1_layers"], picked["up2_kernel"], picked["skip2_layers"]) == (3, 5, 1)
    with pytest.raises(ValueError, match="finite"):
        net.finalize(hand | {"up1_kernel": torch.tensor([float("nan"), 0.0])})


def test_fixed_widths_and_narrowed_choices() -> None:
    space = _space()
    net = space.mixed_supernet(num_classes=3, fixed={"down1_expand": 1, "up1_kernel": 5})
    assert net.chans == [8, 8, 16]
    assert net.alpha_shapes()["up1_kernel"] == (1,)
    params = net.finalize({name: torch.zeros(s) for name, s in net.alpha_shapes().items()})
    assert params["up1_kernel"] == 5 and params["down1_expand"] == 1.0
    assert isinstance(params["down1_expand"], float)  # the space's value, so keys match sampled specs
    space.make(params)
    with pytest.raises(ConfigError, match="down9_expand"):
        space.mixed_supernet(num_classes=3, fixed={"down9_expand": 1.0})


EXPECTED_NAMES = {
    "hg:stem:k3:c3-8:32x32", "hg:head:k3:c8-8:16x16", "hg:classifier:k1:c8-5:16x16",
    "hg:resize:c5:16x16-32x32", "hg:L1:upsample:c16:8x8", "hg:L2:upsample:c32:4x4",
    "hg:L1:skip:k3:c8-8:16x16", "hg:L2:skip:k3:c16-16:8x8",
} | {
    name
    for k in (3, 5)
    for name in (
        f"hg:L1:down:first:k{k}:c8-16:16x16", f"hg:L1:down:rest:k{k}:c16-16:8x8",
        f"hg:L2:down:first:k{k}:c16-32:8x8", f"hg:L2:down:rest:k{k}:c32-32:4x4",
        f"hg:L1:up:first:k{k}:c16-8:16x16", f"hg:L1:up:rest:k{k}:c8-8:16x16",
        f"hg:L2:up:first:k{k}:c32-16:8x8", f"hg:L2:up:rest:k{k}:c16-16:8x8",
    )
}  # fmt: skip


def test_latency_ops_run_at_the_shapes_the_network_feeds_them() -> None:
    net = _net().eval()
    ops = net.latency_ops((1, 3, 32, 32))
    assert set(ops) == EXPECTED_NAMES
    seen: dict[int, tuple[int, ...]] = {}

    def record(mod: nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        seen.setdefault(id(mod), tuple(inp[0].shape))

    hooks = [m.register_forward_hook(record) for m, _ in ops.values()]
    arch = _arch(net)
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32), arch.probs())
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for name, (module, shape) in ops.items():
            if not isinstance(module, nn.Upsample):  # a layer of the network: stated = real input shape
                assert seen[id(module)] == shape, name
            module(torch.randn(shape))
        assert ops["hg:resize:c5:16x16-32x32"][0](torch.randn(1, 5, 16, 16)).shape == (1, 5, 32, 32)
    # The profiler may measure larger inputs than training: names and shapes follow the input.
    big = net.latency_ops((1, 3, 64, 96))
    assert big["hg:L2:down:rest:k5:c32-32:8x12"][1] == (1, 32, 8, 12)
    with pytest.raises(ValueError, match="multiples of 8"):
        net.latency_ops((1, 3, 30, 32))


def test_expected_latency_matches_a_hand_computation_and_is_differentiable() -> None:
    net = _net()
    names = sorted(net.latency_ops((1, 3, 32, 32)))
    table = {name: 0.1 * (i + 1) for i, name in enumerate(names)}
    arch = ArchParameters(net.alpha_shapes(), init_scale=1.0, generator=torch.Generator().manual_seed(1))
    probs = arch.probs()
    got = net.expected_latency(probs, table)
    p = {name: v.detach().tolist() for name, v in probs.items()}
    hand = sum(table[n] for n in names if n.split(":")[1] in ("stem", "head", "classifier", "resize"))
    hand += table["hg:L1:upsample:c16:8x8"] + table["hg:L2:upsample:c32:4x4"]
    chans, res = [8, 16, 32], [16, 8, 4]
    for i in (1, 2):
        for kind, c_in, c_out, r_first, r_rest in (
            ("down", chans[i - 1], chans[i], res[i - 1], res[i]),
            ("up", chans[i], chans[i - 1], res[i - 1], res[i - 1]),
        ):
            for li, count in enumerate([1, 2, 3]):
                for ki, k in enumerate([3, 5]):
                    first = table[f"hg:L{i}:{kind}:first:k{k}:c{c_in}-{c_out}:{r_first}x{r_first}"]
                    rest = table[f"hg:L{i}:{kind}:rest:k{k}:c{c_out}-{c_out}:{r_rest}x{r_rest}"]
                    hand += (
                        p[f"{kind}{i}_layers"][li] * p[f"{kind}{i}_kernel"][ki] * (first + (count - 1) * rest)
                    )
        skip = table[f"hg:L{i}:skip:k3:c{chans[i - 1]}-{chans[i - 1]}:{res[i - 1]}x{res[i - 1]}"]
        hand += sum(p[f"skip{i}_layers"][li] * count * skip for li, count in enumerate([0, 1, 2]))
    assert got.item() == pytest.approx(hand, rel=1e-5)
    got.backward()
    for name, alpha in arch.as_dict().items():
        assert alpha.grad is not None and alpha.grad.abs().sum() > 0, name
    # A table of two input sizes needs the size spelled out.
    both = table | {name.replace("32x32", "64x64"): v for name, v in table.items()}
    with pytest.raises(ValueError, match="input size"):
        net.expected_latency(probs, both)
    same = net.expected_latency(probs, both, input_shape=(1, 3, 32, 32))
    assert same.item() == pytest.approx(got.item())
    with pytest.raises(KeyError, match="hg:stem"):
        net.expected_latency(probs, {}, input_shape=(1, 3, 32, 32))


def test_aux_skip_changes_the_output_and_keeps_a_hard_sample_on_one_path() -> None:
    net, x = _net().eval(), torch.randn(1, 3, 32, 32)
    arch = _arch(net)
    with torch.no_grad():
        plain = net(x, arch.probs())
        net.aux_skip = 0.5
        aux = net(x, arch.probs())
    assert not torch.allclose(plain, aux)
    hard = {name: w.detach() for name, w in _straight_through(arch, CHOICE).items()}
    n_plain = len(_convs_called(net, lambda: net(x, hard)))
    net.aux_skip = 0.0
    assert n_plain == len(_convs_called(net, lambda: net(x, hard)))

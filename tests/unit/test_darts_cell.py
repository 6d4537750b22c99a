"""DARTS cell space: ops, the search network's gradients, finalize, the discrete network, ONNX, latency."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from hwnas.hardware.export import export_onnx, onnx_matches_torch
from hwnas.models.darts_cell import DartsNet, DartsSearchNet
from hwnas.models.darts_ops import CELL_OPS, EDGES, OPS, PARAM_NAMES, Genotype, make_op
from hwnas.models.mixed import ArchParameters
from hwnas.search_space.darts_cell import DARTS_V2, DartsCellSpace
from hwnas.utils.errors import ConfigError, InvalidArchError

ROOT = Path(__file__).resolve().parents[2]
TINY = {"channels": 4, "layers": 3}  # cells: normal (C=4, 8x8), reduce (C=8, 8x8 -> 4x4), reduce (16, 4 -> 2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def space() -> DartsCellSpace:
    return DartsCellSpace(**TINY)


def _net(num_classes: int = 3) -> DartsSearchNet:
    torch.manual_seed(0)
    return DartsSearchNet(num_classes=num_classes, **TINY)


def _edge(node: int, src: int) -> int:
    return EDGES.index((node, src))


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_applies_the_stride(name: str, stride: int) -> None:
    op = make_op(name, 4, stride, affine=False)
    if name == "none":
        assert op is None
        return
    for side in (8, 7):  # odd sides too: every stride-2 op gives ceil(side / 2)
        out = op(torch.randn(2, 4, side, side))
        expected = side if stride == 1 else (side + 1) // 2
        assert out.shape == (2, 4, expected, expected)
    assert all(not m.affine for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_search_net_softmax_forward_reaches_every_alpha() -> None:
    net = _net(num_classes=5)
    arch = ArchParameters(net.alpha_shapes(), generator=torch.Generator().manual_seed(0))
    assert net.alpha_shapes() == {"normal": (14, 8), "reduce": (14, 8)}
    logits = net(torch.randn(2, 3, 8, 8), arch.probs())
    assert logits.shape == (2, 5)
    F.cross_entropy(logits, torch.tensor([0, 3])).backward()
    for name, alpha in arch.alphas.items():
        assert alpha.grad is not None and bool((alpha.grad != 0).all()), name
    alpha_ids = {id(p) for p in arch.parameters()}
    assert not alpha_ids & {id(p) for p in net.parameters()}
    with pytest.raises(ValueError, match="must be"):
        net(torch.randn(1, 3, 8, 8), {"normal": torch.ones(14, 7), "reduce": torch.ones(14, 8)})


def test_hard_straight_through_runs_only_the_chosen_op_and_reaches_every_alpha() -> None:
    net = _net()
    arch = ArchParameters(net.alpha_shapes(), generator=torch.Generator().manual_seed(1))
    calls: dict[tuple[int, int, int], int] = {}

    def counter(key: tuple[int, int, int]):  # noqa: ANN202 - a forward hook
        def hook(*_: object) -> None:
            if torch.is_grad_enabled():  # MixedOp's zero-shape probe for an all-`none` edge runs no_grad
                calls[key] = calls.get(key, 0) + 1

        return hook

    for c, cell in enumerate(net.cells):
        for e, mixed in enumerate(cell.edges):
            for j, op in enumerate(mixed.ops):
                op.register_forward_hook(counter((c, e, j)))
    gen = torch.Generator().manual_seed(2)
    for _ in range(8):
        calls.clear()
        soft = arch.probs()
        picks = {k: torch.multinomial(p.detach(), 1, generator=gen).squeeze(1) for k, p in soft.items()}
        weights = {k: F.one_hot(picks[k], len(OPS)).float() - soft[k].detach() + soft[k] for k in soft}
        net(torch.randn(2, 3, 8, 8, generator=gen), weights).sum().backward()
        for c, plan in enumerate(net.plans):
            chosen = picks["reduce" if plan.reduction else "normal"]
            for e in range(len(EDGES)):
                for j in range(1, len(OPS)):
                    assert calls.get((c, e, j), 0) == int(j == int(chosen[e])), (c, e, OPS[j])
        if all(bool((a.grad != 0).all()) for a in arch.alphas.values()):
            break
    else:
        pytest.fail("some α never received a gradient through the straight-through weights")


def _alphas_for(genotype: Genotype) -> dict[str, torch.Tensor]:
    out = {}
    for cell in ("normal", "reduce"):
        a = torch.zeros(len(EDGES), len(OPS))
        for k, (op, src) in enumerate(getattr(genotype, cell)):
            a[_edge(k // 2, src), OPS.index(op)] = 3.0
        out[cell] = a
    return out


def test_finalize_is_deterministic_and_follows_the_darts_rule(space: DartsCellSpace) -> None:
    net = _net()
    alphas = _alphas_for(DARTS_V2)
    # A huge `none` weakens its edge (strength = max non-`none` softmax weight), it never wins an edge.
    alphas["normal"][_edge(3, 4), OPS.index("none")] = 20.0
    alphas["normal"][_edge(3, 4), OPS.index("sep_conv_5x5")] = 6.0
    params = net.finalize(alphas)
    assert params == DARTS_V2.to_params() == space.baseline().values
    assert net.finalize({k: v.clone() for k, v in alphas.items()}) == params
    # All equal: ties go to inputs 0 and 1, then to the first non-`none` op.
    flat = net.finalize({"normal": torch.zeros(14, 8), "reduce": torch.zeros(14, 8)})
    assert set(flat) == set(PARAM_NAMES)
    assert all(v == "0-1" for k, v in flat.items() if k.endswith("inputs"))
    assert all(v == CELL_OPS[0] for k, v in flat.items() if "_op" in k)


def test_parameters_are_flat_and_every_sample_is_valid(space: DartsCellSpace) -> None:
    choices = space.choices()
    assert list(choices) == list(PARAM_NAMES) and len(choices) == 24
    assert choices["normal_n3_inputs"] == [
        "0-1",
        "0-2",
        "0-3",
        "0-4",
        "1-2",
        "1-3",
        "1-4",
        "2-3",
        "2-4",
        "3-4",
    ]
    assert choices["reduce_n0_inputs"] == ["0-1"] and choices["normal_n2_op1"] == list(CELL_OPS)
    rng = np.random.default_rng(0)
    for _ in range(200):
        spec = space.sample(rng)
        space.validate(spec, input_size=(8, 8))
        assert space.from_dict(spec.to_dict()) == spec
        assert Genotype.from_params(spec.values).to_params() == spec.values


def test_sampled_networks_run_and_export_to_onnx(space: DartsCellSpace, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for spec in (space.sample(rng), space.sample(rng), space.baseline()):
        net = space.build(spec, num_classes=3)
        assert isinstance(net, DartsNet) and net(torch.randn(2, 3, 8, 8)).shape == (2, 3)
        path = export_onnx(net, (1, 3, 8, 8), tmp_path / f"{spec.stem}.onnx")
        assert onnx_matches_torch(net, path, torch.randn(1, 3, 8, 8)) < 1e-4


def test_baseline_check_and_config(space: DartsCellSpace) -> None:
    spec = space.baseline()
    space.validate(spec, input_size=(4, 4))
    assert space.genotype(spec) == DARTS_V2
    with pytest.raises(InvalidArchError) as err:
        space.validate(spec, input_size=(3, 32))
    assert err.value.key == "dataset.image_size"
    with pytest.raises(ConfigError) as cfg_err:
        DartsCellSpace(baseline={**spec.values, "normal_n1_inputs": "1-1"})
    assert cfg_err.value.key == "search_space.baseline"
    with pytest.raises(ConfigError):
        DartsCellSpace(layers=2)
    conf = instantiate(OmegaConf.load(ROOT / "conf" / "search_space" / "darts_cell.yaml"))
    assert isinstance(conf, DartsCellSpace) and (conf.channels, conf.layers) == (8, 5)
    assert conf.baseline() == DartsCellSpace().baseline()
    sup = space.mixed_supernet(num_classes=3, channels=6)
    assert isinstance(sup, DartsSearchNet) and sup.stem[0].out_channels == 18 and len(sup.cells) == 3


def test_networks_match_the_papers_parameter_counts(space: DartsCellSpace) -> None:
    """The macro skeleton is the paper's: DARTS V2 at C=36, 20 cells has 3.35 M parameters (no auxiliary
    head); the 16-channel, 8-cell search network has 1.93 M."""
    paper = DartsCellSpace(channels=36, layers=20)
    assert sum(p.numel() for p in paper.build(paper.baseline()).parameters()) == 3_349_342
    search = space.mixed_supernet(num_classes=10, channels=16, layers=8)
    assert sum(p.numel() for p in search.parameters()) == 1_930_618


def test_skip_count_counts_normal_cell_skips(space: DartsCellSpace) -> None:
    net = _net()
    assert net.skip_count(space.baseline().values) == 2  # DARTS V2: two skips in the normal cell
    all_skips = {k: ("skip_connect" if "_op" in k else v) for k, v in space.baseline().values.items()}
    assert net.skip_count(all_skips) == 8
    assert net.skip_count({**all_skips, "normal_n0_op0": "sep_conv_3x3"}) == 7


def test_latency_ops_names_and_shapes() -> None:
    net = _net()
    ops = net.latency_ops((1, 3, 8, 8))
    assert "darts:sep_conv_3x3:c4:s1:8x8" in ops  # normal cell
    assert "darts:skip_connect:c8:s2:8x8" in ops and "darts:dil_conv_5x5:c8:s1:4x4" in ops  # 1st reduce
    assert "darts:max_pool_3x3:c16:s2:4x4" in ops and "darts:avg_pool_3x3:c16:s1:2x2" in ops  # 2nd reduce
    fixed = {
        "darts:stem:c3-12:8x8",
        "darts:pre:relu_conv_bn:c12-4:8x8",
        "darts:pre:factorized_reduce:c16-16:8x8",
    }
    assert fixed <= set(ops) and "darts:head:c64-k3:2x2" in ops
    assert not any(":none:" in n for n in ops) and len(ops) == 5 * 7 + 7
    for name, (module, shape) in ops.items():
        assert not module.training
        with torch.no_grad():
            out = module(torch.zeros(shape))
        if ":s2:" in name:
            assert out.shape[-1] == (shape[-1] + 1) // 2
    assert "darts:stem:c3-12:8x8:b2" in net.latency_ops((2, 3, 8, 8))


def _hand_expected(cost: dict[str, Fraction], fixed_ms: Fraction) -> Fraction:
    """Uniform probabilities on the tiny net with ``table[name] = cost[op] * (pixels / 64)``."""
    mean = sum(cost.values(), Fraction(0)) / len(OPS)  # `none` costs 0

    def cell(in_px: int, node_px: int) -> Fraction:
        total = Fraction(0)
        for node in range(4):
            scale = Fraction(2, node + 2)  # a finalized node keeps 2 of its node + 2 edges
            total += scale * (2 * Fraction(in_px, 64) + node * Fraction(node_px, 64))
        return total * mean

    return fixed_ms + cell(64, 64) + cell(64, 16) + cell(16, 4)


def test_expected_latency_matches_a_hand_computation() -> None:
    net = _net()
    ops = net.latency_ops((1, 3, 8, 8))
    cost = {op: Fraction(i + 1) for i, op in enumerate(CELL_OPS)}
    table = {}
    for name in ops:
        op, side = name.split(":")[1], name.split(":")[-1]
        h, w = (int(s) for s in side.split("x"))
        table[name] = 0.5 if op in ("stem", "pre", "head") else float(cost[op] * Fraction(h * w, 64))
    probs = {
        k: torch.full((14, 8), 1 / 8, dtype=torch.float64, requires_grad=True) for k in ("normal", "reduce")
    }
    got = net.expected_latency(probs, table)
    fixed_ms = Fraction(1, 2) * (1 + 2 * 3 + 1)  # stem, 2 preprocesses per cell, head
    assert float(got.detach()) == pytest.approx(float(_hand_expected(cost, fixed_ms)), rel=1e-12)
    got.backward()
    # d/dp: Σ over the cells of that type of scale(node) · table; normal: 1 cell at 8x8.
    assert probs["normal"].grad[_edge(0, 0), OPS.index("sep_conv_3x3")] == pytest.approx(
        float(cost["sep_conv_3x3"])
    )
    assert probs["normal"].grad[_edge(3, 4), OPS.index("max_pool_3x3")] == pytest.approx(
        0.4 * float(cost["max_pool_3x3"])
    )
    # reduce: input edge of node 3 at 8x8 (1st) and 4x4 (2nd), scale 2/5.
    assert probs["reduce"].grad[_edge(3, 1), OPS.index("skip_connect")] == pytest.approx(
        0.4 * 3 * (1 + 1 / 4)
    )
    assert float(probs["reduce"].grad[:, OPS.index("none")].abs().sum()) == 0.0
    everything = DartsSearchNet(num_classes=3, latency_edges="all", **TINY)
    with pytest.raises(ValueError, match="latency_ops"):
        everything.expected_latency(probs, table)
    with torch.no_grad():
        assert float(everything.expected_latency(probs, table, input_shape=(1, 3, 8, 8))) > float(got)
    with pytest.raises(KeyError, match="latency_ops"):
        net.expected_latency(probs, {})


def test_aux_skip_only_changes_shape_preserving_edges() -> None:
    net = _net().eval()
    w = {k: torch.softmax(torch.zeros(14, 8), -1) for k in ("normal", "reduce")}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        base = net(x, w)
        net.aux_skip = 0.5
        assert not torch.allclose(net(x, w), base)

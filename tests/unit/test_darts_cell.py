"""DARTS cell space: ops, the search network's gradients, finalize, the discrete network, ONNX, latency."""

from __future__ import annotations

import random
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


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def _px(cell: int, src: int) -> int:
    """Input pixels of an edge of the tiny net (3 cells at 8x8 input: normal 8x8, reduce 8->4, reduce 4->2)."""
    return [(64, 64), (64, 16), (16, 4)][cell][0 if src < 2 else 1]


def _tiny_table(net: DartsSearchNet, cost: dict[str, float]) -> dict[str, float]:
    """``table[name] = cost[op] · pixels / 64``; 0.5 ms per fixed part."""
    table = {}
    for name in net.latency_ops((1, 3, 8, 8)):
        op, side = name.split(":")[1], name.split(":")[-1]
        h, w = (int(s) for s in side.split("x"))
        table[name] = 0.5 if op in ("stem", "pre", "head") else cost[op] * h * w / 64
    return table


FIXED_MS = 0.5 * (1 + 2 * 3 + 1)  # stem, 2 preprocesses per cell, head
CELL_KINDS = ("normal", "reduce", "reduce")


def _hand_expected(probs: dict[str, torch.Tensor], cost: dict[str, float]) -> torch.Tensor:
    """Written out loop by loop: per node, each edge's op cost renormalised over the non-`none` ops,
    the node keeping 2 edges in proportion to their non-`none` probability mass."""
    total = torch.tensor(FIXED_MS, dtype=torch.float64)
    for c, kind in enumerate(CELL_KINDS):
        p = probs[kind]
        e = 0
        for node in range(4):
            masses, edge_costs = [], []
            for src in range(node + 2):
                mass = sum(p[e, o] for o, op in enumerate(OPS) if op != "none")
                ms = sum(p[e, o] * cost[op] * _px(c, src) / 64 for o, op in enumerate(OPS) if op != "none")
                masses.append(mass)
                edge_costs.append(ms / mass)
                e += 1
            total = total + sum(2 * m / sum(masses) * ce for m, ce in zip(masses, edge_costs, strict=True))
    return total


def test_expected_latency_matches_a_hand_computation() -> None:
    net = _net()
    cost = {op: float(i + 1) for i, op in enumerate(CELL_OPS)}
    table = _tiny_table(net, cost)
    gen = torch.Generator().manual_seed(0)
    for scale in (0.0, 1.0):  # uniform, then random probabilities
        logits = {
            k: scale * torch.randn(14, 8, generator=gen, dtype=torch.float64) for k in ("normal", "reduce")
        }
        probs = {k: v.softmax(-1).requires_grad_(True) for k, v in logits.items()}
        got = net.expected_latency(probs, table)
        want = _hand_expected(probs, cost)
        assert float(got) == pytest.approx(float(want), rel=1e-12)
        g_got = torch.autograd.grad(got, list(probs.values()))
        g_want = torch.autograd.grad(want, list(probs.values()))
        for a, b in zip(g_got, g_want, strict=True):
            assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
        assert all(float(g[:, OPS.index("none")].abs().sum()) == 0.0 for g in g_got)
    # uniform: every node counts two edges at the mean of the 7 keepable ops (not of 8 with `none` at 0)
    uniform = {k: torch.full((14, 8), 1 / 8, dtype=torch.float64) for k in ("normal", "reduce")}
    mean7 = sum(cost.values()) / 7
    by_hand = FIXED_MS + sum(
        mean7 * sum(2 / (n + 2) * sum(_px(c, s) / 64 for s in range(n + 2)) for n in range(4))
        for c in range(3)
    )
    assert float(net.expected_latency(uniform, table)) == pytest.approx(by_hand, rel=1e-12)
    everything = DartsSearchNet(num_classes=3, latency_edges="all", **TINY)
    with pytest.raises(ValueError, match="latency_ops"):
        everything.expected_latency(uniform, table)
    with torch.no_grad():
        assert float(everything.expected_latency(uniform, table, input_shape=(1, 3, 8, 8))) > float(
            net.expected_latency(uniform, table)
        )
    with pytest.raises(KeyError, match="latency_ops"):
        net.expected_latency(uniform, {})


def _random_genotype(rng: random.Random) -> Genotype:
    cells = []
    for _ in range(2):
        gene = []
        for node in range(4):
            for src in sorted(rng.sample(range(node + 2), 2)):
                gene.append((rng.choice(CELL_OPS), src))
        cells.append(tuple(gene))
    return Genotype(normal=cells[0], reduce=cells[1])


def _onehot_alphas(genotype: Genotype, *, none_elsewhere: bool) -> dict[str, torch.Tensor]:
    """Large logits: each gene's op on its edge; the other edges on `none` (or left at 0)."""
    out = {}
    for cell in ("normal", "reduce"):
        a = torch.zeros(len(EDGES), len(OPS), dtype=torch.float64)
        if none_elsewhere:
            a[:, OPS.index("none")] = 60.0
        for k, (op, src) in enumerate(getattr(genotype, cell)):
            a[_edge(k // 2, src)] = 0.0
            a[_edge(k // 2, src), OPS.index(op)] = 60.0
        out[cell] = a
    return out


def test_expected_latency_at_a_one_hot_alpha_is_the_finalized_genotypes_table_sum() -> None:
    """What the latency term optimises is what the finalized network costs: at a one-hot α the expectation
    equals the table's sum over the genotype ``finalize`` returns (fixed parts + the 8 kept ops per cell),
    and `none` on the dropped edges lowers nothing (it used to count at cost 0)."""
    net = _net()
    cost = {op: float(3 * i + 2) for i, op in enumerate(CELL_OPS)}
    table = _tiny_table(net, cost)
    rng = random.Random(0)
    for _ in range(20):
        genotype = _random_genotype(rng)
        alphas = _onehot_alphas(genotype, none_elsewhere=True)
        assert net.finalize(alphas) == genotype.to_params()
        table_sum = FIXED_MS + sum(
            cost[op] * _px(c, src) / 64
            for c, kind in enumerate(CELL_KINDS)
            for op, src in getattr(genotype, kind)
        )
        expected = net.expected_latency({k: v.softmax(-1) for k, v in alphas.items()}, table)
        assert float(expected) == pytest.approx(table_sum, rel=1e-9)


def test_aux_skip_only_changes_shape_preserving_edges() -> None:
    net = _net().eval()
    w = {k: torch.softmax(torch.zeros(14, 8), -1) for k in ("normal", "reduce")}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        base = net(x, w)
        net.aux_skip = 0.5
        assert not torch.allclose(net(x, w), base)


def test_limit_skips_strikes_the_weakest_skips_first() -> None:
    net = _net()
    gen = torch.Generator().manual_seed(0)
    alphas = {k: 0.1 * torch.randn(14, 8, generator=gen) for k in ("normal", "reduce")}
    alphas["normal"][:, OPS.index("skip_connect")] = torch.linspace(3.0, 4.3, 14)  # skips everywhere
    assert net.skip_count(net.finalize(alphas)) == 8
    capped = net.limit_skips(alphas, 2)
    params = net.finalize(capped)
    assert net.skip_count(params) == 2
    kept = [EDGES.index((k // 2, src)) for k, (op, src) in enumerate(Genotype.from_params(params).normal)
            if op == "skip_connect"]  # fmt: skip
    struck = [e for e in range(14) if capped["normal"][e, OPS.index("skip_connect")] == float("-inf")]
    strength = alphas["normal"][:, OPS.index("skip_connect")]
    assert min(strength[kept]) > max(strength[struck])  # the strongest skips stay
    assert (
        torch.equal(capped["reduce"], alphas["reduce"])
        and net.limit_skips(alphas, 8)["normal"].isfinite().all()
    )


def test_a_search_collapsed_from_its_first_epoch_returns_capped_skips() -> None:
    """The collapse guard with no earlier architecture within the limit (the first epoch already collapsed)
    returns the architecture with its skips capped, never the collapsed one."""
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader, TensorDataset

    from hwnas.lit.dnas import DnasModule
    from hwnas.lit.dnas_fit import fit_dnas

    torch.manual_seed(0)
    net = _net()
    arch = ArchParameters(net.alpha_shapes())
    with torch.no_grad():
        arch.alphas["normal"][:, OPS.index("skip_connect")] = 5.0
    ds = TensorDataset(torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,)))
    trainer = OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1})
    run = fit_dnas(DnasModule(net, arch, a_lr=0.0), train_loader=DataLoader(ds, batch_size=8),
                   val_loader=DataLoader(ds, batch_size=8), trainer_cfg=trainer, max_epochs=2,
                   limit_train_batches=1, run_dir="/tmp/hwnas-test-collapse", label="test",
                   max_normal_skips=2)  # fmt: skip
    assert run.stopped_early and len(run.history) == 1 and run.history[0]["normal_skips"] == 8
    assert net.skip_count(run.params) == 2 and net.finalize(run.alphas) == run.params

"""Petridish's forward growth: candidates change neither the parent's output nor its weights' gradient,
yet every selector weight and every candidate receives gradient; the hourglass moves and seed."""

from __future__ import annotations

import torch
from torch import nn

from hwnas.lit.petridish import GrowthModule, fit_growth
from hwnas.models.growth import GrowingNetwork, GrowthMove, stop_forward
from hwnas.models.mixed import ArchParameters
from hwnas.search_space.hourglass import HourglassSpace
from tests.unit.test_dnas import TRAINER


def _space() -> HourglassSpace:
    return HourglassSpace(
        num_levels=2, base_channels=[8, 16], layers=[1, 2, 3], kernels=[3, 5], expand=[1.0, 2.0],
        skip_layers=[0, 1], max_channels=32, gradient_widths={"base_channels": 8, "expand": 2.0},
    )  # fmt: skip


def _grown(space: HourglassSpace, seed: int = 0) -> tuple[GrowingNetwork, list[GrowthMove]]:
    torch.manual_seed(seed)
    parent = space.growth_seed()
    moves = space.growth_moves(parent)
    return GrowingNetwork(space.build(parent, num_classes=3), moves), moves


def test_stop_forward_is_zero_forward_identity_backward() -> None:
    t = torch.randn(4, requires_grad=True)
    out = stop_forward(3.0 * t)
    assert torch.equal(out, torch.zeros(4))
    out.sum().backward()
    assert torch.equal(t.grad, torch.full((4,), 3.0))


def test_seed_is_the_smallest_and_moves_grow_it() -> None:
    space = _space()
    seed = space.growth_seed()
    v = seed.values
    assert v["base_channels"] == 8 and all(
        v[f"down{i}_layers"] == 1 and v[f"skip{i}_layers"] == 0 for i in (1, 2)
    )
    moves = space.growth_moves(seed)
    names = {m.name for m in moves}
    # per level: down/skip/up +layer, down/up kernel 3 -> 5
    assert names == {f"{b}{i}+layer" for b in ("down", "skip", "up") for i in (1, 2)} | {
        f"{b}{i}:k5" for b in ("down", "up") for i in (1, 2)
    }
    for m in moves:
        child = space.make(seed.values | dict(m.params))
        assert child.key != seed.key
    grown = space.make(seed.values | {f"{b}{i}_layers": 3 for b in ("down", "up") for i in (1, 2)}
                       | {"skip1_layers": 1, "skip2_layers": 1, "down1_kernel": 5, "down2_kernel": 5,
                          "up1_kernel": 5, "up2_kernel": 5})  # fmt: skip
    assert space.growth_moves(grown) == []


def test_candidates_leave_the_parent_unchanged_and_every_alpha_gets_gradient() -> None:
    space = _space()
    net, moves = _grown(space)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 3, (4, 32, 32))
    net.eval()
    with torch.no_grad():
        alone = net(x)
        alpha = torch.full((len(moves),), 0.7)
        assert torch.equal(net(x, alpha), alone)  # stop-forward: exactly the parent's output
    net.train()
    parent_params = list(net.parent.parameters())
    loss_alone = nn.functional.cross_entropy(net(x), y)
    g_alone = torch.autograd.grad(loss_alone, parent_params)
    alpha = torch.full((len(moves),), 0.7, requires_grad=True)
    loss = nn.functional.cross_entropy(net(x, alpha), y)
    grads = torch.autograd.grad(loss, [*parent_params, alpha, *net.candidates.parameters()])
    n = len(parent_params)
    for a, b in zip(g_alone, grads[:n], strict=True):  # stop-gradient: the parent trains as without them
        assert torch.allclose(a, b, atol=1e-6)
    assert (grads[n].abs() > 0).all(), grads[n]  # every selector weight
    assert all(g.abs().sum() > 0 for g in grads[n + 1 :])  # every candidate is trained


def test_joint_training_ranks_every_move() -> None:
    space = _space()
    net, moves = _grown(space)
    arch = ArchParameters({"moves": (len(moves),)}, init_scale=0.0)
    ds = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16, 32, 32)))
    run = fit_growth(GrowthModule(net, arch, l1=1e-3), train_loader=torch.utils.data.DataLoader(ds, batch_size=8),
                     trainer_cfg=TRAINER, max_epochs=2, limit_train_batches=2,
                     run_dir="/tmp/hwnas-test-growth")  # fmt: skip
    assert [n for n, _ in run.ranking] and {n for n, _ in run.ranking} == {m.name for m in moves}
    strengths = [a for _, a in run.ranking]
    assert strengths == sorted(strengths, reverse=True) and strengths[0] > 0
    assert all(a != 0 for a in arch.detached()["moves"]), "a selector weight was never updated"


def test_darts_cell_growth_puts_heavier_ops_beside_every_edge_of_every_cell() -> None:
    from hwnas.search_space.darts_cell import DartsCellSpace
    from hwnas.search_space.darts_growth import upgrades

    space = DartsCellSpace(channels=4, layers=3)
    seed = space.growth_seed()
    assert set(v for k, v in seed.values.items() if "_op" in k) == {"skip_connect"}
    moves = space.growth_moves(seed)
    assert len(moves) == 2 * 8 * 2  # 2 cell types x 8 edges x 2 upgrades (a skip grows dil/sep 3x3)
    assert upgrades("sep_conv_5x5") == [] and upgrades("skip_connect") == ["dil_conv_3x3", "sep_conv_3x3"]
    normal = next(m for m in moves if m.name.startswith("normal_n3_op1"))
    assert normal.reads == "input" and len(normal.sites) == 1  # 3 cells: normal, reduce, reduce
    torch.manual_seed(0)
    net = GrowingNetwork(space.build(seed, num_classes=10, in_channels=1), moves)
    x = torch.randn(2, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x, torch.full((len(moves),), 0.5)))
    net.train()
    alpha = torch.full((len(moves),), 0.5, requires_grad=True)
    nn.functional.cross_entropy(net(x, alpha), torch.tensor([1, 2])).backward()
    assert (alpha.grad.abs() > 0).all()
    child = space.make(seed.values | dict(moves[0].params))
    assert sum(child.values[k] != seed.values[k] for k in seed.values) == 1

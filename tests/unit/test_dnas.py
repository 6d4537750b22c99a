"""The gradient-search core on a tiny mixed-op network: disjoint optimizers, gradients reaching every α
under DARTS and GDAS, the second-order hypergradient against a numerical one, the latency terms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from hwnas.lit.dnas import DnasModule, LatencyTerm, alpha_regulariser, mixing_weights
from hwnas.lit.dnas_fit import fit_dnas
from hwnas.lit.hypergradient import unrolled_hypergradient, virtual_step
from hwnas.models.mixed import ArchParameters, DifferentiableSupernet, MixedOp

OPS = ("none", "skip", "conv", "pool")
COST = {"none": 0.0, "skip": 0.01, "conv": 1.0, "pool": 0.2}


class TinyMixed(DifferentiableSupernet):
    """Stem conv, two mixed edges in sequence, a classifier: the smallest thing with the contract."""

    def __init__(self, c: int = 4, k: int = 3, bn: bool = True) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, c, 3, padding=1), *([nn.BatchNorm2d(c)] if bn else []))
        self.edges = nn.ModuleList(
            MixedOp([None, nn.Identity(), nn.Conv2d(c, c, 3, padding=1), nn.AvgPool2d(3, 1, 1)])
            for _ in range(2)
        )
        self.head = nn.Linear(c, k)

    def alpha_shapes(self) -> dict[str, tuple[int, ...]]:
        return {"edges": (2, len(OPS))}

    def forward(self, x: torch.Tensor, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        h = torch.tanh(self.stem(x))
        for i, edge in enumerate(self.edges):
            h = edge(h, weights["edges"][i], self.aux_skip)
        return self.head(h.mean(dim=(2, 3)))

    def finalize(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        return {f"e{i}": OPS[int(row[1:].argmax()) + 1] for i, row in enumerate(alphas["edges"])}

    def latency_ops(self, input_shape: tuple[int, ...]) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
        return {}

    def expected_latency(self, probs: Mapping[str, torch.Tensor], table: Mapping[str, float]) -> torch.Tensor:
        cost = torch.tensor([table[o] for o in OPS], dtype=probs["edges"].dtype)
        return (probs["edges"] * cost).sum()

    def skip_count(self, params: Mapping[str, Any]) -> int | None:
        return sum(v == "skip" for v in params.values())


def _loaders(n: int = 32, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    ds = TensorDataset(x, y)
    return DataLoader(ds, batch_size=8, shuffle=True), DataLoader(ds, batch_size=8)


TRAINER = OmegaConf.create({"_target_": "pytorch_lightning.Trainer", "accelerator": "cpu", "devices": 1})


def _fit(module: DnasModule, epochs: int = 1, **kw: Any) -> Any:
    tl, vl = _loaders()
    return fit_dnas(module, train_loader=tl, val_loader=vl, trainer_cfg=TRAINER, max_epochs=epochs,
                    limit_train_batches=4, run_dir="/tmp/hwnas-test-dnas", label="test", **kw)  # fmt: skip


def test_alphas_are_not_network_parameters_and_not_in_the_weight_optimizer() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    assert not {id(p) for p in net.parameters()} & {id(a) for a in arch.parameters()}
    module = DnasModule(net, arch, order=1)
    _fit(module)
    w_opt, a_opt = module.trainer.optimizers
    w_ids = {id(p) for g in w_opt.param_groups for p in g["params"]}
    a_ids = {id(p) for g in a_opt.param_groups for p in g["params"]}
    assert not w_ids & {id(a) for a in arch.parameters()}, "an architecture weight is in the weight optimizer"
    assert a_ids == {id(a) for a in arch.parameters()}
    assert w_ids == {id(p) for p in net.parameters()}


@pytest.mark.parametrize("mixing", ["softmax", "gumbel"])
def test_every_alpha_receives_a_gradient(mixing: str) -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    x, y = next(iter(_loaders()[0]))
    total = torch.zeros(2, len(OPS))
    for _ in range(1 if mixing == "softmax" else 20):  # a hard sample of `none` passes no gradient that step
        arch.zero_grad()
        weights = mixing_weights(mixing, arch.as_dict(), tau=1.0)
        nn.functional.cross_entropy(net(x, weights), y).backward()
        total += arch.alphas["edges"].grad.abs()
    assert (total > 0).all(), total


def test_gumbel_runs_only_the_sampled_op() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    calls = {i: 0 for i in range(len(OPS))}
    for j, op in enumerate(net.edges[0].ops):
        op.register_forward_hook(lambda *_a, j=j: calls.__setitem__(j, calls[j] + 1))
    arch = ArchParameters(net.alpha_shapes())
    w = mixing_weights("gumbel", arch.as_dict(), tau=1.0)
    net(torch.randn(2, 1, 8, 8), w)
    chosen = int(w["edges"][0].argmax())
    assert sum(calls.values()) == (0 if chosen == 0 else 1) and (chosen == 0 or calls[chosen] == 1)


def test_second_order_hypergradient_matches_a_numerical_one() -> None:
    torch.manual_seed(0)
    dtype = torch.float64
    net = TinyMixed(c=3, bn=False).to(dtype)
    arch = ArchParameters(net.alpha_shapes(), init_scale=0.5).to(dtype)
    (xt, yt), (xv, yv) = next(iter(_loaders(seed=1)[0])), next(iter(_loaders(seed=2)[0]))
    xt, xv = xt.to(dtype), xv.to(dtype)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in net.named_parameters()}
    momentum = {n: 0.1 * torch.randn_like(p) for n, p in params.items()}
    xi, wd = 0.05, 3e-4

    def loss_at(
        w: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor
    ) -> torch.Tensor:
        return nn.functional.cross_entropy(
            functional_call(net, dict(w), (x, {"edges": alpha.softmax(-1)})), y
        )

    alpha = arch.alphas["edges"]
    hyper = unrolled_hypergradient(
        params, [alpha], train_loss=lambda w: loss_at(w, xt, yt, alpha), val_objective=lambda w: loss_at(w, xv, yv, alpha),
        xi=xi, weight_decay=wd, momentum=momentum,
    )[0]  # fmt: skip

    def unrolled_objective(a: torch.Tensor) -> float:
        w = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
        g = torch.autograd.grad(loss_at(w, xt, yt, a), list(w.values()))
        return float(loss_at(virtual_step(w, g, xi=xi, weight_decay=wd, momentum=momentum), xv, yv, a))

    h = 1e-6
    numerical = torch.zeros_like(alpha)
    base = alpha.detach().clone()
    for idx in range(base.numel()):
        plus, minus = base.clone().view(-1), base.clone().view(-1)
        plus[idx] += h
        minus[idx] -= h
        numerical.view(-1)[idx] = (
            unrolled_objective(plus.view_as(base)) - unrolled_objective(minus.view_as(base))
        ) / (2 * h)
    rel = float((hyper - numerical).norm() / numerical.norm())
    print(f"second-order rel err {rel:.2e}")
    assert rel <= 1e-3, f"relative error {rel:.2e}"
    first_order = torch.autograd.grad(loss_at(params, xv, yv, alpha), [alpha])[0]
    assert float((first_order - numerical).norm() / numerical.norm()) > rel  # the second-order term matters


@pytest.mark.parametrize("form", ["mul", "add"])
def test_latency_term_pulls_alpha_to_cheap_ops(form: str) -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    term = LatencyTerm(table=COST, form=form, target_ms=0.05, lam=5.0)  # far below every mixture
    module = DnasModule(net, arch, latency=term, a_lr=0.05)
    before = float(net.expected_latency(arch.probs(), COST))
    _fit(module, epochs=3)
    after = float(net.expected_latency(arch.probs(), COST))
    assert after < before


def test_regularisers_and_collapse_guard() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes(), init_scale=1.0)
    assert alpha_regulariser("none", 1.0, arch) is None
    l1 = alpha_regulariser("l1", 0.5, arch)
    assert torch.isclose(l1, 0.5 * arch.alphas["edges"].abs().sum())
    ent = alpha_regulariser("entropy", 1.0, arch)
    ent.backward()
    assert arch.alphas["edges"].grad.abs().sum() > 0
    # the guard: skips forced by a huge alpha on `skip`; limit 0 stops after the first epoch
    with torch.no_grad():
        arch.alphas["edges"][:, 1] = 10.0
    module = DnasModule(net, arch, a_lr=0.0)
    run = _fit(module, epochs=3, max_normal_skips=0)
    assert run.stopped_early and len(run.history) == 1


def test_finalize_is_deterministic_through_fit() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    run = _fit(DnasModule(net, arch))
    assert net.finalize(arch.detached()) == net.finalize(arch.detached()) == run.params

"""The gradient-search core on a tiny mixed-op network: disjoint optimizers, gradients reaching every α
under DARTS and GDAS, the second-order hypergradient against a numerical one, the latency terms."""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import CombinedLoader
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

from hwnas.lit.dnas import DnasModule, LatencyTerm, alpha_regulariser, mixing_weights
from hwnas.lit.dnas_fit import fit_dnas
from hwnas.lit.hypergradient import unrolled_hypergradient, virtual_step
from hwnas.models.mixed import ArchParameters, DifferentiableSupernet, MixedOp
from hwnas.utils.errors import CandidateFailed

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

    def finalized_probs(self, alphas: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        idx = alphas["edges"][:, 1:].argmax(dim=-1) + 1  # as finalize: never `none`
        return {"edges": nn.functional.one_hot(idx, len(OPS)).to(alphas["edges"].dtype)}

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


def _latency_after(term: LatencyTerm | None, epochs: int = 3, **kw: Any) -> float:
    """E[latency] of α after a fit with ``term`` (``None``: the control run, same seed and data)."""
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    _fit(DnasModule(net, arch, latency=term, a_lr=0.05, **kw), epochs=epochs)
    return float(net.expected_latency(arch.probs(), COST))


@functools.cache
def _control() -> float:
    return _latency_after(None)


@pytest.mark.parametrize("form", ["abs", "mul", "add", "mul_clamped", "add_clamped"])
def test_latency_term_pulls_alpha_to_cheap_ops(form: str) -> None:
    """Against the control run without the term (which lowers E[latency] too: skips win on this data), the
    term must lower it clearly further; a term detached from α would not."""
    control = _control()
    with_term = _latency_after(LatencyTerm(table=COST, form=form, target_ms=0.05, lam=5.0, beta=3.0))
    assert with_term < control - 0.05, (with_term, control)


def test_a_two_sided_term_pulls_up_to_its_target() -> None:
    """``abs`` pulls towards the target from below too (the clamped forms do not): a target above every
    mixture raises E[latency] above the control's."""
    control = _control()
    assert _latency_after(LatencyTerm(table=COST, form="abs", target_ms=1.5, lam=5.0)) > control + 0.1
    clamped = _latency_after(LatencyTerm(table=COST, form="add_clamped", target_ms=1.5, lam=5.0))
    assert clamped == pytest.approx(control, abs=1e-6)  # below the target the clamped form is inert


def test_latency_forms_are_the_published_ones() -> None:
    ce, e = torch.tensor(2.0), torch.tensor(0.5)
    forms = {
        "mul": 2.0 * 0.5**0.6,  # MnasNet/ProxylessNAS: rewarded below the target too
        "mul_clamped": 2.0,
        "add": 2.0 + 3.0 * 0.5,
        "add_clamped": 2.0,
        "abs": 2.0 + 3.0 * 0.5,  # TuNAS: |E/T - 1|
    }
    for form, want in forms.items():
        got = LatencyTerm(table=COST, form=form, target_ms=1.0, beta=0.6, lam=3.0).apply(ce, e)
        assert float(got) == pytest.approx(want), form
    above = torch.tensor(2.0)
    assert float(
        LatencyTerm(table=COST, form="abs", target_ms=1.0, lam=3.0).apply(ce, above)
    ) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="abs"):
        LatencyTerm(table=COST, form="fast", target_ms=1.0)


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
    """The fit returns the finalization of its final α; α saved as plain numbers (a run's point file) and
    read back finalizes the same; a second fit with the same seed ends with the same α and architecture."""
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        net = TinyMixed()
        arch = ArchParameters(net.alpha_shapes(), generator=torch.Generator().manual_seed(1))
        run = _fit(DnasModule(net, arch), epochs=2)
        saved = {k: torch.tensor(v.tolist()) for k, v in arch.detached().items()}
        assert run.params == net.finalize(saved) == net.finalize(run.alphas)
        assert run.history[-1]["params"] == run.params
        runs.append((run.params, arch.detached()["edges"]))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_second_order_step_of_the_module_matches_a_real_unrolled_sgd_step() -> None:
    """The module's own architecture step (order 2) sets α.grad to the derivative of the validation loss
    after one *real* SGD step of the weights (momentum buffer and weight decay included), taken by
    ``torch.optim.SGD`` on copies, by central differences."""
    torch.manual_seed(0)
    dtype = torch.float64
    net = TinyMixed(c=3, bn=False).to(dtype)
    arch = ArchParameters(net.alpha_shapes(), init_scale=0.5).to(dtype)
    lr, mom, wd = 0.05, 0.9, 3e-4
    module = DnasModule(net, arch, order=2, w_lr=lr, w_momentum=mom, w_weight_decay=wd, a_weight_decay=0.0)
    module.log = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer here
    (xt, yt), (xv, yv) = next(iter(_loaders(seed=1)[0])), next(iter(_loaders(seed=2)[0]))
    train, val = (xt.to(dtype), yt), (xv.to(dtype), yv)
    w_opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=mom, weight_decay=wd)
    w_opt.zero_grad()
    nn.functional.cross_entropy(net(train[0], arch.probs()), yt).backward()
    w_opt.step()  # a momentum buffer to unroll through

    class Capture:
        grads: list[torch.Tensor] = []

        def zero_grad(self) -> None:
            arch.zero_grad()

        def step(self) -> None:
            Capture.grads = [a.grad.clone() for a in arch.alphas.values()]

    module._arch_step(train, val, Capture(), w_opt)
    (got,) = Capture.grads

    def unrolled(alpha: torch.Tensor) -> float:
        twin = copy.deepcopy(net)
        opt = torch.optim.SGD(twin.parameters(), lr=lr, momentum=mom, weight_decay=wd)
        opt.load_state_dict(copy.deepcopy(w_opt.state_dict()))  # its buffers, not shared
        opt.zero_grad()
        nn.functional.cross_entropy(twin(train[0], {"edges": alpha.softmax(-1)}), yt).backward()
        opt.step()
        with torch.no_grad():
            return float(nn.functional.cross_entropy(twin(val[0], {"edges": alpha.softmax(-1)}), yv))

    base, h = arch.alphas["edges"].detach().clone(), 1e-6
    numerical = torch.zeros_like(base)
    for idx in range(base.numel()):
        plus, minus = base.clone().view(-1), base.clone().view(-1)
        plus[idx] += h
        minus[idx] -= h
        numerical.view(-1)[idx] = (unrolled(plus.view_as(base)) - unrolled(minus.view_as(base))) / (2 * h)
    rel = float((got - numerical).norm() / numerical.norm())
    assert rel <= 1e-3, f"relative error {rel:.2e}"


def test_a_nonfinite_second_order_gradient_stops_the_search() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    with torch.no_grad():
        net.head.weight[0, 0] = float("nan")
    module = DnasModule(net, arch, order=2)
    with pytest.raises(CandidateFailed, match="non-finite"):
        _fit(module)
    assert module.nonfinite_loss


def test_gumbel_with_second_order_is_refused_in_one_place() -> None:
    from hwnas.lit.dnas import combination_error
    from hwnas.search.strategies.dnas import GradientSearch
    from hwnas.utils.errors import ConfigError

    net = TinyMixed()
    assert combination_error(mixing="gumbel", order=2, update="adam")[0] == "order"
    with pytest.raises(ValueError, match="softmax"):
        DnasModule(net, ArchParameters(net.alpha_shapes()), mixing="gumbel", order=2)
    with pytest.raises(ConfigError, match="softmax") as err:
        GradientSearch(mixing="gumbel", order=2)
    assert "search.strategy.order" in str(err.value)


class _Record(pl.Callback):
    """What the module's schedules held at each training batch."""

    def __init__(self) -> None:
        self.tau: list[float] = []
        self.aux: list[float] = []
        self.steps: list[int] = []

    def on_train_batch_end(self, trainer: pl.Trainer, module: Any, *_: Any) -> None:
        self.tau.append(module.tau)
        self.aux.append(module.net.aux_skip)
        self.steps.append(trainer.fit_loop.epoch_loop.total_batch_idx)


def test_schedules_count_batches_not_optimizer_steps() -> None:
    """GDAS's τ and DARTS−'s skip decay run linearly over the whole fit (8 batches: 2 epochs × 4), although
    two optimizers step per batch: τ is tau_max at the first batch, midway at the middle, tau_min at the last."""
    torch.manual_seed(0)
    net = TinyMixed()
    module = DnasModule(net, ArchParameters(net.alpha_shapes()), mixing="gumbel", tau_max=10.0, tau_min=0.1,
                        aux_skip=1.0)  # fmt: skip
    rec = _Record()
    tl, vl = _loaders()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=2, limit_train_batches=4, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, callbacks=[rec])  # fmt: skip
    trainer.fit(module, train_dataloaders=CombinedLoader({"train": tl, "val": vl}, mode="max_size_cycle"))
    assert trainer.global_step == 16  # Lightning counts both optimizers' steps...
    assert rec.steps == list(range(8))  # ...the schedules count batches
    expected = [10.0 - 9.9 * k / 7 for k in range(8)]
    assert rec.tau == pytest.approx(expected), rec.tau
    assert rec.tau[3] > 5.05 > rec.tau[4]  # the middle of the fit is the middle of the schedule
    assert rec.aux == pytest.approx([1.0 - k / 7 for k in range(8)]) and rec.aux[-1] == 0.0


def test_the_finalized_estimate_has_the_finalized_value_and_the_expectations_gradient() -> None:
    """``estimate="finalized"``: the term sees the table latency of the architecture α finalizes to (not
    the mixture's), with the expectation's gradient (straight-through)."""
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes(), init_scale=1.0)
    fin = DnasModule(
        net, arch, latency=LatencyTerm(table=COST, form="abs", target_ms=1.0, estimate="finalized")
    )
    exp = DnasModule(net, arch, latency=LatencyTerm(table=COST, form="abs", target_ms=1.0))
    onehot = net.finalized_probs(arch.detached())
    assert float(fin.expected_latency()) == pytest.approx(float(net.expected_latency(onehot, COST)))
    assert float(exp.expected_latency()) != pytest.approx(float(fin.expected_latency()))
    g_fin = torch.autograd.grad(fin.expected_latency(), [arch.alphas["edges"]])[0]
    g_exp = torch.autograd.grad(exp.expected_latency(), [arch.alphas["edges"]])[0]
    assert torch.allclose(g_fin, g_exp) and g_fin.abs().sum() > 0

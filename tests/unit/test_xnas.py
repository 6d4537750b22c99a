"""XNAS's update on the tiny mixed network: the regret-bound rate, every expert moved, the wipe-out (exact
zeros that stop ops running, never the finalizable leader), and the latency term and regularisers under it."""

from __future__ import annotations

import math

import pytest
import torch

from hwnas.lit.dnas import DnasModule, LatencyTerm
from hwnas.lit.xnas import WIPED, ExpertAdvice
from hwnas.models.mixed import ArchParameters
from tests.unit.test_dnas import COST, TinyMixed, _fit


def test_rate_is_the_regret_bound_and_gradients_are_clipped() -> None:
    arch = ArchParameters({"g": (4,)}, init_scale=0.0)
    adv = ExpertAdvice(arch, total_steps=100, grad_bound=0.5, wipeout=False)
    eta = math.sqrt(2 * math.log(4) / 100) / 0.5
    assert adv.eta["g"] == pytest.approx(eta)
    adv.step({"g": torch.tensor([10.0, -10.0, 0.1, 0.0])}, step=0)
    assert torch.allclose(arch.alphas["g"].detach(), torch.tensor([-0.5 * eta, 0.5 * eta, -0.1 * eta, 0.0]))


def test_wipeout_drops_hopeless_experts_but_never_the_finalizable_leader() -> None:
    arch = ArchParameters({"g": (2, 3)}, init_scale=0.0)
    # choice 0 is `none`-like (never chosen): however strong, it must not protect the row as its leader
    adv = ExpertAdvice(arch, total_steps=10, grad_bound=1.0, never_chosen={"g": [0]})
    g = torch.tensor([[-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]])
    wiped = sum(adv.step({"g": g}, step=t) for t in range(10))
    a = arch.alphas["g"].detach()
    assert wiped > 0 and adv.wiped_total == wiped
    assert a[0, 2] == WIPED and a[1, 1] == WIPED  # the losers are gone...
    assert a[0, 1] != WIPED and a[1, 2] != WIPED  # ...the finalizable leaders are not
    assert torch.equal(arch.probs()["g"][0, 2], torch.tensor(0.0))  # exactly 0: the op stops running
    assert torch.isfinite(a).all()


def test_every_alpha_is_updated_and_wiped_ops_stop_running() -> None:
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    before = arch.detached()["edges"]
    module = DnasModule(net, arch, update="xnas", xnas_grad_bound=0.05)
    run = _fit(module, epochs=3)
    after = arch.detached()["edges"]
    live = after != WIPED
    assert live.any() and not live.all(), "this run should both keep and wipe experts"
    # every *surviving* expert received the update (a wiped one is overwritten with WIPED, which says
    # nothing about its update); `none`'s own loss is 0 under XNAS, so only finalizable experts must move
    moved = (after - before).abs() > 0
    movable = live.clone()
    movable[:, 0] = False
    assert moved[movable].all(), "a surviving architecture weight received no XNAS update"
    assert run.history[-1]["experts_alive"] == pytest.approx(float(live.float().mean()))
    # without wipe-out every expert is alive at the end and every finalizable one moved
    torch.manual_seed(0)
    net2 = TinyMixed()
    arch2 = ArchParameters(net2.alpha_shapes())
    b2 = arch2.detached()["edges"]
    _fit(DnasModule(net2, arch2, update="xnas", xnas_grad_bound=0.05, xnas_wipeout=False), epochs=3)
    a2 = arch2.detached()["edges"]
    assert (a2 != WIPED).all() and ((a2 - b2).abs() > 0)[:, 1:].all()
    # a wiped op is never called (its weight is exactly 0)
    with torch.no_grad():
        arch.alphas["edges"][0, 2] = WIPED
    calls = []
    net.edges[0].ops[2].register_forward_hook(lambda *_: calls.append(1))
    net(torch.randn(2, 1, 8, 8), arch.probs())
    assert not calls


def test_xnas_takes_the_latency_term_and_the_regulariser() -> None:
    """Against control runs of the same seed: the latency term lowers E[latency] below the run without
    it, and the entropy regulariser lowers the mixture's entropy below the run without it."""

    def run(term: LatencyTerm | None, reg_weight: float) -> tuple[float, float]:
        torch.manual_seed(0)
        net = TinyMixed()
        arch = ArchParameters(net.alpha_shapes(), init_scale=0.5)  # off uniform, where ∂H/∂α = 0
        module = DnasModule(net, arch, update="xnas", latency=term, alpha_reg="entropy",
                            alpha_reg_weight=reg_weight, xnas_grad_bound=1.0, xnas_wipeout=False)  # fmt: skip
        _fit(module, epochs=3)
        p = arch.probs()["edges"].detach()
        return float(net.expected_latency(arch.probs(), COST)), float(-(p * p.log()).sum(-1).mean())

    term = LatencyTerm(table=COST, form="add", target_ms=0.05, lam=5.0)
    lat_control, ent_control = run(None, 0.0)
    lat_term, _ = run(term, 0.0)
    _, ent_reg = run(None, 1.0)
    assert lat_term < lat_control - 0.05, (lat_term, lat_control)
    assert ent_reg < ent_control - 0.005, (ent_reg, ent_control)


def test_xnas_refuses_gumbel_and_second_order() -> None:
    net = TinyMixed()
    for kw in ({"mixing": "gumbel"}, {"order": 2}):
        with pytest.raises(ValueError, match="xnas"):
            DnasModule(net, ArchParameters(net.alpha_shapes()), update="xnas", **kw)


STRATEGIES = {"darts": {}, "gdas": {"mixing": "gumbel"}, "xnas": {"update": "xnas", "xnas_grad_bound": 0.05}}


# every latency term and every regulariser once per strategy in the fast tier; the rest of the product: slow
DIAGONAL = {("none", "none"), ("mul", "l1"), ("add", "entropy")}
COMBINATIONS = [
    pytest.param(s, lat, reg, marks=() if (lat, reg) in DIAGONAL else pytest.mark.slow)
    for s in sorted(STRATEGIES)
    for lat in ("none", "mul", "add")
    for reg in ("none", "l1", "entropy")
]


@pytest.mark.parametrize(("strategy", "latency", "reg"), COMBINATIONS)
def test_architecture_weights_move_in_every_combination(strategy: str, latency: str, reg: str) -> None:
    """Every α entry receives gradient (DARTS, GDAS) or the XNAS update under every latency term and
    regulariser, with DARTS−'s auxiliary skip on: every choice's probability moves. (Under XNAS the `none`
    expert's own loss ⟨∂ℓ/∂y, 0⟩ is 0, so its α stays and the others move relative to it.)"""
    torch.manual_seed(0)
    net = TinyMixed()
    arch = ArchParameters(net.alpha_shapes())
    before = arch.probs()["edges"].detach()
    term = None if latency == "none" else LatencyTerm(table=COST, form=latency, target_ms=0.05)
    module = DnasModule(net, arch, latency=term, alpha_reg=reg, alpha_reg_weight=0.01, aux_skip=0.5,
                        a_lr=0.01, xnas_wipeout=False, **STRATEGIES[strategy])  # fmt: skip
    _fit(module, epochs=2)
    moved = (arch.probs()["edges"].detach() - before).abs() > 0
    assert moved.all(), (
        f"{strategy}/{latency}/{reg}: choices whose probability never moved: {(~moved).nonzero().tolist()}"
    )


def test_the_regulariser_step_is_clipped_with_the_loss_gradient() -> None:
    """The wipe-out's guarantee needs every α to move by at most L·η per step: a large regulariser gradient
    is clipped together with the expert gradient, never added on top of the clipped one."""
    arch = ArchParameters({"g": (3,)}, init_scale=0.0)
    adv = ExpertAdvice(arch, total_steps=50, grad_bound=0.5, wipeout=False)
    adv.step({"g": torch.tensor([0.4, -0.4, 0.0])}, step=0, reg_grads={"g": torch.tensor([10.0, -10.0, 0.2])})
    eta = adv.eta["g"]
    assert torch.allclose(arch.alphas["g"].detach(), torch.tensor([-0.5 * eta, 0.5 * eta, -0.2 * eta]))

"""The supernet contract suites: the mixed-op supernets gradient strategies train
(:class:`~hwnas.models.mixed.DifferentiableSupernet`) and the elastic weight-sharing supernets
``evaluator=supernet`` trains (set / sample / extract, as Once-for-All's).

:class:`DifferentiableSupernetContract` needs ``supernet`` (yours, small), ``space`` (the search space
whose parameters ``finalize`` returns) and ``input_shape`` (``(N, C, H, W)``, default ``(2, 3, 32, 32)``)::

    class TestMyMixedNet(DifferentiableSupernetContract):
        @pytest.fixture
        def space(self):
            return MySpace()

        @pytest.fixture
        def supernet(self, space):
            return space.mixed_supernet(num_classes=10, channels=4)

:class:`ElasticSupernetContract` needs ``supernet`` and ``input_shape``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.models.mixed import ArchParameters, DifferentiableSupernet
from hwnas.search_space.base import SearchSpace


def random_alphas(net: DifferentiableSupernet, seed: int = 0, scale: float = 1.0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: scale * torch.randn(*shape, generator=gen) for name, shape in net.alpha_shapes().items()}


def made_up_table(ops: Mapping[str, Any]) -> dict[str, float]:
    """A latency for every op (distinct, positive, stable): the shape of a measured table, no timing."""
    return {name: 0.1 + (i % 7) * 0.05 + i * 1e-3 for i, name in enumerate(sorted(ops))}


def _logits_ok(out: Any, n: int, h: int, w: int) -> None:
    assert isinstance(out, torch.Tensor) and out.shape[0] == n, (
        f"logits of shape {getattr(out, 'shape', out)}"
    )
    assert out.ndim == 2 or (out.ndim == 4 and tuple(out.shape[2:]) == (h, w)), f"logits {tuple(out.shape)}"
    assert torch.isfinite(out).all()


class DifferentiableSupernetContract:
    """Rules every mixed-op supernet keeps (see :mod:`hwnas.models.mixed`): ``α`` is an input, ``finalize``
    is a deterministic architecture of the space, and the latency expectation is differentiable.

    Fixtures: ``supernet`` and ``space`` (yours, required); ``input_shape`` (default ``(2, 3, 32, 32)``).
    """

    @pytest.fixture
    def input_shape(self) -> tuple[int, int, int, int]:
        return (2, 3, 32, 32)

    def test_alpha_shapes_and_no_alpha_inside(self, supernet: DifferentiableSupernet) -> None:
        """The weight optimizer is built from ``net.parameters()``: ``α`` must never be among them."""
        assert isinstance(supernet, DifferentiableSupernet)
        shapes = supernet.alpha_shapes()
        assert isinstance(shapes, dict) and shapes
        for name, shape in shapes.items():
            assert isinstance(name, str) and len(shape) >= 1 and all(int(d) >= 1 for d in shape), (
                name,
                shape,
            )
        assert not any(isinstance(m, ArchParameters) for m in supernet.modules()), (
            "α must live outside the net"
        )

    def test_forward_mixes_with_the_given_weights(
        self, supernet: DifferentiableSupernet, input_shape: tuple[int, ...]
    ) -> None:
        """Soft (DARTS) and one-hot (GDAS) weights both run; the loss's gradient reaches every group."""
        n, _, h, w = input_shape
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
        arch = ArchParameters(
            supernet.alpha_shapes(), init_scale=1e-3, generator=torch.Generator().manual_seed(0)
        )
        out = supernet(x, arch.probs())
        _logits_ok(out, n, h, w)
        out.float().pow(2).mean().backward()
        no_grad = [k for k, p in arch.alphas.items() if p.grad is None]
        assert not no_grad, f"no gradient reaches α of {no_grad}: the weights must be used, not copied"
        hard = supernet.finalized_probs(arch.detached())
        with torch.no_grad():
            _logits_ok(supernet(x, hard), n, h, w)

    def test_forward_refuses_missing_weights(
        self, supernet: DifferentiableSupernet, input_shape: tuple[int, ...]
    ) -> None:
        weights = {k: v.softmax(-1) for k, v in random_alphas(supernet).items()}
        weights.pop(next(iter(weights)))
        with pytest.raises((KeyError, ValueError)), torch.no_grad():
            supernet(torch.zeros(*input_shape), weights)

    def test_finalize_is_deterministic_and_in_the_space(
        self, supernet: DifferentiableSupernet, space: SearchSpace
    ) -> None:
        """Equal ``α``, equal architecture (a resumed search finds the same one), and always one of the
        space's architectures, so the loop can evaluate it like any candidate."""
        for seed in range(4):
            alphas = random_alphas(supernet, seed)
            params = supernet.finalize(alphas)
            assert params == supernet.finalize({k: v.clone() for k, v in alphas.items()})
            space.make(params)
        ties = {name: torch.zeros(*shape) for name, shape in supernet.alpha_shapes().items()}
        assert supernet.finalize(ties) == supernet.finalize(ties), "ties must be broken deterministically"
        space.make(supernet.finalize(ties))

    def test_finalized_probs_encode_the_finalized_architecture(
        self, supernet: DifferentiableSupernet
    ) -> None:
        """One-hot weights (per choice row) of the architecture ``finalize`` returns: the latency range and
        the finalized latency estimate read the table through them."""
        shapes = supernet.alpha_shapes()
        for seed in range(3):
            alphas = random_alphas(supernet, seed)
            probs = supernet.finalized_probs(alphas)
            assert set(probs) == set(shapes)
            for name, p in probs.items():
                assert tuple(p.shape) == tuple(shapes[name]), name
                assert bool(((p == 0) | (p == 1)).all()), f"{name}: finalized_probs must be one-hot"
                assert bool((p.sum(-1) == 1).all()), f"{name}: one choice per row"
            assert supernet.finalize(probs) == supernet.finalize(alphas), "the one-hot weights finalize alike"

    def test_expected_latency_is_differentiable(
        self, supernet: DifferentiableSupernet, input_shape: tuple[int, ...]
    ) -> None:
        """Every op has a stable name for the latency table; ``E[latency]`` is a positive, finite scalar
        whose gradient reaches the choice probabilities."""
        shape = (1, *input_shape[1:])
        ops = supernet.latency_ops(shape)
        assert ops and set(ops) == set(supernet.latency_ops(shape)), "op names must be stable"
        for name, (module, op_shape) in ops.items():
            assert isinstance(module, nn.Module) and len(op_shape) >= 2 and op_shape[0] == 1, name
        table = made_up_table(ops)
        alphas = {k: v.requires_grad_() for k, v in random_alphas(supernet, scale=0.5).items()}
        e = supernet.expected_latency({k: v.softmax(-1) for k, v in alphas.items()}, table)
        assert isinstance(e, torch.Tensor) and e.ndim == 0 and torch.isfinite(e) and float(e) > 0
        e.backward()
        assert any(v.grad is not None and bool(v.grad.abs().sum() > 0) for v in alphas.values()), (
            "E[latency] does not depend on the probabilities"
        )
        with torch.no_grad():
            hard = float(supernet.expected_latency(supernet.finalized_probs(alphas), table))
        assert np.isfinite(hard) and hard > 0


class ElasticSupernetContract:
    """Rules every weight-sharing supernet keeps: ``set_active`` / ``sample`` / ``largest`` / ``smallest`` /
    ``extract``, with the extracted network computing what the active supernet computes.

    Fixtures: ``supernet`` (yours, required); ``input_shape`` (default ``(2, 3, 32, 32)``).
    """

    @pytest.fixture
    def input_shape(self) -> tuple[int, int, int, int]:
        return (2, 3, 32, 32)

    def test_sample_is_seeded(self, supernet: Any) -> None:
        a = [supernet.sample(np.random.default_rng(0)) for _ in range(3)]
        b = [supernet.sample(np.random.default_rng(0)) for _ in range(3)]
        assert a == b

    def test_extract_computes_what_the_active_supernet_computes(
        self, supernet: Any, input_shape: tuple[int, ...]
    ) -> None:
        """A candidate scored with inherited weights is the model the final stage fine-tunes and exports."""
        n, _, h, w = input_shape
        x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(0))
        supernet.eval()
        rng = np.random.default_rng(0)
        for config in (supernet.largest(), supernet.smallest(), supernet.sample(rng)):
            supernet.set_active(config)
            sub = supernet.extract(config)
            assert isinstance(sub, nn.Module) and sub is not supernet
            with torch.no_grad():
                ref, out = supernet(x), sub.eval()(x)
            _logits_ok(out, n, h, w)
            assert torch.allclose(ref, out, atol=1e-4, rtol=1e-4), (
                f"extract({config}) differs from the active supernet by {float((ref - out).abs().max()):.3g}"
            )

    def test_largest_holds_the_most_weights(self, supernet: Any) -> None:
        big = sum(p.numel() for p in supernet.extract(supernet.largest()).parameters())
        small = sum(p.numel() for p in supernet.extract(supernet.smallest()).parameters())
        assert big >= small

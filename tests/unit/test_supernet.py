"""The elastic hourglass supernet: extraction is exact, its exports pass the candidate checks, ranges are
enforced, BatchNorm re-estimation is an exact average, and a sandwich step really trains the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from hwnas.hardware.export import export_onnx
from hwnas.lit.supernet import SupernetModule
from hwnas.models.elastic_hourglass import recalibrate_bn
from hwnas.models.hourglass import HourglassConfig, LevelConfig
from hwnas.search_space.hourglass import HourglassSpace


def _space() -> HourglassSpace:
    return HourglassSpace(
        num_levels=3, base_channels=[8, 16], layers=[1, 2], kernels=[3, 5], expand=[1.0, 2.0],
        skip_layers=[0, 1], max_channels=32,
    )  # fmt: skip


def _randomise_bn(net: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("kernel_mode", ["shared", "separate"])
@pytest.mark.parametrize("training", [False, True])
def test_extracted_model_equals_the_active_supernet_exactly(kernel_mode: str, training: bool) -> None:
    space = _space()
    net = space.supernet(num_classes=5, kernel_mode=kernel_mode)
    _randomise_bn(net)
    net.train(training)
    x = torch.randn(2, 3, 32, 32)
    rng = np.random.default_rng(0)
    specs = [space.sample(rng) for _ in range(12)]
    specs += [space.make({k: max(v) for k, v in space.choices().items()})]
    specs += [space.make({k: min(v) for k, v in space.choices().items()})]
    for spec in specs:
        config = space.model_config(spec)
        net.set_active(config)
        with torch.no_grad():
            expected = net(x)
            sub = net.extract(config)
            got = sub(x)
        assert torch.equal(expected, got), spec.key
        # The extracted model is the space's own network for the spec, with the same parameter count.
        built = space.build(spec, num_classes=5)
        assert sum(p.numel() for p in sub.parameters()) == sum(p.numel() for p in built.parameters())
        assert sub.training == training


def test_extracted_model_exports_like_a_trained_candidate(tmp_path: Path) -> None:
    space = _space()
    net = space.supernet(num_classes=5)
    _randomise_bn(net)
    spec = space.sample(np.random.default_rng(3))
    sub = net.extract(space.model_config(spec)).eval()
    path = export_onnx(sub, (1, 3, 32, 32), tmp_path / f"{spec.stem}.onnx")  # runs onnx.checker
    x = torch.randn(1, 3, 32, 32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"input": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, sub(x).numpy(), atol=1e-4)


def test_a_config_outside_the_ranges_is_refused() -> None:
    net = _space().supernet(num_classes=5)
    big = net.largest()
    too_wide = HourglassConfig(
        base_channels=big.base_channels + 8, levels=big.levels
    )  # wider stem than the supernet holds
    with pytest.raises(ValueError, match="outside this supernet"):
        net.set_active(too_wide)
    lv = big.levels[0]
    bad_kernel = LevelConfig(lv.channels, lv.down_layers, 7, lv.skip_layers, lv.up_layers, lv.up_kernel)
    with pytest.raises(ValueError, match="outside"):
        net.extract(HourglassConfig(big.base_channels, (bad_kernel, *big.levels[1:])))


def test_largest_and_smallest_bound_every_sample() -> None:
    net = _space().supernet(num_classes=5)
    big, small = net.largest(), net.smallest()
    rng = np.random.default_rng(1)
    for _ in range(50):
        c = net.sample(rng)
        assert small.base_channels <= c.base_channels <= big.base_channels
        for lv, lo, hi in zip(c.levels, small.levels, big.levels, strict=True):
            assert lo.channels <= lv.channels <= hi.channels
            assert lo.down_layers <= lv.down_layers <= hi.down_layers


def test_recalibrated_batchnorm_holds_the_exact_average_of_batch_statistics() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4))
    batches = [torch.randn(8, 3, 5, 5) + i for i in range(3)]
    recalibrate_bn(model, batches)
    assert not model.training
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, means)
    assert model[1].momentum == 0.1  # restored


def test_sandwich_step_trains_shared_weights_and_stops_on_nan() -> None:
    import pytorch_lightning as pl

    space = _space()
    net = space.supernet(num_classes=5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 5, (8, 32, 32))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    module = SupernetModule(net, lr=1e-2, weight_decay=0.0, n_random=1, grad_clip=1.0)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    after = net.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("stem" in k for k in changed) and any("head" in k for k in changed)
    assert {"train/loss_largest", "train/loss_smallest"} <= set(trainer.callback_metrics)
    assert not module.nonfinite_loss

    bad = SupernetModule(space.supernet(num_classes=5), lr=1e-2, weight_decay=0.0)
    nan_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.full_like(x, float("nan")), y), batch_size=4
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(bad, train_dataloaders=nan_loader)
    assert bad.nonfinite_loss


def test_distillation_ignores_unlabelled_pixels() -> None:
    """In-place distillation averages over labelled pixels only, like the label loss: what the student
    does on an ignored (255) pixel changes nothing."""
    from hwnas.data.labels import IGNORE_INDEX
    from hwnas.lit.supernet import soft_cross_entropy

    g = torch.Generator().manual_seed(0)
    logits, teacher = torch.randn(2, 4, 3, 3, generator=g), torch.randn(2, 4, 3, 3, generator=g).softmax(1)
    labels = torch.randint(0, 4, (2, 3, 3), generator=g)
    labels[:, 0] = IGNORE_INDEX
    base = soft_cross_entropy(logits, teacher, labels)
    other = logits.clone()
    other[:, :, 0] = 50 * torch.randn(2, 4, 3, generator=g)  # wild predictions where nothing is labelled
    assert float(soft_cross_entropy(other, teacher, labels)) == pytest.approx(float(base))
    valid = labels != IGNORE_INDEX
    per = -(teacher * logits.log_softmax(1)).sum(1)
    assert float(base) == pytest.approx(float(per[valid].mean()))
    assert float(soft_cross_entropy(logits, teacher)) == pytest.approx(float(per.mean()))


def test_every_step_trains_the_largest_then_the_smallest_sub_network() -> None:
    """The sandwich rule: each step's forward passes are the largest, the smallest, then the random ones,
    and the smallest's loss reaches the weights (the weights it uses change)."""
    import pytorch_lightning as pl

    space = _space()
    net = space.supernet(num_classes=5)
    steps: list[list] = []
    net.register_forward_hook(lambda m, *_: steps[-1].append(m.active))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(12, 3, 32, 32), torch.randint(0, 5, (12, 32, 32))),
        batch_size=4,
    )

    class Mark(pl.Callback):
        def on_train_batch_start(self, *_: object) -> None:
            steps.append([])

    module = SupernetModule(net, lr=1e-2, weight_decay=0.0, n_random=2, distill=0.0)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", limit_val_batches=0, callbacks=[Mark()],
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    assert len(steps) == 3
    for passes in steps:
        assert len(passes) == 4 and passes[0] == net.largest() and passes[1] == net.smallest()
    # the smallest alone changes the weights it uses: one step with only its loss (largest's loss x 0)
    small = space.supernet(num_classes=5)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 5, (4, 32, 32))
    small.set_active(small.smallest())
    torch.nn.functional.cross_entropy(small(x), y).backward()
    used = {n for n, p in small.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert used and any("stem" in n for n in used)


def test_the_evaluator_scores_subnets_with_recalibrated_batchnorm() -> None:
    """``SupernetEvaluator.subnet``: the extracted sub-network's BatchNorm statistics are re-estimated on
    the evaluator's calibration batches (not the supernet's running averages over all sub-networks)."""
    from types import SimpleNamespace

    from hwnas.evaluators.supernet import SupernetEvaluator

    space = _space()
    net = space.supernet(num_classes=5)
    _randomise_bn(net)
    calib = [torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(i)) + 2.0 for i in range(2)]
    fake = SimpleNamespace(space=space, supernet=net, train_size=(32, 32), channels_last=False, _calib=calib)
    spec = space.sample(np.random.default_rng(0))
    model = SupernetEvaluator.subnet(fake, spec)
    plain = net.extract(space.model_config(spec))
    reference = recalibrate_bn(net.extract(space.model_config(spec)), calib)
    bns = [n for n, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not model.training
    sd, sd_plain, sd_ref = model.state_dict(), plain.state_dict(), reference.state_dict()
    for n in bns:
        assert torch.allclose(sd[f"{n}.running_mean"], sd_ref[f"{n}.running_mean"])
        assert not torch.allclose(sd[f"{n}.running_mean"], sd_plain[f"{n}.running_mean"])

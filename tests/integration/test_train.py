"""``train.run``: real Lightning training of one architecture, best checkpoint, verified ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from hwnas.tasks import train
from hwnas.utils.errors import InvalidArchError

TINY_TRAIN = [
    "dataset.dataset.num_train=64",
    "dataset.dataset.num_val=32",
    "trainer.max_epochs=2",
    "logger=csv",
]
ONNX_ATOL = 1e-3  # max |torch - onnxruntime| on a real image, fp32


@pytest.mark.integration
def test_train_writes_metrics_checkpoint_and_an_onnx_that_matches_torch(make_cfg) -> None:
    cfg = make_cfg("train", TINY_TRAIN)
    metrics = train.run(cfg)
    run_dir = Path(cfg.run_dir)
    saved = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/miou", "val/f1", "params", "train_seconds", "onnx_max_abs_diff"):
        assert key in saved
    assert 0.0 <= saved["val/miou"] <= 1.0 and saved["params"] > 1000
    assert Path(saved["best_checkpoint"]).is_file()
    onnx_path = Path(metrics["onnx_path"])
    onnx.checker.check_model(onnx.load(str(onnx_path)))
    assert saved["onnx_max_abs_diff"] <= ONNX_ATOL

    # Independently: the checkpoint's weights in torch and the ONNX file agree on a real image.
    from hwnas.search_space.hourglass import HourglassSpace
    from hwnas.utils.config import build_datamodule, build_space

    space: HourglassSpace = build_space(cfg)
    spec = space.load(run_dir / "arch.json")
    model = space.build(spec, num_classes=19).eval()
    state = torch.load(saved["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
    x = build_datamodule(cfg).calibration_batches(1)[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input": x})[0]
    assert out.shape == (1, 19, 64, 64)
    assert np.abs(out - ref).max() <= ONNX_ATOL


def test_corrupt_arch_json_is_a_clear_error(make_cfg, tmp_path) -> None:
    bad = tmp_path / "arch.json"
    bad.write_text('{"space": "hourglass", "params": {')
    cfg = make_cfg("train", [*TINY_TRAIN, f"arch={bad}"])
    with pytest.raises(InvalidArchError, match=r"\[arch\].*corrupt"):
        train.run(cfg)

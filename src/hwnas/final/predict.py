"""Run a trained model over a split and score it: torch, an ONNX file under onnxruntime, or outputs
that came back from a device. All three feed the same :class:`ConfusionMatrix`, so their figures differ
only by what the runtime did to the numbers. Segmentation labels are ``[B, H, W]`` masks scored against
``[B, K, H, W]`` logits; classification labels are ``[B]`` class ids scored against ``[B, K]`` logits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.data.base import normalize_batch
from hwnas.final.metrics import ConfusionMatrix


def split_batches(
    datamodule: Any, split: str = "test", *, batch_size: int = 32
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(float32 [B, C, H, W] normalised images, labels)`` of ``split``, in order, no augmentation; labels
    are ``uint8 [B, H, W]`` masks (segmentation) or ``[B]`` class ids (classification)."""
    ds = datamodule.split(split)
    for start in range(0, len(ds), batch_size):
        pairs = [ds.raw(i) for i in range(start, min(start + batch_size, len(ds)))]
        images = np.stack([p[0] for p in pairs])
        masks = np.stack([p[1] for p in pairs])
        yield normalize_batch(images).numpy(), masks


def _new_cm(num_classes: int, f1_classes: Sequence[int] | None) -> ConfusionMatrix:
    if f1_classes is None:
        return ConfusionMatrix(num_classes=num_classes)
    return ConfusionMatrix(num_classes=num_classes, f1_classes=tuple(f1_classes))


@torch.no_grad()
def evaluate_torch(
    model: nn.Module,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    f1_classes: Sequence[int] | None = None,
) -> ConfusionMatrix:
    """Argmax predictions of ``model`` (eval mode, CPU) over ``batches``; F1 over ``f1_classes``
    (``None``: the face classes, :data:`~hwnas.final.metrics.F1_CLASSES`)."""
    was_training = model.training
    model.eval()
    cm = _new_cm(num_classes, f1_classes)
    try:
        for x, y in batches:
            logits = model(torch.from_numpy(x))
            cm.update(logits.argmax(dim=1).numpy(), y)
    finally:
        model.train(was_training)
    return cm


def onnx_session(path: str | Path, *, threads: int = 0) -> Any:
    """A CPU onnxruntime session (``threads=0``: onnxruntime's default)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, x: np.ndarray) -> np.ndarray:
    """Logits of ``x`` (any batch size) from a static-shape session: fed in chunks of its batch size."""
    inp = session.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    if fixed is None or fixed == x.shape[0]:
        return session.run(None, {inp.name: x})[0]
    outs = []
    for start in range(0, x.shape[0], fixed):
        chunk = x[start : start + fixed]
        n = chunk.shape[0]
        if n < fixed:  # pad the last chunk to the static batch size, drop the padding after
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        outs.append(session.run(None, {inp.name: chunk})[0][:n])
    return np.concatenate(outs)


def evaluate_onnx(
    path: str | Path,
    batches: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    f1_classes: Sequence[int] | None = None,
) -> ConfusionMatrix:
    """Argmax predictions of the ONNX file at ``path`` (fp32 or int8 QDQ) under onnxruntime."""
    session = onnx_session(path)
    cm = _new_cm(num_classes, f1_classes)
    for x, y in batches:
        cm.update(run_onnx(session, x).argmax(axis=1), y)
    return cm


def evaluate_outputs(
    outputs: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    num_classes: int,
    f1_classes: Sequence[int] | None = None,
) -> ConfusionMatrix:
    """Score logits that came back from elsewhere (e.g. a phone): ``outputs[i]`` ``[B, K, H, W]`` (or
    ``[B, H, W, K]``, channels last as TFLite returns them) against ``targets[i]`` ``[B, H, W]``; for
    classification ``[B, K]`` (or one image's ``[K]``) against ``[B]``.
    """
    cm = _new_cm(num_classes, f1_classes)
    for out, y in zip(outputs, targets, strict=True):
        out = np.asarray(out)
        if out.ndim in (1, 3):  # one image's logits, without the batch dimension
            out = out[None]
        if out.shape[1] != num_classes and out.shape[-1] == num_classes:
            out = np.moveaxis(out, -1, 1)
        cm.update(out.argmax(axis=1), np.asarray(y).reshape(out.shape[0], *out.shape[2:]))
    return cm

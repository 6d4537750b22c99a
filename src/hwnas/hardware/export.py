"""Export a torch model to one self-contained, static-shape ONNX file.

Every profiler (onnxruntime, AI Hub, SNPE, the analytical estimate) starts from the same export, so
that the latency we report belongs to exactly the graph a deployment would run.

Why the legacy (TorchScript) exporter: torch >= 2.9 defaults to the ``torch.export``-based exporter,
which is ~15x slower on small conv nets (seconds per candidate, a lot inside a search), prints
progress lines to stdout, upgrades opset 17 requests to 18 and, for large models, writes the weights
to a side file unless ``external_data=False``. The legacy exporter (``dynamo=False``) is still
shipped, folds BatchNorm into convolutions in eval mode and writes one file. We fall back to the
dynamo exporter (quietly, ``external_data=False``) if the legacy one is removed or fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.utils import timing_lock
from hwnas.utils.errors import CandidateFailed

log = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence exporter warnings and progress prints (they would flood a search's logs)."""
    sink = io.StringIO()
    torch_onnx_log = logging.getLogger("torch.onnx")
    old_level = torch_onnx_log.level
    torch_onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch_onnx_log.setLevel(old_level)


def _export_legacy(model: nn.Module, x: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamo=False,
        do_constant_folding=True,
    )


def _export_dynamo(model: nn.Module, x: torch.Tensor, path: Path, opset: int) -> None:
    torch.onnx.export(
        model,
        (x,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, ...],
    path: str | Path,
    *,
    opset: int = 17,
) -> Path:
    """Export ``model`` (eval mode, CPU, no grad) with a static ``input_shape`` to ``path``.

    The graph has one input named ``input`` and one output named ``logits``; the file is written
    atomically (temp file + rename) so concurrent workers never read half a model, and it is
    validated with ``onnx.checker.check_model``. The model's training flag and device are restored.

    Args:
        model: The torch model to export.
        input_shape: Full input shape including the batch dimension, e.g. ``(1, 3, 256, 256)``.
        path: Destination ``.onnx`` file (parent folders are created).
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        CandidateFailed: If export or validation fails (the search records a failed trial).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    was_training = model.training
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    model = model.cpu().eval()
    x = torch.zeros(tuple(int(d) for d in input_shape), dtype=torch.float32)
    try:
        # Shared with trainings, exclusive of timings: an export is seconds of CPU work that would
        # slow another worker's timing loop on the same machine (see hwnas.utils.timing_lock).
        with torch.no_grad(), _quiet(), timing_lock.busy():
            try:
                _export_legacy(model, x, tmp, opset)
            except Exception as legacy_err:  # noqa: BLE001 - fall back to the other exporter
                log.debug("legacy ONNX export failed (%s); trying the dynamo exporter", legacy_err)
                _export_dynamo(model, x, tmp, opset)
        onnx.checker.check_model(str(tmp), full_check=True)
        os.replace(tmp, path)
    except CandidateFailed:
        raise
    except Exception as err:
        raise CandidateFailed(f"export failed: {type(err).__name__}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
        model.to(device)
        model.train(was_training)
    return path


def onnx_matches_torch(
    model: nn.Module, onnx_path: str | Path, x: np.ndarray | torch.Tensor, atol: float = 1e-4
) -> float:
    """Run ``x`` through ``model`` and its ONNX export; return the max absolute difference.

    Used by tests and the export sanity check: a wrong export would make every latency meaningless.

    Args:
        model: The torch model.
        onnx_path: Its ONNX export.
        x: One input batch matching the exported static shape.
        atol: Tolerance; a larger difference is logged as a warning (the value is returned either way).

    Returns:
        ``max |torch(x) - onnx(x)|`` over all output elements.
    """
    import onnxruntime as ort

    x_np = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    x_np = x_np.astype(np.float32, copy=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ref = model.cpu()(torch.from_numpy(x_np)).numpy()
    finally:
        model.train(was_training)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x_np})[0]
    diff = float(np.max(np.abs(out - ref))) if ref.size else 0.0
    if diff > atol:
        log.warning("ONNX output differs from torch by %.3g (> atol %.3g) for %s", diff, atol, onnx_path)
    return diff

"""Run an int8 model on a real device through Qualcomm AI Hub and bring its outputs back.

Latency (``QaiHubProfiler.profile``) says how fast a model is on the phone; this module says how
accurate it is there: the already-quantised (QDQ) ONNX file is compiled once for the profiler's
device and runtime, the images go up in chunks of ``submit_inference_job(..., profile=False)``,
and the logits come back in input order for the caller to score.

Everything remote goes through the profiler's plumbing (token check, client, retries with back-off,
job status), so the same ``hardware=snapdragon888 hardware.backend=qai_hub`` settings apply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware.qai_hub import QaiHubProfiler
from hwnas.utils.errors import CandidateFailed, ConfigError

log = logging.getLogger(__name__)

INPUT_NAME = "input"


def _check_images(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], tuple[int, ...]]:
    """Float32, C-contiguous copies of ``images`` and their common static shape ``(1, C, H, W)``."""
    if len(images) == 0:
        raise ConfigError("no images to run on the device", key="final.device")
    arrays = [np.ascontiguousarray(img, dtype=np.float32) for img in images]
    shape = tuple(int(d) for d in arrays[0].shape)
    if len(shape) != 4 or shape[0] != 1:
        raise ConfigError(f"each image must have shape [1, C, H, W], got {list(shape)}", key="final.device")
    for i, arr in enumerate(arrays):
        if arr.shape != shape:
            raise ConfigError(
                f"image {i} has shape {list(arr.shape)}, expected {list(shape)} (the model's input is static)",
                key="final.device",
            )
    return arrays, shape


def _first_output(data: Any, *, job_id: str, expected: int) -> list[np.ndarray]:
    """The first output's arrays from ``InferenceJob.download_output_data()``, one per input image.

    The download is a dict ``{output_name: [array per input sample]}`` in the model's output order;
    models with several outputs (e.g. logits plus aux heads) are scored on the first one.
    """
    if not data:
        raise CandidateFailed(f"AI Hub inference job {job_id} returned no output data")
    name, arrays = next(iter(data.items()))
    if len(data) > 1:
        log.debug("job %s has outputs %s; using the first, %r", job_id, list(data), name)
    if len(arrays) != expected:
        raise CandidateFailed(
            f"AI Hub inference job {job_id} returned {len(arrays)} output(s) for {name!r}, "
            f"expected {expected} (one per input image)"
        )
    return [np.asarray(a) for a in arrays]


def run_on_device(
    profiler: QaiHubProfiler,
    onnx_path: str | Path,
    images: Sequence[np.ndarray],
    *,
    chunk_size: int = 16,
    name: str = "hwnas-final",
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Run an int8 QDQ ONNX model on the profiler's AI Hub device and return its outputs per image.

    The model is compiled once (no quantize job: the file is already quantised) with
    ``--target_runtime <profiler.target_runtime>`` plus ``profiler.compile_options`` and explicit
    ``input_specs`` for the static shape; then each chunk of images is one inference job without
    profiling. Transient errors are retried with the profiler's back-off.

    Args:
        profiler: Supplies the token check, device, runtime, compile options and retry policy.
        onnx_path: Int8 QDQ ONNX file with one float32 input named ``input`` of static shape
            ``[1, 3, H, W]``.
        images: Float32 arrays, each ``[1, 3, H, W]``, already normalised.
        chunk_size: Images per inference job (one dataset upload each).
        name: Job name prefix shown on the AI Hub website.

    Returns:
        One output array per image, in input order and in the layout the device returned (e.g.
        ``[1, H, W, K]`` channels-last from TFLite, or ``[1, K, H, W]``); only the model's first output
        is returned. And an info dict: ``compile_job``, ``inference_jobs``, ``device``,
        ``target_runtime``, ``compile_options``, ``n_images``, ``chunks``.

    Raises:
        ProfilerUnavailable: No token or no ``qai-hub`` client (nothing is sent).
        ConfigError: ``chunk_size < 1``, a missing/non-``.onnx`` file, or malformed images.
        CandidateFailed: A job failed after retries or returned the wrong number of outputs.
    """
    if int(chunk_size) < 1:
        raise ConfigError(f"must be >= 1, got {chunk_size}", key="final.device.chunk_size")
    profiler.check()  # never send anything without a token
    path = Path(onnx_path)
    if path.suffix != ".onnx" or not path.is_file():
        raise ConfigError(f"not an ONNX file: {path}", key="final.device", fix="export and quantise it first")
    arrays, shape = _check_images(images)
    chunks = [arrays[i : i + int(chunk_size)] for i in range(0, len(arrays), int(chunk_size))]

    api = profiler._api()
    device = profiler._device()
    options = profiler._options(f"--target_runtime {profiler.target_runtime} {profiler.compile_options}")
    c_job = profiler._retry(
        "compile",
        lambda: profiler._finish(
            "compile",
            api.submit_compile_job(
                model=str(path),
                device=device,
                name=name,
                options=options,
                input_specs={INPUT_NAME: (shape, "float32")},
            ),
        ),
    )
    target = c_job.get_target_model()
    if target is None:
        raise CandidateFailed(f"AI Hub compile job {getattr(c_job, 'job_id', '?')} produced no model")
    log.info("compiled %s for %s (%s): job %s", path.name, profiler.device_name, options, c_job.job_id)

    outputs: list[np.ndarray] = []
    job_ids: list[str] = []
    for k, chunk in enumerate(chunks, start=1):
        what = f"inference chunk {k}/{len(chunks)}"
        t0 = time.perf_counter()
        i_job = profiler._retry(
            what,
            lambda chunk=chunk, k=k: profiler._finish(
                "inference",
                api.submit_inference_job(
                    model=target,
                    device=device,
                    inputs={INPUT_NAME: chunk},
                    name=f"{name}-{k}",
                    options=profiler._options(""),
                    profile=False,
                ),
            ),
        )
        job_id = str(getattr(i_job, "job_id", "?"))
        data = profiler._retry(f"{what} download", i_job.download_output_data)
        outputs.extend(_first_output(data, job_id=job_id, expected=len(chunk)))
        job_ids.append(job_id)
        log.info(
            "AI Hub %s: %d image(s) on %s, job %s, %.1fs",
            what,
            len(chunk),
            profiler.device_name,
            job_id,
            time.perf_counter() - t0,
        )

    info = {
        "compile_job": getattr(c_job, "job_id", None),
        "inference_jobs": job_ids,
        "device": profiler.device_name,
        "target_runtime": profiler.target_runtime,
        "compile_options": options,
        "n_images": len(arrays),
        "chunks": len(chunks),
    }
    return outputs, info

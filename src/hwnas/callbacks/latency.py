"""Lightning adapter around a ``Profiler``: profile the trained model once and log ``hw/*`` metrics.

``conf/callbacks/default.yaml`` wires it into ``src/train.py`` (``callbacks.latency``, a ``_partial_`` node:
the train task injects the profiler of ``hardware=`` and the architecture's key).
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl

from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.utils.errors import CandidateFailed

log = logging.getLogger(__name__)


class LatencyCallback(pl.Callback):
    """Profiles ``pl_module.model`` when fitting ends and logs the latency report.

    Logs (to every attached logger, via ``log_metrics``): ``hw/latency_ms`` (median),
    ``hw/latency_p10_ms``, ``hw/latency_p90_ms``, ``hw/latency_samples``; the non-numeric fields
    (backend, device, precision, source) go to ``log_hyperparams`` as ``hw/*``. The report is kept in
    ``self.report`` for the caller.

    ``setup()`` calls ``profiler.check()`` so a missing token or SDK fails before training, not after. A
    model the profiler cannot measure (its export fails, a table lacks its key) costs a warning and leaves
    ``self.report`` ``None``: the trained model is never lost to its latency.

    Args:
        profiler: Any ``Profiler`` (possibly a ``CachedProfiler``).
        arch_key: The architecture's key (for the cache and table profilers).
        calibration_batches: Override of ``profiler.calibration_batches`` (int8 calibration inputs
            taken from the datamodule's ``calibration_batches(n)``).
    """

    def __init__(
        self, profiler: Profiler, *, arch_key: str | None = None, calibration_batches: int | None = None
    ):
        super().__init__()
        self.profiler = profiler
        self.arch_key = arch_key
        self.calibration_batches = calibration_batches
        self.report: LatencyReport | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.profiler.check()

    def _input_shape(self, trainer: pl.Trainer) -> tuple[int, ...]:
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "input_shape"):
            raise RuntimeError("LatencyCallback needs a datamodule with input_shape()")
        return self.profiler.resolve_input_shape(tuple(dm.input_shape()))

    def _calibration(self, trainer: pl.Trainer) -> Any:
        n = (
            self.calibration_batches
            if self.calibration_batches is not None
            else self.profiler.calibration_batches
        )
        if not n:
            return None
        return trainer.datamodule.calibration_batches(n)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        model = getattr(pl_module, "model", pl_module)
        try:
            self.report = self.profiler.profile(
                model,
                self._input_shape(trainer),
                calibration=self._calibration(trainer),
                arch_key=self.arch_key,
            )
        except CandidateFailed as exc:
            log.warning("latency on %s not measured: %s", self.profiler.target, exc.reason)
            return
        metrics = self.report.as_metrics()
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        text = {k: v for k, v in metrics.items() if not isinstance(v, int | float)}
        for logger in trainer.loggers:
            logger.log_metrics(numeric, step=trainer.global_step)
            logger.log_hyperparams(text)
        log.info("latency %.3f ms (%s, %s)", self.report.median_ms, self.report.backend, self.report.source)

"""The evaluator contract: cheap metrics first, expensive ones only for candidates worth it.

The search loop calls ``cheap(spec)`` (validity, latency, params...), checks the constraints on those
metrics, and calls ``expensive(spec)`` (training, or a table look-up) only when they pass. Either may
raise ``CandidateFailed``; the loop records a FAIL trial with the reason and goes on. With
``hardware=predictor`` the loop may then ask ``confirm(spec)`` to measure a predicted latency that could
put the trained candidate on the front.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from hwnas.search_space.base import ArchSpec, SearchSpace


class Evaluator(ABC):
    """Produces the metrics that objectives and constraints refer to."""

    #: Metric names ``cheap`` produces (constraints on these skip the expensive stage).
    cheap_metrics: tuple[str, ...] = ()
    #: Metric names ``expensive`` produces.
    expensive_metrics: tuple[str, ...] = ()
    #: Whether candidates inherit weights from a shared supernet (``final.init=inherit`` needs one).
    shares_weights: bool = False
    #: Whether ``promote(spec, rung)`` can train a candidate on from its weights (``search.fidelity``).
    promotable: bool = False
    #: Metrics holding the profiled latency: a predicted one's optimistic end stands in for them in the
    #: near-front check, and ``confirm``'s measurement replaces them (``hwnas.search.near_front``).
    latency_metrics: tuple[str, ...] = ("hw/latency_ms",)

    def setup(self, *, cfg: DictConfig, space: SearchSpace, run_dir: Path) -> None:  # noqa: B027
        """Build what evaluation needs (data, profiler); check preconditions. Called once per process."""

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.cheap_metrics + self.expensive_metrics

    @abstractmethod
    def cheap(self, spec: ArchSpec) -> dict[str, Any]:
        """Metrics that cost (almost) nothing compared to training."""

    @abstractmethod
    def expensive(self, spec: ArchSpec) -> dict[str, Any]:
        """Metrics that cost real time (training)."""

    def export(self, spec: ArchSpec, out_dir: Path) -> dict[str, str]:
        """Write deployable artefacts of ``spec`` (ONNX, weights) to ``out_dir``; return their paths."""
        return {}

    def sizes(self) -> dict[str, Any]:
        """The input sizes behind the metrics, for ``summary.json``; ``{}`` when there are no images.

        Evaluators that train on images and profile latency say at which sizes (the two may differ:
        training at a small size, latency at the deployment resolution), e.g.
        ``{"train_image_size": [64, 64], "latency_input_shape": [1, 3, 256, 256]}``.
        """
        return {}

    @property
    def confirms_near_front(self) -> bool:
        """Whether ``confirm`` may measure (``hardware=predictor`` with ``predictor.measure_near_front``);
        when ``False`` the loop skips the near-front check altogether."""
        return False

    def confirm(self, spec: ArchSpec) -> dict[str, Any] | None:
        """Measure the latency of a trained candidate whose latency was predicted, because it may land on
        the front (``hwnas.search.near_front``). Returns the latency metrics to replace the predicted ones,
        or ``None`` when nothing was measured (no predictor, switched off, or the budget is spent)."""
        return None

    def prune_weights(self, keep: set[str]) -> None:  # noqa: B027 - optional hook
        """Drop stored artefacts of candidates whose file stem is not in ``keep`` (the front)."""

    def describe(self) -> str:
        return type(self).__name__

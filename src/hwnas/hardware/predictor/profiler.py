"""``hardware=predictor``: measure a few candidates on the real target, predict the rest, say which is which.

A real target is slow and scarce (an AI Hub job takes minutes, a phone over adb is one device). This
profiler wraps the profiler of another hardware option (``predictor.measure``), measures the first
``seed_size`` candidates, fits a ``LatencyModel`` to cheap graph features, and from then on predicts
each candidate with an interval. A candidate is still measured, while ``max_measurements`` allows,
when its interval is wider than ``max_uncertainty`` or its prediction falls outside the measured range
(the model would be extrapolating), or, once trained, when it may land on the front
(``confirm``, called by the search loop; ``predictor.measure_near_front``).
Every report says ``source: measured`` or ``source: predicted``,
with the interval and the number of measurements behind it in ``extra["predictor"]``.

Measurements are kept on disk (``predictor.store_dir``, one file per architecture), so workers share
them and the next search on the same target starts with them; the measuring profiler keeps its own
latency cache as with any other ``hardware=`` option.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.hardware._common import versions
from hwnas.hardware.base import LatencyReport, Profiler
from hwnas.hardware.build import build_profiler
from hwnas.hardware.cache import CachedProfiler, LatencyCache
from hwnas.hardware.predictor.features import FeatureChoice, FeatureExtractor
from hwnas.hardware.predictor.model import LatencyModel, Prediction
from hwnas.hardware.predictor.settings import (
    MODEL_VERSION,
    SETTINGS,
    features_factory,
    measure_node,
    positive_int,
)
from hwnas.hardware.predictor.store import MeasurementStore, store_key
from hwnas.utils.errors import ConfigError

log = logging.getLogger(__name__)

#: Purposes of the measurements that count against ``max_measurements`` (not ``front``, ``cache``, reused).
BUDGETED = frozenset({"seed", "uncertain", "outside", "near_front"})
#: Predictions kept (features, interval) for ``confirm`` once the candidate is trained.
_KEEP_PREDICTED = 32


class _Track:
    """The measured set, model and counters of one (feature extractor, input shape)."""

    def __init__(self, extractor: FeatureExtractor, store: MeasurementStore) -> None:
        self.extractor = extractor
        self.store = store
        self.model: LatencyModel | None = None
        self.fitted_on: frozenset[str] = frozenset()

    def usable(self) -> list[dict[str, Any]]:
        """Records the model can fit: this extractor's features, and not flagged noisy by the profiler."""
        names = set(self.extractor.names)
        return [r for r in self.store.records() if names <= set(r.get("features", {})) and not r.get("noisy")]


class PredictorProfiler(Profiler):
    """Latency measured on a few candidates and predicted for the others (see the module docstring).

    Args:
        settings: The ``predictor`` node (keys in ``SETTINGS``; missing ones take the defaults of
            ``conf/predictor/default.yaml``). ``measure`` names a ``conf/hardware`` option, or is a
            hardware node (``_target_`` + keys) or a ``Profiler``.
        paths: The ``paths`` node, to resolve the measured option's ``${paths.*}``.
        run_dir: The run's folder: measurements made in it count against ``max_measurements`` (all the
            run's workers share the count); ``None`` = this process.
        input_size: Ignored (the measured option's applies); kept for config symmetry.
        batch_size: Ignored likewise.
        cache_dir: The latency cache of the measuring profiler (``attach_cache`` sets it for searches).
    """

    def __init__(
        self,
        *,
        settings: Mapping[str, Any] | None = None,
        paths: Mapping[str, Any] | None = None,
        run_dir: str | Path | None = None,
        input_size: Any = None,
        batch_size: int = 1,
        cache_dir: str | Path | None = None,
    ) -> None:
        s = dict(settings or {})
        unknown = sorted(set(s) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"unknown settings {unknown}", key="predictor", choices=SETTINGS)
        self.measure_name = s.get("measure", "cpu")
        make_features = features_factory(s.get("features"))  # refused here, built once workdir is known
        self.max_measurements = positive_int(
            s.get("max_measurements", 12), "predictor.max_measurements", low=3
        )
        self.seed_size = positive_int(s.get("seed_size", 8), "predictor.seed_size", low=3)
        self.max_uncertainty = float(s.get("max_uncertainty", 0.1))
        self.level = float(s.get("level", 0.9))
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.level}", key="predictor.level")
        self.verify_front = bool(s.get("verify_front", True))
        self.measure_near_front = bool(s.get("measure_near_front", True))
        reserve = positive_int(s.get("near_front_reserve", 3), "predictor.near_front_reserve", low=0)
        # never taken from the seed set: at most what the budget leaves after it
        reserve = min(reserve, max(0, self.max_measurements - self.seed_size))
        self.near_front_reserve = reserve if self.measure_near_front else 0
        self.seed = int(s.get("seed", 0))
        self.paths = dict(paths or {})
        store_dir = (
            s.get("store_dir") or Path(str(self.paths.get("cache_dir", "outputs/cache"))) / "predictor"
        )
        self.store_dir = Path(str(store_dir))
        self.run_id = str(run_dir) if run_dir else f"process-{uuid.uuid4().hex[:12]}"
        if isinstance(self.measure_name, Profiler):  # a node with _target_, already built by Hydra
            inner = self.measure_name
        else:
            node = measure_node(self.measure_name, settings=s.get("measure_settings"), paths=self.paths)
            inner = build_profiler(node)
        if isinstance(inner, PredictorProfiler):
            raise ConfigError("a predictor cannot measure with another predictor", key="predictor.measure")
        #: The profiler that really measures (the final stage and the front's check use it directly).
        self.measurer: Profiler = inner
        self._measuring: Profiler = inner
        if cache_dir is not None:
            self.attach_cache(LatencyCache(cache_dir))
        self.target = inner.target
        self.backend = f"predictor/{inner.backend}"
        self.precision = inner.precision
        self.input_size = inner.input_size
        self.batch_size = inner.batch_size
        self.calibration_batches = inner.calibration_batches
        self.workdir = (
            getattr(inner, "workdir", None)
            or Path(str(self.paths.get("cache_dir", "outputs/cache"))) / "onnx"
        )
        #: Picks each candidate's extractor (``predictor.features``: auto, onnx or nb201 in conf).
        self.feature_choice: FeatureChoice = make_features(workdir=self.workdir)
        #: The choice's name (``auto``, ``onnx``, ``nb201``): a label for reports and checks.
        self.features = str(self.feature_choice.name)
        self._tracks: dict[tuple[str, tuple[int, ...]], _Track] = {}
        self.counts = {"measured": 0, "reused": 0, "predicted": 0, "near_front": 0, "front": 0}
        self._predicted: dict[str, tuple[dict[str, float], Prediction]] = {}  # the latest, by arch key

    # -- the Profiler contract -----------------------------------------------------------------------

    def attach_cache(self, cache: LatencyCache) -> PredictorProfiler:
        """Cache the *measurements* (as ``hardware=<measure>`` would); predictions are never cached."""
        self._measuring = CachedProfiler(self.measurer, cache)
        return self

    def check(self) -> None:
        self.measurer.check()

    def cache_identity(self) -> dict[str, Any]:
        return {**super().cache_identity(), "measure": self.measurer.cache_identity()}

    def describe(self) -> str:
        return (
            f"{self.target} predicted from at most {self.max_measurements} new measurements by "
            f"{self.measurer.describe()} (seed {self.seed_size}, interval {self.level:.0%})"
        )

    def profile(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        onnx_path: str | Path | None = None,
        calibration: Any | None = None,
        arch_key: str | None = None,
    ) -> LatencyReport:
        shape = tuple(int(d) for d in input_shape)
        track = self._track(model, shape)
        key = arch_key or f"anonymous-{uuid.uuid4().hex[:12]}"
        stored = track.store.get(key) if arch_key else None
        if stored is not None:
            self.counts["reused"] += 1
            return self._measured_report(stored, track, reused=True)
        features = track.extractor.extract(
            model=model, input_shape=shape, onnx_path=onnx_path, arch_key=arch_key
        )
        if arch_key and isinstance(self._measuring, CachedProfiler):
            hit = self._measuring.cache.get(self._measuring.key_for(arch_key, shape))
            if hit is not None:  # measured before (by any search on this target): free
                self.counts["reused"] += 1
                return self._record(track, key, features, hit, purpose="cache", shape=shape)
        records = track.usable()
        budget_left = self.max_measurements - self._spent(track.store.records())
        if len(records) < self.seed_size and budget_left > 0:
            return self._measure(track, key, features, model, shape, onnx_path, calibration, "seed")
        if len(records) < 3:
            raise ConfigError(
                f"only {len(records)} measurements and no budget left to make more",
                key="predictor.max_measurements",
                fix="allow at least 3 measurements (predictor.max_measurements >= 3)",
            )
        pred = self._predict(track, records, features)
        reason = self._why_measure(pred, records)
        if reason and budget_left > self.near_front_reserve:  # the reserve is for candidates near the front
            return self._measure(
                track, key, features, model, shape, onnx_path, calibration, reason, prediction=pred
            )
        self.counts["predicted"] += 1
        if arch_key:  # kept for a measurement near the front once trained, without re-extracting features
            self._predicted.pop(arch_key, None)
            self._predicted[arch_key] = (features, pred)
            while len(self._predicted) > _KEEP_PREDICTED:
                self._predicted.pop(next(iter(self._predicted)))
        return self._predicted_report(pred, track, records, features)

    # -- measuring -----------------------------------------------------------------------------------

    def _track(self, model: Any, shape: tuple[int, ...]) -> _Track:
        extractor: FeatureExtractor = self.feature_choice.select(model)
        if (extractor.name, shape) not in self._tracks:
            identity = {
                "measure": self.measurer.cache_identity(),
                "input_shape": list(shape),
                "features": extractor.name,
                "toolchain": versions("onnxruntime", "onnx", "torch", "qai-hub"),
            }
            root = self.store_dir / f"{self.measurer.target}-{store_key(identity)}"
            self._tracks[(extractor.name, shape)] = _Track(extractor, MeasurementStore(root, identity))
        return self._tracks[(extractor.name, shape)]

    def _spent(self, records: list[dict[str, Any]]) -> int:
        """Measurements this run made that count against the budget (not reused ones or the front's)."""
        return sum(r.get("run") == self.run_id and r.get("purpose") in BUDGETED for r in records)

    def _measure(
        self,
        track: _Track,
        key: str,
        features: dict[str, float],
        model: Any,
        shape: tuple[int, ...],
        onnx_path: Any,
        calibration: Any,
        purpose: str,
        *,
        prediction: Prediction | None = None,
    ) -> LatencyReport:
        if onnx_path is None and track.extractor.needs_model and model is not None:
            from hwnas.hardware._common import onnx_file

            with onnx_file(model, shape, onnx_path=None, arch_key=key, workdir=self.workdir) as path:
                report = self._measuring.profile(
                    model, shape, onnx_path=path, calibration=calibration, arch_key=key
                )
        else:
            report = self._measuring.profile(
                model, shape, onnx_path=onnx_path, calibration=calibration, arch_key=key
            )
        self.counts[purpose if purpose in ("front", "near_front") else "measured"] += 1
        return self._record(track, key, features, report, purpose=purpose, prediction=prediction, shape=shape)

    def _record(
        self,
        track: _Track,
        key: str,
        features: dict[str, float],
        report: LatencyReport,
        *,
        purpose: str,
        shape: tuple[int, ...],
        prediction: Prediction | None = None,
    ) -> LatencyReport:
        record: dict[str, Any] = {
            "arch_key": key,
            "latency_ms": float(report.median_ms),
            "input_shape": "x".join(str(d) for d in shape),
            "features": features,
            "purpose": purpose,
            "run": self.run_id,
            "time": time.time(),
            "report": report.to_dict(),
            # a timing the profiler could not get steady (extra.noisy) is reported, never fitted on
            "noisy": bool(report.extra.get("noisy", False)),
        }
        if prediction is not None:
            record["predicted"] = _interval(prediction)
        if not key.startswith("anonymous-"):
            track.store.put(record)
        return self._measured_report(record, track, reused=purpose == "cache")

    def _measured_report(self, record: dict[str, Any], track: _Track, *, reused: bool) -> LatencyReport:
        report = LatencyReport.from_dict(record["report"])
        info = {
            "measured": True,
            "purpose": "reused" if reused else record["purpose"],
            "n_measurements": len(track.usable()),
            "measure": self.measurer.target,
            "features": track.extractor.name,
            **({"predicted": record["predicted"]} if "predicted" in record else {}),
        }
        return replace(report, backend=self.backend, extra={**report.extra, "predictor": info})

    # -- predicting ----------------------------------------------------------------------------------

    def _predict(
        self, track: _Track, records: list[dict[str, Any]], features: dict[str, float]
    ) -> Prediction:
        keys = frozenset(r["arch_key"] for r in records)
        if track.model is None or keys != track.fitted_on:
            X = np.array([track.extractor.vector(r["features"]) for r in records])
            y = np.array([r["latency_ms"] for r in records])
            track.model = LatencyModel(
                level=self.level, prior=track.extractor.prior_index(), seed=self.seed
            ).fit(X, y)
            track.fitted_on = keys
            log.debug("predictor refitted on %d measurements", len(records))
        return track.model.predict(track.extractor.vector(features)[None, :])

    def _why_measure(self, pred: Prediction, records: list[dict[str, Any]]) -> str | None:
        """``uncertain`` / ``outside`` when a measurement is worth its cost, else ``None``."""
        if float(pred.rel_halfwidth[0]) > self.max_uncertainty:
            return "uncertain"
        measured = [r["latency_ms"] for r in records]
        if not min(measured) <= float(pred.median_ms[0]) <= max(measured):
            return "outside"
        return None

    def _predicted_report(
        self, pred: Prediction, track: _Track, records: list[dict[str, Any]], features: dict[str, float]
    ) -> LatencyReport:
        device = records[-1]["report"].get("device", self.measurer.target)
        return LatencyReport(
            median_ms=float(pred.median_ms[0]),
            p10_ms=float(pred.quantile(0.1)[0]),
            p90_ms=float(pred.quantile(0.9)[0]),
            n_samples=0,
            backend=self.backend,
            device=f"{device} (predicted)",
            precision=self.precision,
            source="predicted",
            toolchain={"predictor": MODEL_VERSION, **versions("scikit-learn")},
            extra={
                "predictor": {
                    "measured": False,
                    "purpose": "predicted",
                    **_interval(pred),
                    "measure": self.measurer.target,
                    "features": track.extractor.name,
                },
                "features": features,
            },
        )

    # -- the front's check ---------------------------------------------------------------------------

    def measure_now(
        self,
        model: Any,
        input_shape: tuple[int, ...],
        *,
        arch_key: str,
        calibration: Any | None = None,
        purpose: str = "front",
    ) -> LatencyReport:
        """Measure ``arch_key`` now, whatever the budget (the front's check at the end of a search);
        the measurement joins the measured set (``purpose``), so the next prediction refits."""
        shape = tuple(int(d) for d in input_shape)
        track = self._track(model, shape)
        stored = track.store.get(arch_key)
        if stored is not None:
            return self._measured_report(stored, track, reused=True)
        kept = self._predicted.pop(arch_key, None)  # the features and interval it was predicted with
        features = (
            kept[0] if kept else track.extractor.extract(model=model, input_shape=shape, arch_key=arch_key)
        )
        prediction = kept[1] if kept else None
        return self._measure(
            track, arch_key, features, model, shape, None, calibration, purpose, prediction=prediction
        )

    def confirm(
        self, model: Any, input_shape: tuple[int, ...], *, arch_key: str, calibration: Any | None = None
    ) -> LatencyReport | None:
        """Measure a trained candidate whose predicted latency may put it on the front (the search loop
        decides): ``purpose: near_front``, counted against ``max_measurements``. ``None`` (nothing
        measured) when the budget is spent or ``predictor.measure_near_front`` is off."""
        if not self.measure_near_front:
            return None
        track = self._track(model, tuple(int(d) for d in input_shape))
        if self._spent(track.store.records()) >= self.max_measurements:
            return None
        return self.measure_now(
            model, input_shape, arch_key=arch_key, calibration=calibration, purpose="near_front"
        )

    def measurements(self) -> list[dict[str, Any]]:
        """Every measurement the model(s) of this profiler were fitted on, this run's and earlier ones."""
        return [r for t in self._tracks.values() for r in t.usable()]

    def summary(self) -> dict[str, Any]:
        """Counts for ``summary.json``: measured this run (against the budget), reused, predicted."""
        records = self.measurements()
        everything = [r for t in self._tracks.values() for r in t.store.records()]
        return {
            "measure": self.measurer.target,
            "measure_backend": self.measurer.backend,
            "max_measurements": self.max_measurements,
            "seed_size": self.seed_size,
            "level": self.level,
            "measured_this_run": self._spent(everything),
            "measured_near_front": sum(
                r.get("run") == self.run_id and r.get("purpose") == "near_front" for r in everything
            ),
            "noisy_not_fitted": sum(bool(r.get("noisy")) for r in everything),
            "measurements_used": len(records),
            "calls": dict(self.counts),
        }


def _interval(pred: Prediction) -> dict[str, Any]:
    return {
        "predicted_ms": float(pred.median_ms[0]),
        "interval_ms": [float(pred.lo_ms[0]), float(pred.hi_ms[0])],
        "level": pred.level,
        "n_measurements": pred.n_measurements,
    }

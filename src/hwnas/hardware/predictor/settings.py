"""``hardware=predictor``'s settings: which hardware option measures, and the keys a user may set.

The measuring profiler is built from its own ``conf/hardware/<measure>.yaml`` (or a node given whole), so
``predictor.measure=snapdragon888`` measures exactly as ``hardware=snapdragon888`` would, with
``predictor.measure_settings`` on top. ``predictor.features`` is a ``_target_`` node
(``conf/predictor/features/``), checked here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf

from hwnas.hardware.predictor.features import AutoFeatures, FeatureChoice, feature_classes
from hwnas.utils.config import CONF_DIR
from hwnas.utils.errors import ConfigError

HARDWARE_CONF = CONF_DIR / "hardware"
FEATURES_CONF = CONF_DIR / "predictor" / "features"
#: Settings of ``conf/predictor/default.yaml`` (the keys a user may set under ``predictor.``).
SETTINGS = (
    "measure",
    "measure_settings",
    "features",
    "max_measurements",
    "seed_size",
    "max_uncertainty",
    "level",
    "verify_front",
    "measure_near_front",
    "near_front_reserve",
    "store_dir",
    "seed",
)
MODEL_VERSION = "hwnas-latency-model-v1"


def measure_options() -> list[str]:
    """The hardware options a predictor can measure with (every ``conf/hardware`` file but its own)."""
    return sorted(p.stem for p in HARDWARE_CONF.glob("*.yaml") if p.stem != "predictor")


def measure_node(
    measure: Any, *, settings: Mapping[str, Any] | None = None, paths: Mapping[str, Any] | None = None
) -> DictConfig:
    """The config node of the measuring profiler: ``conf/hardware/<measure>.yaml`` (or a node given
    whole), with ``settings`` merged on top and ``${paths.*}`` resolved against ``paths``."""
    if isinstance(measure, Mapping | DictConfig):
        node = OmegaConf.create(dict(measure) if not isinstance(measure, DictConfig) else measure)
    else:
        options = measure_options()
        if str(measure) not in options:
            raise ConfigError(
                f"unknown hardware option {measure!r} to measure with",
                key="predictor.measure",
                choices=options,
                fix="name the conf/hardware option whose target the predictor learns, e.g. predictor.measure=cpu",
            )
        node = OmegaConf.load(HARDWARE_CONF / f"{measure}.yaml")
    extra = dict(settings or {})
    unknown = sorted(set(extra) - set(node.keys()))
    if unknown:
        raise ConfigError(
            f"{unknown} are not settings of hardware option {measure if isinstance(measure, str) else 'given'}",
            key="predictor.measure_settings",
            choices=sorted(k for k in node if k != "_target_"),
        )
    root = OmegaConf.create({"paths": dict(paths or {}), "hardware": node})
    if extra:
        root.hardware = OmegaConf.merge(root.hardware, extra)
    return root.hardware


def feature_options() -> list[str]:
    """The ``conf/predictor/features`` options (``predictor/features=<option>``)."""
    return sorted(p.stem for p in FEATURES_CONF.glob("*.yaml"))


def features_factory(value: Any) -> Callable[..., FeatureChoice]:
    """``predictor.features`` as a callable taking ``workdir=`` (the measuring profiler's, known later).

    Accepts what Hydra makes of a ``_partial_`` node (a ``functools.partial``), a class, a node still to
    instantiate, a built choice, or the name of a ``conf/predictor/features`` option (as
    ``predictor.measure`` names a ``conf/hardware`` one: ``predictor.features=onnx`` and run dirs saved
    before the option files keep working); ``None`` is the default, :class:`AutoFeatures`.

    Raises:
        ConfigError: anything else, naming the key, the options, the classes and the fix.
    """
    from hwnas.utils.config import build

    if value is None:
        return AutoFeatures
    if isinstance(value, str):
        if value not in feature_options():
            _refuse(f"unknown option {value!r}")
        value = OmegaConf.load(FEATURES_CONF / f"{value}.yaml")
    if isinstance(value, Mapping | DictConfig) and "_target_" in value:
        value = build(value, "predictor.features")
    if isinstance(value, type | functools.partial):
        return functools.partial(_checked, value)
    if isinstance(value, FeatureChoice):
        return lambda workdir=None: value
    what = repr(value) if isinstance(value, int | float | bool) else f"a {type(value).__name__}"
    _refuse(f"{what} is not a feature extractor node")


def _checked(factory: Callable[..., Any], workdir: str | Path | None = None) -> FeatureChoice:
    """``factory(workdir=...)``, refused unless it built a feature choice (a ``select(model)`` method)."""
    try:
        choice = factory(workdir=workdir)
    except TypeError as exc:  # a class that takes no workdir: not a feature extractor
        choice = exc
    if not isinstance(choice, FeatureChoice):
        name = getattr(factory, "func", factory)
        _refuse(f"{getattr(name, '__qualname__', name)} built no feature extractor ({choice})")
    return choice


def _refuse(message: str) -> NoReturn:
    raise ConfigError(
        message,
        key="predictor.features",
        choices=feature_options(),
        fix="predictor/features=<option> (conf/predictor/features/), or a node whose _target_ is one of "
        + ", ".join(feature_classes())
        + ", with _partial_: true",
    )


def positive_int(value: Any, key: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < low:
        raise ConfigError(f"must be an integer >= {low}, got {value!r}", key=key)
    return int(value)

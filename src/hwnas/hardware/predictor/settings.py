"""``hardware=predictor``'s settings: which hardware option measures, and the keys a user may set.

The measuring profiler is built from its own ``conf/hardware/<measure>.yaml`` (or a node given whole), so
``predictor.measure=snapdragon888`` measures exactly as ``hardware=snapdragon888`` would, with
``predictor.measure_settings`` on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hwnas.utils.errors import ConfigError

HARDWARE_CONF = Path(__file__).resolve().parents[4] / "conf" / "hardware"
FEATURES = ("auto", "onnx", "nb201")
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


def positive_int(value: Any, key: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or value < low:
        raise ConfigError(f"must be an integer >= {low}, got {value!r}", key=key)
    return int(value)

"""Turning config nodes into objects, with errors that name the key and the fix."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from hwnas.utils.errors import ConfigError, HwnasError

#: The package's configs (``hwnas/conf``: in the checkout a link to ``conf/``, in a wheel a copy of it); code that
#: reads an option file itself (the predictor's ``measure=``, the calibration's template) reads it here.
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

if TYPE_CHECKING:  # types only: utils is the ground floor and imports no layer above it
    from hwnas.search_space.base import ArchSpec, SearchSpace


def run_dir_of(cfg: DictConfig) -> Path:
    """The Hydra run directory (or ``cfg.run_dir`` when composed outside ``@hydra.main``, e.g. tests)."""
    try:
        explicit = cfg.get("run_dir")
    except Exception:  # noqa: BLE001 - ${hydra:...} outside a Hydra run
        explicit = None
    if explicit:
        path = Path(str(explicit))
    elif HydraConfig.initialized():
        path = Path(HydraConfig.get().runtime.output_dir)
    else:
        raise ConfigError(
            "no run directory", key="run_dir", fix="pass run_dir=<dir> when calling run(cfg) directly"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def build(node: Any, key: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with user errors surfaced as one clear ``HwnasError``."""
    if node is None:
        raise ConfigError("is not set", key=key, fix=f"choose an option for {key} (see conf/{key}/)")
    try:
        return instantiate(node, **kwargs)
    except MissingMandatoryValue as exc:
        missing = str(exc).split("full_key:")[-1].split()[0] if "full_key:" in str(exc) else key
        raise ConfigError(
            f"a required value is missing ({missing})", key=missing, fix=f"set {missing}=<value>"
        ) from exc
    except InstantiationException as exc:
        cause = exc.__cause__
        while cause is not None:
            if isinstance(cause, HwnasError):
                raise cause from None
            cause = cause.__cause__ if cause.__cause__ is not cause else None
        unknown = _unknown_setting(node, exc)
        if unknown is not None:
            raise unknown from None
        raise ConfigError(f"cannot instantiate: {exc}", key=key) from exc


def import_target(target: Any) -> Any:
    """What a ``_target_`` string names (a class or a function), or ``None`` when it does not import:
    instantiation reports that, with Hydra's own message."""
    module, _, name = str(target or "").rpartition(".")
    try:
        return getattr(importlib.import_module(module), name) if module else None
    except Exception:  # noqa: BLE001 - any import failure: not ours to report here
        return None


def _unknown_setting(node: Any, exc: InstantiationException) -> ConfigError | None:
    """A key the class does not take (``got an unexpected keyword argument 'x'``) as one error naming the
    key and the settings the class does take; ``None`` for any other failure."""
    match = re.search(r"got an unexpected keyword argument '(\w+)'", str(exc))
    target = OmegaConf.select(node, "_target_", default=None) if OmegaConf.is_config(node) else None
    if match is None or not target:
        return None
    name = str(target).rpartition(".")[2]
    try:
        params = inspect.signature(import_target(target)).parameters
    except (TypeError, ValueError):  # nothing imported (None), or no signature to read
        return None
    setting = f"{node._get_full_key(None) or 'node'}.{match.group(1)}"
    return ConfigError(
        f"{name} has no setting {match.group(1)!r}",
        key=setting,
        choices=[p for p in params if p not in ("self", "args", "kwargs")],
        fix=f"remove {setting}, or pick an option that takes it (debug=fast, for one, sets training settings "
        "that only a training evaluator has)",
    )


def build_space(cfg: DictConfig) -> SearchSpace:
    return build(cfg.search_space, "search_space")


def build_datamodule(cfg: DictConfig) -> Any:
    """The datamodule with the tricks' augmentations injected (applied to the training split only)."""
    augment_cfg = OmegaConf.select(cfg, "tricks.augment") or []
    augment = [build(a, "tricks.augment") for a in augment_cfg]
    return build(cfg.dataset, "dataset", augment=augment)


def resolve_arch(cfg: DictConfig, space: SearchSpace, *, input_size: tuple[int, int] | None) -> ArchSpec:
    """``arch=<path to JSON>`` if given, else the space's hand-designed baseline; validated for ``input_size``."""
    arch = cfg.get("arch")
    spec = space.load(arch) if arch else space.baseline()
    space.validate(spec, input_size=input_size)
    return spec


def config_recipe(cfg: DictConfig, keys: Sequence[str]) -> dict[str, Any]:
    """Resolved plain copies of the config nodes ``keys`` that decide a training's result (a cache key);
    ``dataset.num_workers`` is left out: it changes speed, not numbers."""
    pick = {k: OmegaConf.select(cfg, k) for k in keys}
    out = {
        k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in pick.items()
    }
    if "dataset" in out:
        out["dataset"] = {k: v for k, v in (out.get("dataset") or {}).items() if k != "num_workers"}
    return out

"""The settings of a gradient search, checked: α-update options, the latency sweep, plain copies of nodes."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from hwnas.utils.errors import ConfigError

#: ``search.latency_unit``: 0 = the table's fastest architecture, 1 = its slowest; or milliseconds.
UNITS = ("relative", "ms")


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return [None]
    if OmegaConf.is_list(value) or isinstance(value, list | tuple):
        items = list(value)
        if not items:
            raise ConfigError("must list at least one value", key=key, fix=f"e.g. {key}=[0.2,0.5,0.8]")
        return items
    return [value]


def plain(node: Any) -> dict[str, Any]:
    return dict(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node or {})


def xnas_settings(node: Any) -> dict[str, Any]:
    xnas = plain(node)
    unknown = sorted(set(xnas) - {"grad_bound", "wipeout"})
    if unknown or not float(xnas.get("grad_bound", 1.0)) > 0:
        raise ConfigError(
            f"unknown keys {unknown} or grad_bound <= 0 in {xnas}",
            key="search.strategy.xnas",
            choices=["grad_bound", "wipeout"],
            fix="e.g. search.strategy.xnas.grad_bound=0.5 search.strategy.xnas.wipeout=true",
        )
    return {"grad_bound": float(xnas.get("grad_bound", 1.0)), "wipeout": bool(xnas.get("wipeout", True))}


def sweep_points(loss: str, unit: str, latency_targets: Any, latency_lambda: Any) -> list[tuple[Any, Any]]:
    """``(target, lambda)`` per architecture to find: targets × lambdas, or one point without a latency term."""
    targets = _as_list(latency_targets, "search.latency_targets")
    lambdas = _as_list(latency_lambda, "search.latency_lambda")
    for key, values in (("search.latency_targets", targets), ("search.latency_lambda", lambdas)):
        for v in values:
            if v is not None and (not isinstance(v, int | float) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"must be non-negative numbers, got {v!r}", key=key)
    if loss == "none":
        return [(None, None)]
    if None in targets:
        raise ConfigError(
            f"search.latency_loss={loss} needs a target",
            key="search.latency_targets",
            fix="e.g. search.latency_targets=[0.2,0.5,0.8] (relative) or search.latency_loss=none",
        )
    if unit == "ms" and any(float(t) <= 0 for t in targets):
        raise ConfigError("millisecond targets must be > 0", key="search.latency_targets")
    return [(t, lam) for t in targets for lam in lambdas]

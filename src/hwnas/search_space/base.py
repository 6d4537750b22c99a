"""The search-space contract: a fixed, flat set of categorical parameters and frozen architecture values.

Every space exposes the SAME parameter names for every architecture, so Optuna's NSGA-II can cross over
and mutate all of them (conditional names silently degrade it to random sampling). Unused parameters
(e.g. the kernel of a layer that a smaller depth switches off) are still present and simply ignored by
``build``.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from hwnas.utils.errors import InvalidArchError


def file_stem(key: str) -> str:
    """A filesystem-safe name for an architecture key (NB201 keys contain ``|``, ``~`` and ``+``).

    Keys that are already safe are returned unchanged; others are slugged and suffixed with a short
    hash so two keys never share a file.
    """
    if re.fullmatch(r"[A-Za-z0-9._-]+", key):
        return key
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", key).strip("_")[:80]
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ArchSpec:
    """One architecture as a hashable value.

    The same spec builds the torch model, names the ONNX file, keys the latency cache and the results
    row. ``key`` is stable across processes and machines (derived from the parameters only).

    Attributes:
        space: Name of the search space the parameters belong to (``"hourglass"``, ``"nb201"``...).
        params: Sorted ``(name, value)`` pairs; values are JSON scalars.
        key: Stable identifier; by default ``<space>-<12 hex digits of sha256>``.
    """

    space: str
    params: tuple[tuple[str, Any], ...]
    key: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(sorted((str(k), v) for k, v in self.params)))
        if not self.key:
            object.__setattr__(self, "key", self.default_key(self.space, dict(self.params)))

    @staticmethod
    def default_key(space: str, params: Mapping[str, Any]) -> str:
        digest = hashlib.sha256(_canonical(params).encode()).hexdigest()[:12]
        return f"{space}-{digest}"

    @property
    def stem(self) -> str:
        """Filesystem-safe name for files of this architecture (ONNX, weights, JSON)."""
        return file_stem(self.key)

    @property
    def values(self) -> dict[str, Any]:
        """The parameters as a plain dict."""
        return dict(self.params)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "key": self.key, "params": self.values}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        if not isinstance(data, Mapping) or "space" not in data or "params" not in data:
            raise InvalidArchError(
                "an architecture must be a JSON object with 'space' and 'params'",
                key="arch",
                fix='write it as {"space": "hourglass", "params": {...}} (e.g. a file from <run>/pareto/)',
            )
        params = data["params"]
        if not isinstance(params, Mapping):
            raise InvalidArchError("'params' must be a JSON object of name -> value", key="arch")
        return cls(space=str(data["space"]), params=tuple(params.items()), key=str(data.get("key", "")))

    @classmethod
    def from_json(cls, text: str) -> ArchSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArchError(
                f"architecture JSON is corrupt: {exc}",
                key="arch",
                fix="pass a JSON file written by hwnas (pareto/*.json, arch.json) or fix the syntax",
            ) from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        path = Path(path)
        if not path.is_file():
            raise InvalidArchError(
                f"architecture file not found: {path}",
                key="arch",
                fix="pass arch=<path to an existing JSON file>, or leave arch unset to use the baseline",
            )
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidArchError(f"cannot read architecture file {path}: {exc}", key="arch") from exc
        return cls.from_json(text)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path


class SearchSpace(ABC):
    """A search space of categorical parameters with a fixed, flat set of names.

    Subclasses define ``name`` and ``choices()`` and implement ``build``; they may override
    ``check`` (extra validity rules) and ``key_of`` (e.g. NB201 uses its arch string).
    """

    name: str = "base"

    @abstractmethod
    def choices(self) -> dict[str, list[Any]]:
        """Every parameter name mapped to its ordered list of allowed values (same names always)."""

    @abstractmethod
    def build(self, spec: ArchSpec, *, num_classes: int, in_channels: int = 3) -> Any:
        """Build a plain ``torch.nn.Module`` for ``spec``."""

    # ----- helpers shared by every space -------------------------------------------------------
    def param_names(self) -> list[str]:
        return list(self.choices())

    def key_of(self, params: Mapping[str, Any]) -> str:
        return ArchSpec.default_key(self.name, params)

    def make(self, params: Mapping[str, Any]) -> ArchSpec:
        """Validate ``params`` and return the frozen spec (names first: ``key_of`` may read every one)."""
        self._check_names(params)
        spec = ArchSpec(space=self.name, params=tuple(params.items()), key=self.key_of(params))
        self.validate(spec)
        return spec

    def _check_names(self, values: Mapping[str, Any]) -> None:
        choices = self.choices()
        missing = [n for n in choices if n not in values]
        unknown = [n for n in values if n not in choices]
        if missing or unknown:
            raise InvalidArchError(
                f"parameters do not match space '{self.name}': missing {missing}, unknown {unknown}",
                key="arch.params",
                choices=list(choices),
            )

    def validate(self, spec: ArchSpec, *, input_size: tuple[int, int] | None = None) -> None:
        """Raise ``InvalidArchError`` explaining what is wrong, or return None."""
        if spec.space != self.name:
            raise InvalidArchError(
                f"architecture belongs to space '{spec.space}', not '{self.name}'",
                key="search_space",
                fix=f"use search_space={spec.space} or an architecture of the '{self.name}' space",
            )
        choices = self.choices()
        values = spec.values
        self._check_names(values)
        for name, allowed in choices.items():
            if values[name] not in allowed:
                raise InvalidArchError(
                    f"parameter '{name}'={values[name]!r} is out of range",
                    key=f"arch.params.{name}",
                    choices=allowed,
                )
        self.check(spec, input_size=input_size)

    def check(self, spec: ArchSpec, *, input_size: tuple[int, int] | None = None) -> None:  # noqa: B027
        """Extra, space-specific validity rules (e.g. input divisibility)."""

    def sample(self, rng: np.random.Generator) -> ArchSpec:
        """Draw one architecture uniformly at random."""
        params = {n: c[int(rng.integers(len(c)))] for n, c in self.choices().items()}
        return self.make(params)

    def suggest(self, trial: Any) -> ArchSpec:
        """Ask an Optuna trial for every parameter (always the full flat set)."""
        params = {n: trial.suggest_categorical(n, c) for n, c in self.choices().items()}
        return self.make(params)

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions for every parameter (for enqueueing and custom samplers)."""
        import optuna

        return {n: optuna.distributions.CategoricalDistribution(c) for n, c in self.choices().items()}

    def arch_graph(self, spec: ArchSpec) -> nx.DiGraph:
        """``spec`` as a DAG for pictures (``reporting.arch_graph.draw_arch``).

        Every node and edge carries a ``label`` (an edge's: its op name, ``""`` for plain data flow).
        Optional drawing hints: node ``kind`` (``"input"``, ``"output"``, ... picks the box colour),
        ``layer`` (the column, by default the topological generation) and ``group`` (one band per
        group), and the graph's ``align="horizontal"`` (layers as rows). This fallback is a chain of
        ``name=value`` parameter nodes; spaces override it with their real structure.
        """
        graph = nx.DiGraph(name=spec.key)
        names = list(spec.values)
        for name in names:
            graph.add_node(name, label=f"{name}={spec[name]}", kind="param")
        graph.add_edges_from(zip(names, names[1:], strict=False), label="")
        return graph

    def describe(self, spec: ArchSpec) -> str:
        """The architecture as one string for tables (``arch`` column); ``parse`` reverses it."""
        return spec.to_json()

    def parse(self, text: str) -> ArchSpec:
        """Inverse of ``describe``."""
        return self.from_dict(ArchSpec.from_json(text).to_dict())

    def from_dict(self, data: Mapping[str, Any]) -> ArchSpec:
        spec = ArchSpec.from_dict(data)
        # Recompute the key from the parameters: a hand-edited key never wins.
        spec = ArchSpec(space=spec.space, params=spec.params, key=self.key_of(spec.values))
        self.validate(spec)
        return spec

    def load(self, path: str | Path) -> ArchSpec:
        return self.from_dict(ArchSpec.load(path).to_dict())

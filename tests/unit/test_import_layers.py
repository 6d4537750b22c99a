"""The house's layers, checked over the package's own imports: data flows down (tasks -> search -> lit ->
models), results flow back as return values, so a module may import its own package and the layers
*below* it, never one above or beside it, and no modules import each other in a circle. Imports under
``if TYPE_CHECKING:`` are types only and do not count; imports inside functions do.

``LAYERS`` is the one list of the order; a new upward import or circle fails here with the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hwnas"

#: Lowest first. A package (or top-level module) may import those in earlier layers only.
LAYERS: list[set[str]] = [
    {"utils"},  # ground floor: errors, config helpers, io, timing lock
    {"pareto"},  # Pareto masks, ranks and indicators (numpy + utils' errors)
    {"models", "data"},  # plain torch networks; datasets and datamodules
    {"search_space", "tricks"},  # spaces build models; training tricks (augmentations, schedules)
    {"hardware", "lit"},  # profilers and export; LightningModules around the models
    {"benchmark"},  # measured ground-truth tables
    {"evaluators"},  # what a candidate's metrics cost: train, supernet, table (conf/evaluator)
    {"search"},  # the trial loop, strategies, samplers, storage
    {"reporting"},  # everything that writes outputs (reads the study)
    {"callbacks"},  # Lightning / Optuna callbacks (progress, logging)
    {"final"},  # the final stage's pieces (conf/final)
    {"tasks"},  # search.run(cfg), final.run(cfg), ...: what the entry points call
    {"testing", "cli"},  # contract suites for plug-ins (may run any layer); the command line's sub-commands
    {"__main__"},  # python -m hwnas: hands over to cli
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(module: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """``(imported hwnas module, line)`` of every runtime import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_lines(tree)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "hwnas" or name.startswith("hwnas."):
                while name not in known and "." in name:
                    name = name.rsplit(".", 1)[0]
                yield name, node.lineno


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str, int]]]:
    mods = dict(_modules())
    known = set(mods)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    where: list[tuple[str, str, str, int]] = []
    for module, path in mods.items():
        for target, line in _imports(module, path, known):
            if target != module and target != "hwnas":
                graph[module].add(target)
                where.append((module, target, str(path.relative_to(SRC.parent.parent)), line))
    return graph, where


def _layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_every_package_has_a_layer() -> None:
    packages = {_layer_of(m) for m, _ in _modules() if m != "hwnas"}
    assert packages <= set(LEVEL), f"add these to LAYERS: {sorted(packages - set(LEVEL))}"


def test_no_upward_or_sideways_imports() -> None:
    _, where = _graph()
    bad = sorted(
        {
            f"{file}:{line}: {src} imports {dst} ({_layer_of(src)} must not import {_layer_of(dst)})"
            for src, dst, file, line in where
            if _layer_of(src) != _layer_of(dst) and LEVEL[_layer_of(dst)] >= LEVEL[_layer_of(src)]
        }
    )
    assert not bad, "\n".join(bad)


def test_no_import_circles() -> None:
    graph, _ = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "modules importing each other in a circle: " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("from hwnas.tasks import search\n", "search must not import tasks"),
        ("def f():\n    from hwnas.reporting.plots import x\n", "search must not import reporting"),
    ],
)
def test_the_check_catches_a_new_upward_import(
    tmp_path: Path, monkeypatch, source: str, message: str
) -> None:
    """The check itself can fail: a module of ``search`` importing a higher layer is reported with its line."""
    fake = SRC / "search" / "_layer_probe.py"
    monkeypatch.setattr(
        "tests.unit.test_import_layers._modules",
        lambda: iter([*((m, p) for m, p in _real_modules()), ("hwnas.search._layer_probe", fake)]),
    )
    monkeypatch.setattr(Path, "read_text", _reader(fake, source))
    with pytest.raises(AssertionError, match=message):
        test_no_upward_or_sideways_imports()


_real_modules = _modules


def _reader(fake: Path, source: str):  # noqa: ANN202 - a read_text stand-in
    original = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:  # noqa: ANN002, ANN003
        return source if self == fake else original(self, *args, **kwargs)

    return read_text

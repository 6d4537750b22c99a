"""Size limits that keep the search's rooms readable: the search task composes and calls pieces (it does not
hold them), and no function or module in the search, the tasks or the evaluators grows past what a reader
takes in at once. A new long function fails here with its name and length; split it, do not raise a limit."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "hwnas"
ROOMS = ("search", "tasks", "evaluators")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400
MAX_SEARCH_TASK_LINES = 150


def _modules() -> list[Path]:
    return [p for room in ROOMS for p in sorted((SRC / room).rglob("*.py"))]


def test_no_module_or_function_is_too_long() -> None:
    too_long = []
    for path in _modules():
        text = path.read_text()
        rel = path.relative_to(SRC.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{rel}: {len(text.splitlines())} lines (module limit {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(
                        f"{rel}:{node.lineno} {node.name}: {n} lines (limit {MAX_FUNCTION_LINES})"
                    )
    assert not too_long, "\n".join(too_long)


def test_the_search_task_only_composes() -> None:
    path = SRC / "tasks" / "search.py"
    n = len(path.read_text().splitlines())
    assert n <= MAX_SEARCH_TASK_LINES, f"tasks/search.py has {n} lines (limit {MAX_SEARCH_TASK_LINES})"
    assert len(_modules()) > 20  # the rooms exist (a moved package would make this test vacuous)

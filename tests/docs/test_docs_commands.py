"""Every shell command shown in README.md and docs/ is composed by Hydra, run by CI, or exempt with a reason.

A `python src/X.py …`, `python -m hwnas X …` or `make X ARGS="…"` line is composed with Hydra exactly as its
entry point would compose it (placeholders such as `<run>` filled, a multirun expanded into its jobs), so a
renamed option or key in the docs fails here. The quickstart's commands must be the ones `.ci/run` runs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.docs.commands import EXEMPT, ROOT, commands, entry_and_overrides, exemption

CONF = ROOT / "conf"
MAKEFILE_TARGETS = set(re.findall(r"^([a-zA-Z][\w-]*):", (ROOT / "Makefile").read_text(), flags=re.M))
CI_LINES = {line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()}


def _jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs a command launches (one unless it is a multirun sweep)."""
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [job for batch in batches for job in batch]


def _compose(name: str, overrides: list[str]) -> None:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        compose(config_name=name, overrides=overrides, return_hydra_config=True)


def _where(cmd) -> str:
    return f"{cmd.page.relative_to(ROOT)}:{cmd.line}: {cmd.text}"


def test_the_docs_show_commands_at_all() -> None:
    cmds = commands()
    assert len(cmds) > 50
    assert {c.page.name for c in cmds} >= {"README.md", "quickstart.md", "strategies.md", "hardware.md"}


def test_every_command_is_composed_run_or_exempt() -> None:
    problems, composed = [], 0
    for cmd in commands():
        if exemption(cmd):
            continue
        words = cmd.words
        if words[0] == "make" and words[1] not in MAKEFILE_TARGETS:
            problems.append(f"{_where(cmd)}: no Makefile target {words[1]!r}")
            continue
        parsed = entry_and_overrides(cmd)
        if parsed:
            name, overrides, multirun = parsed
            try:
                for job in _jobs(overrides, multirun):
                    _compose(name, job)
                    composed += 1
            except Exception as exc:  # noqa: BLE001 - every failing command is reported at once
                problems.append(f"{_where(cmd)}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
        elif words[0] == "make" and len(words) == 2 and cmd.text in CI_LINES:
            continue  # run as written by .ci/run (make install, make test, make search)
        elif re.search(r"(^|/)pytest$", words[0]) or words[:3] == ["python", "-m", "pytest"]:
            paths = [w for w in words[1:] if not w.startswith("-")]
            problems += [f"{_where(cmd)}: no such test file {p}" for p in paths if not (ROOT / p).exists()]
        elif words[0] == "make" and len(words) == 2:
            continue  # a target with no arguments: it exists (checked above) and CI's make runs the same recipe
        else:
            problems.append(
                f"{_where(cmd)}: neither composed, run by CI, nor exempt (tests/docs/commands.py EXEMPT)"
            )
    assert not problems, "\n".join(problems)
    assert composed > 40


def test_the_quickstart_runs_exactly_as_written_in_ci() -> None:
    quick = [c for c in commands([ROOT / "docs" / "quickstart.md"]) if c.text.startswith("make ")]
    assert quick, "the quickstart shows no make command"
    assert [c.text for c in quick if c.text not in CI_LINES] == []


def test_every_exemption_is_still_needed() -> None:
    texts = [c.text for c in commands()]
    unused = [p for p in EXEMPT if not any(re.search(p, t) for t in texts)]
    assert not unused, f"exemptions that match no command any more (remove them): {unused}"


def test_a_renamed_key_in_a_command_fails(tmp_path: Path) -> None:
    """The check can fail: a page with a mistyped key is reported."""
    from tests.docs.commands import Command

    cmd = Command("python src/search.py search.n_trails=3", tmp_path / "page.md", 1)
    name, overrides, _ = entry_and_overrides(cmd)
    with pytest.raises(Exception, match="n_trails"):
        _compose(name, overrides)

"""Unknown config-group options and mistyped keys: one line that says what was meant (difflib)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from hwnas.utils.hydra_errors import _suggesting, did_you_mean, explain
from tests.conftest import CONF, ROOT


@pytest.fixture
def hydra_app() -> Iterator[None]:
    """Hydra initialised on conf/ (as inside ``@hydra.main``: config groups can be listed)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def _error_line(overrides: list[str], config_name: str = "search") -> str | None:
    with pytest.raises(Exception) as info:  # noqa: PT011 - whatever Hydra raises, explain() judges it
        compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    return explain(info.value)


def test_the_bar_command_prints_one_line_naming_the_option_meant() -> None:
    """The real CLI: Hydra's dozen lines become one, with the exit code Hydra gives a bad option."""
    proc = subprocess.run(
        [sys.executable, "src/search.py", "search=evolution_parto"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
    assert proc.returncode == 1
    assert len(lines) == 1, lines
    assert "did you mean search=evolution_pareto?" in lines[0] and "Fix: search=evolution_pareto" in lines[0]


@pytest.mark.parametrize(
    ("override", "meant"),
    [
        ("search=evolution_parto", "search=evolution_pareto"),
        ("hardware=snapdragon88", "hardware=snapdragon888"),
        ("dataset=digit", "dataset=digits"),
        ("search_space=nb210", "search_space=nb201"),
        ("tricks=strng", "tricks=strong"),
        ("evaluator=tabel", "evaluator=table"),
        ("experiment=face_seg_mni", "experiment=face_seg_mini"),
        ("hydra/launcher=slrum", "hydra/launcher=slurm"),
        ("hardware=CPU", "hardware=cpu"),
    ],
)
def test_an_unknown_option_of_any_group_suggests_the_closest(
    hydra_app: None, override: str, meant: str
) -> None:
    line = _error_line([override])
    group, option = override.split("=")
    assert line is not None and "\n" not in line
    assert line.startswith(
        f"[{group}] Could not find '{group}/{option}'; did you mean {meant}? Valid choices: "
    )
    assert f"Fix: {meant}" in line  # then " or <group>=<next closest>", if any


@pytest.mark.parametrize(
    ("override", "meant", "fix"),
    [
        ("search.n_trails=3", "search.n_trials", "search.n_trials=3"),
        (
            "search.sampler.population_sise=8",
            "search.sampler.population_size",
            "search.sampler.population_size=8",
        ),
        ("serch.n_trials=2", "search.n_trials", "search.n_trials=2"),  # the first unknown name is fixed
        ("debgu=fast", "debug", "debug=fast"),  # a top-level name may be a config group
        ("trainer.max_epoch=3", "trainer.max_epochs", "trainer.max_epochs=3"),
    ],
)
def test_a_mistyped_key_suggests_the_key_meant(hydra_app: None, override: str, meant: str, fix: str) -> None:
    line = _error_line([override])
    key = override.split("=")[0]
    assert line is not None and "\n" not in line
    assert line.startswith(f"[{key}] unknown key; did you mean {meant}?")
    assert f"Fix: {fix} (or: +{override} adds it as a new key)" in line


def test_without_a_close_name_the_line_lists_the_choices_and_other_errors_stay_hydras(
    hydra_app: None,
) -> None:
    line = _error_line(["search=zzzzzz"])
    assert line is not None and "did you mean" not in line and "evolution_pareto" in line
    line = _error_line(["search.qqqqqq=1"])
    assert line is not None and "did you mean" not in line and "n_trials" in line
    assert "Fix: +search.qqqqqq=1 adds it as a new key" in line
    assert _error_line(["seed=[1"]) is None  # a grammar error: Hydra's own message (with its docs link)


def test_did_you_mean_ranks_closest_first_and_ignores_case() -> None:
    assert did_you_mean("NSGA", ["nsga3", "motpe", "random"]) == ["nsga3"]
    assert (
        did_you_mean("evolution_parto", ["evolution_pareto", "regularized_evolution"])[0]
        == "evolution_pareto"
    )
    assert did_you_mean("xyz", ["nsga3", "motpe"]) == []


def test_the_wrapper_prints_one_line_exits_1_and_leaves_full_errors_to_hydra(
    hydra_app: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra._internal import utils as hydra_utils

    def bad_option() -> None:
        compose(config_name="search", overrides=["tricks=strng"])

    original = hydra_utils.run_and_report
    with _suggesting():
        assert hydra_utils.run_and_report is not original
        with pytest.raises(SystemExit) as stop:
            hydra_utils.run_and_report(bad_option)
        assert stop.value.code == 1
        out = capsys.readouterr()
        assert out.err.count("\n") == 1 and out.err.startswith(
            "error: [tricks] Could not find 'tricks/strng'; did you mean tricks=strong?"
        )
        assert hydra_utils.run_and_report(lambda: 42) == 42  # a task's result passes through
        monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra re-raises with the full trace, as asked
        with pytest.raises(Exception, match="Could not find 'tricks/strng'"):
            hydra_utils.run_and_report(bad_option)
    assert hydra_utils.run_and_report is original

"""The configuration reference: every key under conf/ has a comment, and docs/reference/config.md is in sync."""

from __future__ import annotations

from pathlib import Path

from hwnas.utils import config_reference as ref


def test_every_key_has_a_comment_and_the_page_is_in_sync() -> None:
    opts = ref.options()
    assert ref.missing_comments(opts) == []
    assert ref.PAGE.read_text() == ref.render(opts), (
        "run `make config-reference` and commit docs/reference/config.md"
    )
    groups = {o.group for o in opts}
    assert {"search_space", "search", "dataset", "tricks", "hardware", "evaluator", "final"} <= groups
    assert sum(len(o.keys) for o in opts) > 500


def test_a_key_without_a_comment_is_found_and_comments_are_read(tmp_path: Path) -> None:
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / "opt.yaml").write_text(
        "# What this option is\n"
        "_target_: hwnas.search_space.hourglass.HourglassSpace\n"
        "alpha: 1          # the first knob,\n"
        "                  # continued\n"
        "# the second knob, above it\n"
        "beta: '#not a comment'\n"
        "\n"
        "gamma:\n"
        "  delta: 3\n"
    )
    (opt,) = ref.options(tmp_path)
    assert opt.description == "What this option is"
    keys = {k.path: k for k in opt.keys}
    assert keys["alpha"].comment == "the first knob, continued"
    assert keys["beta"].comment == "the second knob, above it" and keys["beta"].default == "'#not a comment'"
    assert keys["_target_"].comment  # Hydra's own keys explain themselves
    assert ref.missing_comments([opt]) == ["conf/group/opt.yaml:8 gamma", "conf/group/opt.yaml:9 gamma.delta"]
    page = ref.render([opt])
    assert "Builds `hwnas.search_space.hourglass.HourglassSpace`" in page and "`group=opt`" in page

"""The logger-sink contract suite (:class:`~hwnas.callbacks.logger_sinks.RunSink`).

Subclass :class:`RunSinkContract` and provide ``sink`` (yours, built on its logger as ``sink_for`` builds
it)::

    class TestMySink(RunSinkContract):
        @pytest.fixture
        def sink(self, tmp_path):
            return MySink(MyLogger(save_dir=tmp_path))

The suite writes what a search and its final stage write at the end: tables with mixed column types and
missing values, a PNG chart, a front as a scatter, a training curve, the summary, then closes the sink.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hwnas.callbacks.logger_sinks import RunSink

#: The protocol's methods, read from ``RunSink`` itself (a new method there is checked here too).
METHODS = tuple(
    name for name, member in vars(RunSink).items() if not name.startswith("_") and inspect.isfunction(member)
)


def trials_frame() -> pd.DataFrame:
    """A trials table as the search writes it: numbers, text, booleans, missing values, an ``arch``."""
    return pd.DataFrame(
        {
            "number": [0, 1, 2, 3],
            "arch_key": ["a-1", "a-2", "a-3", "a-4"],
            "arch": ['{"x": 1}', '{"x": 2}', '{"x": 3}', '{"x": 4}'],
            "state": ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"],
            "val/miou": [0.5, 0.61, math.nan, 0.4],
            "hw/latency_ms": [2.0, 3.5, math.nan, 1.25],
            "duplicate": [False, False, False, True],
            "params": [1200, 5400, None, 800],
        }
    )


def png(path: Path) -> Path:
    from PIL import Image

    Image.fromarray(np.full((12, 16, 3), 200, dtype=np.uint8)).save(path)
    return path


class RunSinkContract:
    """Rules every end-of-run sink keeps: the whole protocol, with the search's own kinds of data.

    Fixture: ``sink`` (yours, required).
    """

    def test_has_every_method_of_the_protocol(self, sink: Any) -> None:
        """The search calls each of them; a missing one would fail the run at its very end."""
        missing = [m for m in METHODS if not callable(getattr(sink, m, None))]
        assert not missing, f"{type(sink).__name__} lacks {missing} of the RunSink protocol"
        for name in METHODS:
            want = inspect.signature(getattr(RunSink, name))
            have = inspect.signature(getattr(sink, name))
            args = {p: f"<{p}>" for p in list(want.parameters)[1:]}
            positional = [
                v for p, v in args.items() if want.parameters[p].kind is not inspect.Parameter.KEYWORD_ONLY
            ]
            keywords = {
                p: v for p, v in args.items() if want.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY
            }
            try:
                have.bind(*positional, **keywords)
            except TypeError as exc:
                pytest.fail(
                    f"{type(sink).__name__}.{name}{have} cannot be called as RunSink.{name}{want}: {exc}"
                )

    def test_writes_what_a_search_and_its_final_stage_write(self, sink: Any, tmp_path: Path) -> None:
        trials = trials_frame()
        front = trials.iloc[[0, 1, 3]]
        sink.table("trials", trials)
        sink.table("pareto", front)
        sink.table("empty", trials.iloc[:0])
        sink.scatter("pareto_front", trials, x="hw/latency_ms", y="val/miou", title="front")
        sink.image("pareto_front_png", png(tmp_path / "front.png"))
        sink.curve("final/a-1/val_miou", [0, 1, 2], [0.1, 0.3, 0.35], step_name="epoch")
        sink.summary({"front_size": 3, "hypervolume": 0.42, "best": "a-2", "nan": math.nan, "ok": True})
        sink.close("success")

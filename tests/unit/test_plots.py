"""The front's animation stays a bounded number of frames however long the search (500+ trials)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hwnas.reporting.plots import plot_evolution
from hwnas.search.objectives import Objective


def _trials(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "number": np.arange(n),
            "duplicate": False,
            "state": "COMPLETE",
            "feasible": True,
            "val/miou": rng.uniform(0, 1, n),
            "hw/latency_ms": rng.uniform(0.2, 5, n),
        }
    )


def test_a_long_search_animates_whole_generations_in_at_most_max_frames(tmp_path: Path) -> None:
    objs = [Objective("val/miou", "maximize"), Objective("hw/latency_ms", "minimize")]
    path = plot_evolution(_trials(500), objs, tmp_path / "evo.gif", step=8, title="t", max_frames=20)
    frames = Image.open(path).n_frames
    assert 10 <= frames <= 21  # every k-th generation (k = 4 here), plus the last state
    short = plot_evolution(_trials(40), objs, tmp_path / "short.gif", step=8, title="t", max_frames=20)
    assert Image.open(short).n_frames == 5  # a frame per generation when there are few

"""Building a latency table for your own device, and searching against it."""

from __future__ import annotations

import pandas as pd
import pytest

from hwnas.tasks import latency_table


@pytest.mark.integration
def test_table_built_on_one_run_serves_a_later_search(make_cfg, tmp_path) -> None:
    cfg = make_cfg(
        "profile",
        [
            "table.n=3",
            "hardware.repeats=3",
            "hardware.warmup=1",
            "dataset.dataset.num_train=16",
            "dataset.dataset.num_val=8",
        ],
    )
    summary = latency_table.run(cfg)
    table = pd.read_csv(summary["path"])
    assert len(table) == 3 and table["arch"].is_unique
    assert (table["latency_ms"] > 0).all() and (table["source"] == "measured").all()
    assert table["macs"].gt(0).all()

    # The same architectures, searched with latencies looked up in the table: no re-measurement.
    archs = tmp_path / "archs"
    archs.mkdir()
    from hwnas.search_space.base import ArchSpec

    for text in table["arch_json"]:
        ArchSpec.from_json(text).save(archs / f"{ArchSpec.from_json(text).key}.json")
    cfg2 = make_cfg(
        "profile",
        [
            "hardware=table",
            f"hardware.path={summary['path']}",
            "hardware.column=latency_ms",
            f"table.archs={archs}",
            "dataset.dataset.num_train=16",
            "dataset.dataset.num_val=8",
        ],
    )
    cfg2.run_dir = str(tmp_path / "again")
    again = pd.read_csv(latency_table.run(cfg2)["path"]).set_index("arch")
    assert again.loc[table["arch"], "latency_ms"].tolist() == pytest.approx(table["latency_ms"].tolist())


def test_bad_table_sources_are_clear_errors(make_cfg, tmp_path) -> None:
    from hwnas.utils.errors import ConfigError

    cfg = make_cfg("profile", ["table.n=0", f"table.archs={tmp_path / 'nope.txt'}"])
    with pytest.raises(ConfigError, match="table.archs"):
        latency_table.run(cfg)

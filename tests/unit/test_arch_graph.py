"""Architecture pictures: each space's ``arch_graph`` is the right DAG, and ``draw_arch`` writes a real PNG."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hwnas.models.darts_ops import CELL_TYPES
from hwnas.reporting.arch_graph import draw_arch, layout
from hwnas.reporting.report import write_report
from hwnas.search.objectives import Objective
from hwnas.search_space.base import ArchSpec, SearchSpace
from hwnas.search_space.darts_cell import DARTS_V2, DartsCellSpace
from hwnas.search_space.hourglass import HourglassSpace
from hwnas.search_space.nb201 import NB201Space


def _specs(space: SearchSpace) -> list[ArchSpec]:
    return [space.baseline(), space.sample(np.random.default_rng(7))]


def _op_labels(graph: nx.DiGraph) -> Counter:
    return Counter(label for *_, label in graph.edges(data="label") if label)


# ----- DARTS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["baseline", "sample"])
def test_darts_graph_has_both_cells_with_two_op_edges_per_node(which: str) -> None:
    space = DartsCellSpace()
    spec = dict(zip(["baseline", "sample"], _specs(space), strict=True))[which]
    graph = space.arch_graph(spec)
    assert nx.is_directed_acyclic_graph(graph)
    assert nx.number_weakly_connected_components(graph) == 2  # normal and reduce
    # per cell: 2 inputs + 4 nodes + concat; 2 op edges per node + 1 edge per node into the concat
    assert graph.number_of_nodes() == 14 and graph.number_of_edges() == 24
    values = spec.values
    for cell in CELL_TYPES:
        for i in range(4):
            into = {graph.nodes[u]["label"]: op for u, _, op in graph.in_edges(f"{cell}/{i}", data="label")}
            a, b = (int(s) for s in values[f"{cell}_n{i}_inputs"].split("-"))
            names = ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3"]
            assert into == {names[a]: values[f"{cell}_n{i}_op0"], names[b]: values[f"{cell}_n{i}_op1"]}
    assert sum(_op_labels(graph).values()) == 16


def test_darts_v2_normal_cell_reads_as_published() -> None:
    space = DartsCellSpace()
    graph = space.arch_graph(space.baseline())
    normal = _op_labels(graph.subgraph(n for n in graph if n.startswith("normal/")))
    assert normal == Counter({"sep_conv_3x3": 5, "skip_connect": 2, "dil_conv_3x3": 1})


def test_darts_graph_draws_only_the_used_nodes_when_the_space_counts_them(monkeypatch) -> None:
    space = DartsCellSpace()
    counted = {**DartsCellSpace.choices(space), "normal_nodes": [1, 2, 3, 4], "reduce_nodes": [1, 2, 3, 4]}
    monkeypatch.setattr(space, "choices", lambda: counted)
    spec = space.make(DARTS_V2.to_params() | {"normal_nodes": 2, "reduce_nodes": 4})
    graph = space.arch_graph(spec)
    assert "normal/2" not in graph and "reduce/3" in graph
    # normal: 2 inputs + 2 nodes + concat, 2x2 op edges + 2 concat edges; reduce: 7 nodes, 12 edges
    assert graph.number_of_nodes() == 5 + 7 and graph.number_of_edges() == 6 + 12
    assert nx.is_directed_acyclic_graph(graph)


# ----- hourglass -----------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [4, 2])
def test_hourglass_graph_has_a_block_per_level_and_its_skip(levels: int) -> None:
    space = HourglassSpace(num_levels=levels)
    for spec in _specs(space):
        graph = space.arch_graph(spec)
        assert nx.is_directed_acyclic_graph(graph) and nx.is_weakly_connected(graph)
        # stem, head, and down/skip/up per level; down chain, skip in and out, upsample chain, head
        assert graph.number_of_nodes() == 3 * levels + 2 and graph.number_of_edges() == 4 * levels + 1
        assert list(nx.topological_sort(graph))[0] == "stem" and list(graph.predecessors("head")) == ["up1"]
        v, chans = spec.values, space.channels(spec)
        for i in range(1, levels + 1):
            assert graph.nodes[f"down{i}"]["label"] == (
                f"down{i}\n{v[f'down{i}_layers']}×k{v[f'down{i}_kernel']} c{chans[i]}"
            )
            assert ("identity" in graph.nodes[f"skip{i}"]["label"]) == (v[f"skip{i}_layers"] == 0)
            assert set(graph.predecessors(f"up{i}")) == {
                f"skip{i}",
                f"up{i + 1}" if i < levels else f"down{i}",
            }


# ----- NB201 ---------------------------------------------------------------------------------------


def test_nb201_graph_has_one_edge_per_op_and_none_edges_left_out() -> None:
    space = NB201Space()
    full = space.arch_graph(space.baseline())
    assert full.number_of_nodes() == 4 and full.number_of_edges() == 6
    assert _op_labels(full) == Counter(space.ops_of(space.baseline()))
    sparse = space.from_arch_string("|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    graph = space.arch_graph(sparse)
    assert graph.number_of_nodes() == 4 and nx.is_directed_acyclic_graph(graph)
    assert {(u, v): op for u, v, op in graph.edges(data="label")} == {
        (0, 2): "skip_connect",
        (1, 3): "nor_conv_3x3",
        (2, 3): "avg_pool_3x3",
    }
    for spec in _specs(space):
        ops = space.ops_of(spec)
        assert space.arch_graph(spec).number_of_edges() == sum(op != "none" for op in ops)


# ----- the fallback and the drawing ----------------------------------------------------------------


class _Flat(SearchSpace):
    name = "flat"

    def choices(self) -> dict[str, list[Any]]:
        return {"depth": [1, 2], "width": [8, 16], "act": ["relu"]}

    def build(self, spec: ArchSpec, *, num_classes: int, in_channels: int = 3) -> Any:
        raise NotImplementedError


def test_a_space_without_its_own_graph_draws_its_parameters_as_a_chain(tmp_path: Path) -> None:
    space = _Flat()
    spec = space.make({"depth": 2, "width": 16, "act": "relu"})
    graph = space.arch_graph(spec)
    assert [graph.nodes[n]["label"] for n in nx.topological_sort(graph)] == [
        "act=relu",
        "depth=2",
        "width=16",
    ]
    assert graph.number_of_edges() == 2
    assert Image.open(draw_arch(space, spec, tmp_path / "flat.png")).size[0] > 0


def test_layout_stacks_groups_and_keeps_layers_in_order() -> None:
    space = DartsCellSpace()
    graph = space.arch_graph(space.baseline())
    pos, (columns, rows) = layout(graph)
    assert set(pos) == set(graph)
    assert min(y for n, (_, y) in pos.items() if n.startswith("normal/")) > max(
        y for n, (_, y) in pos.items() if n.startswith("reduce/")
    )
    assert all(pos[u][0] < pos[v][0] for u, v in graph.edges)  # every edge runs left to right
    assert columns == 4 and rows == 6  # V2: inputs, nodes 0-2, node 3, concat; 3 + 3 in the tallest layers


@pytest.mark.parametrize("space", [DartsCellSpace(), HourglassSpace(), NB201Space()], ids=lambda s: s.name)
def test_draw_arch_writes_a_readable_png_and_closes_its_figure(space: SearchSpace, tmp_path: Path) -> None:
    spec = space.baseline()
    before = plt.get_fignums()
    path = draw_arch(space, spec, tmp_path / "sub" / f"{spec.stem}.png")
    assert path == tmp_path / "sub" / f"{spec.stem}.png" and path.stat().st_size > 1000
    with Image.open(path) as img:
        width, height = img.size
        assert img.format == "PNG" and 600 <= width <= 1600 and 380 <= height <= 1000
        assert len(set(img.convert("L").getdata())) > 10  # something was drawn, not a blank page
    assert plt.get_fignums() == before


def test_draw_arch_refuses_a_cyclic_graph_without_leaving_a_file(tmp_path: Path, monkeypatch) -> None:
    space = NB201Space()
    cyclic = nx.DiGraph([(0, 1), (1, 0)])
    monkeypatch.setattr(space, "arch_graph", lambda spec: cyclic)
    with pytest.raises(nx.NetworkXUnfeasible):
        draw_arch(space, space.baseline(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ----- report.md -----------------------------------------------------------------------------------


def _report(run_dir: Path, files: dict[str, str]) -> str:
    objectives = [Objective("accuracy", "maximize"), Objective("latency_ms", "minimize")]
    front = pd.DataFrame({"arch_key": ["k1"], "accuracy": [0.9], "latency_ms": [3.0]})
    summary = {
        "study_name": "s",
        "search_space": "nb201",
        "sampler": "x",
        "n_trials_budget": 4,
        "unique_evaluated": 4,
        "duplicates": 0,
        "failed": 0,
        "infeasible": 0,
        "wall_seconds": 1.0,
        "front": [{"arch_key": "k1", "accuracy": 0.9, "latency_ms": 3.0, "files": files}],
    }
    return write_report(run_dir, summary=summary, front=front, objectives=objectives).read_text()


def test_report_links_each_front_models_picture(tmp_path: Path) -> None:
    pareto = tmp_path / "pareto"
    with_graph = _report(tmp_path, {"onnx": str(pareto / "k1.onnx"), "graph": str(pareto / "k1.png")})
    assert "[graph](pareto/k1.png)" in with_graph and "[onnx](pareto/k1.onnx)" in with_graph
    # a failed export still shows the picture; no picture, no link
    assert "[graph](pareto/k1.png)" in _report(tmp_path, {"error": "boom", "graph": str(pareto / "k1.png")})
    assert "graph" not in _report(tmp_path, {"onnx": str(pareto / "k1.onnx")})


@pytest.mark.integration
def test_search_draws_every_front_model_and_a_failed_drawing_loses_nothing_else(
    make_cfg, nb201_path: Path, monkeypatch, caplog
) -> None:
    """End to end over the NB201 table (no training, seconds): the first drawing fails, the rest do not."""
    from hwnas.tasks import search

    calls: list[str] = []

    def first_fails(space: SearchSpace, spec: ArchSpec, path: Path) -> Path:
        calls.append(spec.key)
        if len(calls) == 1:
            raise RuntimeError("simulated drawing failure")
        return draw_arch(space, spec, path)

    from hwnas.reporting import search_outputs

    monkeypatch.setattr(search_outputs, "draw_arch", first_fails)
    cfg = make_cfg("search", ["experiment=nb201", "search.n_trials=4", "search.sampler.population_size=2"])
    summary = search.run(cfg)
    run_dir = Path(cfg.run_dir)
    front = pd.read_csv(run_dir / "pareto.csv")
    assert len(front) >= 2 and sorted(calls) == sorted(front["arch_key"])
    assert "simulated drawing failure" in caplog.text
    report = (run_dir / "report.md").read_text()
    files = {item["arch_key"]: item["files"] for item in summary["front"]}
    for key in front["arch_key"]:
        stem = NB201Space().from_arch_string(key).stem
        assert (run_dir / "pareto" / f"{stem}.json").is_file()  # never lost to a failed picture
        png = run_dir / "pareto" / f"{stem}.png"
        if key == calls[0]:
            assert not png.exists() and "graph" not in files[key] and f"pareto/{stem}.png" not in report
        else:
            assert Image.open(png).size[0] > 0 and files[key]["graph"] == str(png)
            assert f"[graph](pareto/{stem}.png)" in report

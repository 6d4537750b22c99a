"""Architecture pictures: a space's :meth:`~hwnas.search_space.base.SearchSpace.arch_graph` as a PNG.

Drawn once per front model at the end of a search (``pareto/<stem>.png``, linked from ``report.md``).
The layout is networkx's layered (multipartite) layout; this module only picks columns, colours and sizes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from hwnas.search_space.base import ArchSpec, SearchSpace  # noqa: E402

# Box colour per node ``kind``; other kinds are grey.
COLORS = {"input": "#ffe0b3", "output": "#ffe0b3", "down": "#cfe3ff", "up": "#d4f2d4", "node": "#e3ddf5"}
GROUP_GAP = 0.5  # space between the bands of node groups (each band is laid out within [-1, 1])
NODE_SIZE = 1400  # the room (points²) arrows leave around a node's centre for its label box
CURVE = "arc3,rad=0.15"  # bent edges: one that skips a column seldom runs straight through its nodes


def layout(graph: nx.DiGraph) -> tuple[dict[Any, tuple[float, float]], tuple[int, int]]:
    """Positions of a layered DAG drawing, and its ``(columns, rows)`` of node slots (to size the figure).

    Nodes sharing a ``group`` attribute (DARTS's two cells) get their own band, stacked top to bottom.
    Within a band, a node's layer is its ``layer`` attribute, else its topological generation; layers are
    columns (left to right, first node on top), or rows when ``graph.graph["align"] == "horizontal"``.
    Explicit layers keep the nodes' insertion order; generations are ordered by their inputs' places.

    Raises:
        networkx.NetworkXUnfeasible: ``graph`` has a cycle.
    """
    generation = {n: g for g, nodes in enumerate(nx.topological_generations(graph)) for n in nodes}
    align = graph.graph.get("align", "vertical")
    groups: dict[Any, list[Any]] = {}
    for node, group in graph.nodes(data="group"):
        groups.setdefault(group, []).append(node)
    pos: dict[Any, tuple[float, float]] = {}
    columns = rows = 0
    top = 0.0  # where the next band starts
    for nodes in groups.values():
        layers: dict[Any, list[Any]] = {}
        for node in nodes:
            layers.setdefault(graph.nodes[node].get("layer", generation[node]), []).append(node)
        if not any("layer" in graph.nodes[n] for n in nodes):
            _order_by_barycentre(graph, layers)
        band_pos = nx.multipartite_layout(graph.subgraph(nodes), subset_key=layers, align=align)
        flip = -1.0 if align == "vertical" else 1.0  # first node of a column on top, not at the bottom
        ys = {n: flip * float(y) for n, (_, y) in band_pos.items()}
        shift = top - max(ys.values())
        pos |= {n: (float(x), ys[n] + shift) for n, (x, _) in band_pos.items()}
        top = min(y for _, y in pos.values()) - GROUP_GAP
        across, along = len(layers), max(len(v) for v in layers.values())  # bands stack vertically
        if align == "horizontal":
            across, along = along, across
        columns, rows = max(columns, across), rows + along
    return pos, (columns, rows)


def _order_by_barycentre(graph: nx.DiGraph, layers: dict[Any, list[Any]]) -> None:
    """Sort each generation by the mean place of its predecessors (one Sugiyama sweep: fewer crossings)."""
    place: dict[Any, float] = {}
    for key in sorted(layers):
        nodes, centre = layers[key], (len(layers[key]) - 1) / 2
        order = {}
        for i, node in enumerate(nodes):
            seen = [place[p] for p in graph.predecessors(node) if p in place]
            order[node] = sum(seen) / len(seen) if seen else i - centre
        nodes.sort(key=order.__getitem__)
        place |= {n: i - centre for i, n in enumerate(nodes)}


def draw_arch(space: SearchSpace, spec: ArchSpec, path: str | Path, *, dpi: int = 110) -> Path:
    """Draw ``space.arch_graph(spec)`` to the PNG ``path`` (titled with the key) and return the path.

    The figure is about 6×3.5 in, wider or taller for graphs with many layers; it is always closed.
    """
    graph = space.arch_graph(spec)
    pos, (columns, rows) = layout(graph)
    size = (min(max(6.0, 1.6 * columns), 14.0), min(max(3.5, 0.8 * rows + 0.6), 9.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=size)
    try:
        edge_style = {"node_size": NODE_SIZE, "connectionstyle": CURVE}
        nx.draw_networkx_edges(graph, pos, ax=ax, arrowsize=9, width=0.8, edge_color="#555555", **edge_style)
        edge_labels = {e: label for e, label in nx.get_edge_attributes(graph, "label").items() if label}
        nx.draw_networkx_edge_labels(
            graph,
            pos,
            edge_labels=edge_labels,
            ax=ax,
            font_size=6,
            label_pos=0.7,  # nearer the target: edges fanning out of one input keep their labels apart
            **edge_style,
            bbox={"fc": "white", "ec": "none", "alpha": 0.8, "pad": 0.5},
        )
        kinds: dict[str, dict[Any, str]] = {}
        for node, data in graph.nodes(data=True):
            kinds.setdefault(data.get("kind", ""), {})[node] = str(data.get("label", node))
        for kind, labels in kinds.items():
            box = {"boxstyle": "round,pad=0.35", "fc": COLORS.get(kind, "#eeeeee"), "ec": "#444", "lw": 0.6}
            nx.draw_networkx_labels(graph, pos, labels=labels, ax=ax, font_size=7, bbox=box)
        ax.set_title(textwrap.fill(spec.key, width=int(13 * size[0])), fontsize=8)
        ax.axis("off")
        ax.margins(0.08)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path

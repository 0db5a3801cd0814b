"""Cells drawn as in the DARTS paper (Liu et al. 2019, Figures 4-5).

A cell is a small DAG: two inputs (the outputs of the two previous cells,
c_{k-2} and c_{k-1}), numbered intermediate nodes, and the output c_{k}, the
concatenation of some states. Every edge carries an operation.

Every drawing is first described backend-free (`_Diagram`: nodes and edges
with their label, colour, width, opacity and style) and then rendered, by
graphviz when its `dot` program is installed, else by plotly. So both
backends show the same thing and the rules (what is highlighted, how strength
maps to width) live in one place.
"""
from __future__ import annotations

import html
import importlib.util
import math
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import graphviz
import torch

from ..genotypes import GenotypeError, derive_cell, edge_endpoints, num_edges, validate_genotype
from ..ops import PRIMITIVES

__all__ = ["draw_cell", "draw_mixed_cell", "cell_svg", "save_cell_svgs", "draw_genotypes", "OP_COLOURS"]

KINDS = ("normal", "reduce")
BACKENDS = ("auto", "graphviz", "plotly")

# Tableau 10, a qualitative palette whose colours stay apart for most colour
# vision. `skip_connect` (red, solid) and `none` (grey, dotted) are the two a
# reader must never confuse: a cell full of skips is the classic DARTS failure.
OP_COLOURS = {
    "none": "#bab0ac",
    "max_pool_3x3": "#f28e2b",
    "avg_pool_3x3": "#9c755f",
    "skip_connect": "#e15759",
    "sep_conv_3x3": "#4e79a7",
    "sep_conv_5x5": "#76b7b2",
    "sep_conv_7x7": "#ff9da7",
    "dil_conv_3x3": "#59a14f",
    "dil_conv_5x5": "#b07aa1",
    "conv_7x1_1x7": "#edc948",
}
UNKNOWN_OP_COLOUR = "#555555"
CONCAT_COLOUR = "#9e9e9e"
DROPPED_COLOUR = "#9e9e9e"

# The DARTS code (visualize.py) fills inputs, intermediate nodes and the
# output with these X11 colours; keeping them makes our figures read like the paper's.
NODE_FILL = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}  # darkseagreen2, lightblue, palegoldenrod
INPUT_LABELS = ("c_{k-2}", "c_{k-1}")
OUTPUT_LABEL = "c_{k}"

INSTALL_HINT = (
    "sudo apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS) "
    "or conda install -c conda-forge python-graphviz"
)
FALLBACK_WARNING = (
    "graphviz's 'dot' program was not found, so cells are drawn with plotly. "
    f"Install it with: {INSTALL_HINT}"
)
_fallback_warned = False  # the warning is shown once per process, not per drawing


# ---------------------------------------------------------------------------
# A backend-free description of a drawing
# ---------------------------------------------------------------------------

@dataclass
class _Node:
    id: str
    label: str
    role: str  # "input", "node" or "output"


@dataclass
class _Edge:
    tail: str
    head: str
    kind: str  # "op" or "concat" (draw_cell); "kept" or "dropped" (draw_mixed_cell)
    label: str = ""
    colour: str = CONCAT_COLOUR
    alpha: float = 1.0
    width: float = 1.5
    style: str = "solid"  # "solid", "dashed" or "dotted"
    tooltip: str = ""


@dataclass
class _Diagram:
    nodes: list[_Node] = field(default_factory=list)
    edges: list[_Edge] = field(default_factory=list)
    title: str | None = None


def _state_id(index: int) -> str:
    """Node id of state `index`: the inputs keep DARTS's names, node j >= 2 is "j-2"."""
    return INPUT_LABELS[index] if index < 2 else str(index - 2)


def _skeleton(steps: int, title: str | None) -> _Diagram:
    """Inputs, `steps` numbered nodes and the output, no edges yet."""
    nodes = [_Node(label, label, "input") for label in INPUT_LABELS]
    nodes += [_Node(str(i), str(i), "node") for i in range(steps)]
    nodes.append(_Node(OUTPUT_LABEL, OUTPUT_LABEL, "output"))
    return _Diagram(nodes=nodes, title=title)


def _add_concat_edges(diagram: _Diagram, concat) -> None:
    for state in concat:
        diagram.edges.append(_Edge(_state_id(state), OUTPUT_LABEL, "concat"))


def op_colour(op: str) -> str:
    """The fixed colour of operation `op` (grey-black for names we do not know)."""
    return OP_COLOURS.get(op, UNKNOWN_OP_COLOUR)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


# ---------------------------------------------------------------------------
# Discrete cells (a genotype)
# ---------------------------------------------------------------------------

def _genotype_diagram(genotype, kind: str, title: str | None) -> _Diagram:
    _check_kind(kind)
    g = validate_genotype(genotype)
    pairs, concat = getattr(g, kind), getattr(g, f"{kind}_concat")
    diagram = _skeleton(len(pairs) // 2, title)
    for k, (op, j) in enumerate(pairs):
        tail, head = _state_id(j), str(k // 2)  # pairs come two per node, in node order
        diagram.edges.append(_Edge(
            tail, head, "op", label=op, colour=op_colour(op), width=2.0,
            style="dotted" if op == "none" else "solid", tooltip=f"{op}: {tail} -> {head}",
        ))
    _add_concat_edges(diagram, concat)
    return diagram


def draw_cell(genotype, kind: str = "normal", *, title: str | None = None, backend: str = "auto"):
    """Draw the `kind` ("normal" or "reduce") cell of `genotype` as DARTS Figures 4-5 do.

    Returns a `graphviz.Digraph` (shown inline as SVG in Jupyter), or a plotly
    `Figure` with the same layout where graphviz's `dot` is not installed.
    `backend` forces one: "auto" (default), "graphviz" or "plotly".
    """
    diagram = _genotype_diagram(genotype, kind, title)  # validate before choosing a backend
    return _render(diagram, _use_graphviz(backend))


# ---------------------------------------------------------------------------
# The continuous (mixed) cell a differentiable search trains
# ---------------------------------------------------------------------------

def _steps_for(rows: int) -> int | None:
    """The number of steps whose cell has `rows` edges, or None."""
    steps = 1
    while num_edges(steps) < rows:
        steps += 1
    return steps if num_edges(steps) == rows else None


def _as_probabilities(probabilities, primitives, steps):
    """`probabilities` as a float64 CPU tensor and the cell's steps, or a ValueError saying the expected shape."""
    P = torch.as_tensor(probabilities, dtype=torch.float64).detach().cpu()
    n_ops = len(primitives)
    if P.dim() != 2 or P.shape[1] != n_ops:
        raise ValueError(
            f"probabilities has shape {tuple(P.shape)}, expected [num_edges, {n_ops}]: "
            f"one row per edge and one column per operation of {list(primitives)}"
        )
    inferred = _steps_for(P.shape[0]) if steps is None else steps
    if inferred is None or P.shape[0] != num_edges(inferred):
        if steps is not None:
            expected = f"({num_edges(steps)}, {n_ops}) for {steps} steps"
        else:
            known = ", ".join(f"{num_edges(s)} ({s} steps)" for s in range(1, 7))
            expected = f"[num_edges, {n_ops}] with num_edges one of {known}, ..."
        raise ValueError(f"probabilities has shape {tuple(P.shape)}, expected {expected}")
    if torch.isnan(P).any() or P.min() < 0 or P.max() > 1 + 1e-6:  # float32 softmax may overshoot 1 a hair
        # The commonest mistake is passing alpha itself.
        raise ValueError(
            "probabilities must lie in [0, 1]; if these are architecture logits (alpha), "
            "pass alpha.softmax(dim=-1)"
        )
    return P, inferred


def _strongest(row: list[float], candidates: list[int]) -> int:
    """Index of the strongest candidate op; ties go to the lower index, as in `derive_cell`."""
    return max(candidates, key=lambda k: (row[k], -k))


def _mixed_tooltip(row, primitives, tail, head) -> str:
    ranked = sorted(range(len(row)), key=lambda k: -row[k])
    return f"{tail} -> {head}: " + ", ".join(f"{primitives[k]} {row[k]:.2f}" for k in ranked)


def _mixed_diagram(probabilities, primitives, steps, multiplier, title) -> _Diagram:
    primitives = list(primitives)
    P, steps = _as_probabilities(probabilities, primitives, steps)
    multiplier = steps if multiplier is None else multiplier
    if not 1 <= multiplier <= steps:
        raise ValueError(f"multiplier must be in 1..{steps} (the number of nodes), got {multiplier}")
    candidates = [k for k, name in enumerate(primitives) if name != "none"]
    if not candidates:
        raise ValueError("primitives holds only 'none': there is no operation to draw")

    gene = derive_cell(P, steps, primitives)
    kept = {(j, k // 2 + 2) for k, (_, j) in enumerate(gene)}
    rows = P.tolist()
    strengths = [max(row[k] for k in candidates) for row in rows]
    top = max(strengths) or 1.0  # an all-zero cell draws every edge at the minimum

    diagram = _skeleton(steps, title)
    for row, strength, (j, state) in zip(rows, strengths, edge_endpoints(steps)):
        op = primitives[_strongest(row, candidates)]
        rel = strength / top
        tail, head = _state_id(j), _state_id(state)
        common = dict(label=f"{op} {strength:.2f}", tooltip=_mixed_tooltip(row, primitives, tail, head))
        if (j, state) in kept:
            edge = _Edge(tail, head, "kept", colour=op_colour(op), alpha=0.45 + 0.55 * rel,
                         width=1.5 + 3.0 * rel, style="solid", **common)
        else:
            edge = _Edge(tail, head, "dropped", colour=DROPPED_COLOUR, alpha=0.15 + 0.45 * rel,
                         width=0.5 + 1.5 * rel, style="dashed", **common)
        diagram.edges.append(edge)
    _add_concat_edges(diagram, range(steps + 2 - multiplier, steps + 2))
    return diagram


def draw_mixed_cell(probabilities, primitives=PRIMITIVES, steps: int | None = None, title: str | None = None,
                    *, multiplier: int | None = None, backend: str = "auto"):
    """Draw a whole supernet cell from its per-edge operation probabilities.

    `probabilities` is ``[num_edges, len(primitives)]`` (tensor, array or
    nested list), rows in `edge_endpoints` order; `steps` is inferred from the
    number of rows when None. Each edge is labelled with its strongest
    non-`none` op and that probability; pen width and opacity grow with it
    (relative to the strongest edge of the cell). The edges `derive_cell`
    keeps are solid and coloured by op, the others dashed and pale. The last
    `multiplier` nodes (default: all) feed the output c_{k}.
    """
    diagram = _mixed_diagram(probabilities, primitives, steps, multiplier, title)
    return _render(diagram, _use_graphviz(backend))


# ---------------------------------------------------------------------------
# Choosing a backend
# ---------------------------------------------------------------------------

_dot_found = False  # remembered once true; while false, looked for again, so installing it mid-session works


def _probe_dot() -> bool:
    """Whether `dot` runs: being on PATH is not enough if it is broken."""
    global _dot_found
    if not _dot_found and shutil.which("dot") is not None:
        try:
            graphviz.version()
            _dot_found = True
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError, OSError, RuntimeError):
            pass
    return _dot_found


def _dot_available() -> bool:
    """Whether graphviz can render. Tests monkeypatch this to force the plotly fallback."""
    return _probe_dot()


def _warn_fallback() -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        # Level 4 points at the notebook line that called draw_*:
        # warn <- _warn_fallback <- _use_graphviz <- draw_* <- caller.
        warnings.warn(FALLBACK_WARNING, UserWarning, stacklevel=4)


def _use_graphviz(backend: str) -> bool:
    """Resolve `backend`; "auto" falls back to plotly (warning once) without `dot`.
    Call it straight from a public draw_* function so the warning's stacklevel holds."""
    _check_backend(backend)
    if backend == "auto":
        if _dot_available():
            return True
        _warn_fallback()
        return False
    return backend == "graphviz"


def _render(diagram: _Diagram, use_graphviz: bool):
    return _to_digraph(diagram) if use_graphviz else _to_plotly(diagram)


# ---------------------------------------------------------------------------
# graphviz rendering
# ---------------------------------------------------------------------------

def _hex_alpha(colour: str, alpha: float) -> str:
    """Graphviz reads "#RRGGBBAA" as a colour with opacity."""
    return f"{colour}{round(255 * min(max(alpha, 0.0), 1.0)):02x}"


def _darken(colour: str, factor: float = 0.75) -> str:
    """A darker shade, so labels in light colours (yellow, pink) stay readable."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c * factor):02x}" for c in (r, g, b))


def _to_digraph(diagram: _Diagram) -> graphviz.Digraph:
    g = graphviz.Digraph(
        graph_attr=dict(rankdir="LR", bgcolor="transparent", nodesep="0.25", ranksep="0.5"),
        node_attr=dict(style="filled", shape="rect", fontsize="14", height="0.4", width="0.4",
                       penwidth="1.5", fontname="Helvetica"),
        edge_attr=dict(fontsize="11", fontname="Helvetica", arrowsize="0.7"),
    )
    if diagram.title:
        g.attr(label=diagram.title, labelloc="t", fontname="Helvetica", fontsize="16")
    for node in diagram.nodes:
        g.node(node.id, node.label, fillcolor=NODE_FILL[node.role])
    # Inputs share the first rank, c_{k-2} above c_{k-1} (an invisible edge
    # within a rank fixes their order), and the output takes the last rank,
    # as in the paper's figures.
    with g.subgraph() as s:
        s.attr(rank="source")
        s.edge(*INPUT_LABELS, style="invis")
    with g.subgraph() as s:
        s.attr(rank="sink")
        s.node(OUTPUT_LABEL)
    for e in diagram.edges:
        attrs = {"class": e.kind, "color": _hex_alpha(e.colour, e.alpha), "penwidth": f"{e.width:.2f}",
                 "style": e.style}
        if e.label:
            attrs.update(label=e.label, fontcolor=_hex_alpha(_darken(e.colour), max(e.alpha, 0.6)))
        if e.tooltip:
            attrs.update(tooltip=e.tooltip, labeltooltip=e.tooltip)
        g.edge(e.tail, e.head, **attrs)
    return g


# ---------------------------------------------------------------------------
# plotly rendering (no `dot` needed)
# ---------------------------------------------------------------------------
# Geometry is worked out in pixels (one axis unit is one pixel and the figure
# is sized to match), because plotly sizes markers and text in pixels.

_NODE_PX = {"input": 54, "node": 32, "output": 54}  # square markers, wide enough for "c_{k-2}"
_COLUMN_PX, _ROW_PX, _PAD_PX = 180, 90, 50
_LABEL_CHAR_PX, _LABEL_HALF_HEIGHT_PX = 6.5, 9  # an 11 px label, roughly


def _ranks(diagram: _Diagram) -> dict[str, int]:
    """Column of each node: inputs 0, a node one right of its rightmost input, output last (like dot)."""
    rank = {n.id: 0 for n in diagram.nodes if n.role == "input"}
    into: dict[str, list[str]] = {}
    for e in diagram.edges:
        if e.head != OUTPUT_LABEL:
            into.setdefault(e.head, []).append(e.tail)
    for n in diagram.nodes:  # intermediate nodes only take earlier states, so one pass suffices
        if n.role == "node":
            rank[n.id] = 1 + max((rank[t] for t in into.get(n.id, [])), default=0)
    rank[OUTPUT_LABEL] = 1 + max(rank.values())
    return rank


def _positions(diagram: _Diagram, rank) -> dict[str, tuple[float, float]]:
    """Nodes in columns by rank, spread vertically, first on top as dot does;
    a lone intermediate node zig-zags so that straight edges skipping its
    column pass beside it."""
    columns: dict[int, list[str]] = {}
    for n in diagram.nodes:
        columns.setdefault(rank[n.id], []).append(n.id)
    last = max(columns)
    pos = {}
    for r, ids in columns.items():
        if len(ids) == 1 and 0 < r < last:
            pos[ids[0]] = (r * _COLUMN_PX, 0.4 * _ROW_PX if r % 2 else -0.4 * _ROW_PX)
            continue
        for i, node_id in enumerate(ids):
            pos[node_id] = (r * _COLUMN_PX, ((len(ids) - 1) / 2 - i) * _ROW_PX * (1.2 if r == 0 else 1.0))
    return pos


def _bezier(p0, p2, bend: float, n: int = 24):
    """Points of a quadratic curve from p0 to p2 whose control point sits
    `bend` pixels to the left of the chord's middle (straight when 0)."""
    (x0, y0), (x2, y2) = p0, p2
    dx, dy = x2 - x0, y2 - y0
    length = math.hypot(dx, dy) or 1.0
    cx, cy = (x0 + x2) / 2 - bend * dy / length, (y0 + y2) / 2 + bend * dx / length
    ts = [i / (n - 1) for i in range(n)]
    xs = [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x2 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y2 for t in ts]
    return xs, ys


def _label_index(n: int) -> int:
    """Where on a curve its label goes: past the middle, where edges that
    cross between two columns have parted again."""
    return round(0.6 * (n - 1))


def _hits(xs, ys, boxes) -> int:
    """How many curve points fall inside the boxes ``(x, y, half_width, half_height)``."""
    return sum(1 for x, y in zip(xs, ys) for bx, by, hw, hh in boxes if abs(x - bx) < hw and abs(y - by) < hh)


def _label_box(label: str, xs, ys) -> tuple[float, float, float, float]:
    k = _label_index(len(xs))
    return xs[k], ys[k], _LABEL_CHAR_PX * len(label) / 2, _LABEL_HALF_HEIGHT_PX


def _label_clashes(label: str, curve, label_boxes) -> int:
    """How many placed labels this edge's label would overlap (weighted like
    several curve points: overlapping text is worse than a line through it)."""
    x, y, hw, hh = _label_box(label, *curve)
    return 5 * sum(1 for bx, by, bw, bh in label_boxes if abs(x - bx) < hw + bw and abs(y - by) < hh + bh)


def _route(diagram: _Diagram, pos) -> list[tuple[list, list]]:
    """A curve per edge that keeps off the other nodes and off the labels
    already placed: the first bow that is clear, trying small bows first and
    the outward side (up for an edge coming down) first; the least blocked
    one if none is clear. Repeated (tail, head) pairs never share a bow."""
    role = {n.id: n.role for n in diagram.nodes}
    node_boxes = {i: (x, y, _NODE_PX[role[i]] / 2 + 6, _NODE_PX[role[i]] / 2 + 6) for i, (x, y) in pos.items()}
    label_boxes, used, curves = [], {}, []
    for e in diagram.edges:
        (_, ty), (_, hy) = pos[e.tail], pos[e.head]
        prefer = 1.0 if ty >= hy else -1.0  # a positive bow is to the left of travel: up here
        boxes = [b for i, b in node_boxes.items() if i not in (e.tail, e.head)] + label_boxes
        taken = used.setdefault((e.tail, e.head), set())
        best = None
        for bend in [0.0] + [s * 0.35 * _ROW_PX * m for m in range(1, 7) for s in (prefer, -prefer)]:
            if bend in taken:
                continue
            curve = _bezier(pos[e.tail], pos[e.head], bend)
            hits = _hits(*curve, boxes) + (_label_clashes(e.label, curve, label_boxes) if e.label else 0)
            if best is None or hits < best[0]:
                best = (hits, bend, curve)
            if hits == 0:
                break
        _, bend, (xs, ys) = best
        taken.add(bend)
        curves.append((xs, ys))
        if e.label:
            label_boxes.append(_label_box(e.label, xs, ys))
    return curves


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:.3f})"


_DASH = {"solid": "solid", "dashed": "dash", "dotted": "dot"}


def _edge_trace(e: _Edge, xs, ys):
    import plotly.graph_objects as go

    return go.Scatter(
        x=xs, y=ys, mode="lines", line=dict(color=_rgba(e.colour, e.alpha), width=e.width, dash=_DASH[e.style]),
        hoverinfo="text", hovertext=e.tooltip or f"{e.tail} -> {e.head}", showlegend=False,
        name=e.label or e.kind, meta={"kind": e.kind, "tail": e.tail, "head": e.head},
    )


def _edge_annotations(e: _Edge, xs, ys, head_px: float) -> list[dict]:
    """The arrowhead (an annotation arrow over the curve's last stretch, stopped
    at the head's border) and, for op edges, the label."""
    colour = _rgba(e.colour, e.alpha)
    notes = [dict(
        name="arrow", x=xs[-1], y=ys[-1], ax=xs[-3], ay=ys[-3], xref="x", yref="y", axref="x", ayref="y",
        text="", showarrow=True, arrowhead=2, arrowsize=1, arrowwidth=max(e.width * 0.7, 1.0),
        arrowcolor=colour, standoff=head_px / 2 + 1,
    )]
    if e.label:
        k = _label_index(len(xs))
        notes.append(dict(
            name="label", x=xs[k], y=ys[k], xref="x", yref="y", text=html.escape(e.label), showarrow=False,
            font=dict(size=11, color=_rgba(_darken(e.colour), max(e.alpha, 0.6))), bgcolor="rgba(255,255,255,0.7)",
        ))
    return notes


def _to_plotly(diagram: _Diagram):
    import plotly.graph_objects as go  # imported here: only the fallback needs it

    rank = _ranks(diagram)
    pos = _positions(diagram, rank)
    role = {n.id: n.role for n in diagram.nodes}
    fig = go.Figure()
    annotations = []
    for e, (xs, ys) in zip(diagram.edges, _route(diagram, pos)):
        fig.add_trace(_edge_trace(e, xs, ys))
        annotations += _edge_annotations(e, xs, ys, _NODE_PX[role[e.head]])
    fig.add_trace(go.Scatter(
        x=[pos[n.id][0] for n in diagram.nodes], y=[pos[n.id][1] for n in diagram.nodes],
        mode="markers+text", text=[n.label for n in diagram.nodes], textposition="middle center",
        marker=dict(symbol="square", size=[_NODE_PX[n.role] for n in diagram.nodes],
                    color=[NODE_FILL[n.role] for n in diagram.nodes], line=dict(color="black", width=1.5)),
        hoverinfo="text", hovertext=[n.label for n in diagram.nodes], showlegend=False,
        name="nodes", meta={"kind": "nodes"},
    ))
    # Axis ranges cover every curve; the figure is sized so one unit is one pixel.
    all_x = [x for t in fig.data for x in t.x]
    all_y = [y for t in fig.data for y in t.y]
    x_range = [min(all_x) - _PAD_PX, max(all_x) + _PAD_PX]
    y_range = [min(all_y) - _PAD_PX, max(all_y) + _PAD_PX]
    margin = dict(l=10, r=10, t=50 if diagram.title else 10, b=10)
    fig.update_layout(
        title=diagram.title, annotations=annotations, plot_bgcolor="white", paper_bgcolor="white", margin=margin,
        width=round(x_range[1] - x_range[0]) + margin["l"] + margin["r"],
        height=round(y_range[1] - y_range[0]) + margin["t"] + margin["b"],
        xaxis=dict(visible=False, range=x_range, fixedrange=True),
        yaxis=dict(visible=False, range=y_range, fixedrange=True),
    )
    return fig


# ---------------------------------------------------------------------------
# SVG text and files
# ---------------------------------------------------------------------------

def _no_svg_error() -> RuntimeError:
    return RuntimeError(
        "graphviz's 'dot' program is needed to write SVG files (or the kaleido package, "
        f"to export the plotly fallback). Install it with: {INSTALL_HINT}"
    )


def _plotly_svg(fig) -> str:
    if importlib.util.find_spec("kaleido") is None:
        raise _no_svg_error()
    try:
        return fig.to_image(format="svg").decode()
    except Exception as err:  # kaleido present but unable to run (e.g. no Chrome for kaleido >= 1)
        raise _no_svg_error() from err


def cell_svg(genotype, kind: str = "normal") -> str:
    """The SVG text of `draw_cell(genotype, kind)`.

    Uses graphviz's `dot`; without it, exports the plotly drawing if kaleido is
    installed, else raises RuntimeError saying how to install graphviz.
    """
    diagram = _genotype_diagram(genotype, kind, None)
    if _dot_available():
        try:
            # Plain "svg": "svg_inline" would need Graphviz >= 10 (Debian ships 2.42).
            return _to_digraph(diagram).pipe(format="svg").decode()
        except graphviz.ExecutableNotFound:
            pass
    return _plotly_svg(_to_plotly(diagram))


def save_cell_svgs(genotype, directory, prefix: str = "") -> list[Path]:
    """Write ``{prefix}normal.svg`` and ``{prefix}reduce.svg`` into `directory`
    (created if missing) and return their paths, normal first."""
    directory = Path(directory)
    svgs = {kind: cell_svg(genotype, kind) for kind in KINDS}  # render both before writing either
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind, svg in svgs.items():
        path = directory / f"{prefix}{kind}.svg"
        path.write_text(svg, encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Several cells side by side in a notebook
# ---------------------------------------------------------------------------

def _inline_svg(svg: str) -> str:
    """The <svg> element alone: the XML prolog and DOCTYPE do not belong inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def draw_genotypes(genotypes: dict, kind: str = "normal", *, backend: str = "auto"):
    """Show the `kind` cell of several genotypes side by side, each captioned by its name.

    Returns an `IPython.display.HTML` flex row of SVGs (no widgets needed), or
    a list of plotly figures (titled by name) where `dot` is missing.
    """
    _check_kind(kind)
    diagrams = {}
    for name, g in genotypes.items():
        try:
            diagrams[str(name)] = _genotype_diagram(g, kind, None)
        except GenotypeError as err:  # say which of the genotypes is malformed
            raise GenotypeError(f"{name}: {err}") from None
    if not _use_graphviz(backend):
        for name, d in diagrams.items():
            d.title = name
        return [_to_plotly(d) for d in diagrams.values()]
    from IPython.display import HTML  # IPython comes with Jupyter; only this path needs it

    items = [_captioned(_inline_svg(_to_digraph(d).pipe(format="svg").decode()), name) for name, d in diagrams.items()]
    return HTML(
        '<div class="nasedu-cells" style="display:flex;flex-wrap:wrap;gap:24px;align-items:flex-end">'
        + "".join(items) + "</div>"
    )


def _captioned(svg: str, caption: str) -> str:
    return (
        '<figure style="margin:0;display:flex;flex-direction:column;align-items:center">'
        f'{svg}<figcaption style="font-family:sans-serif;margin-top:4px">{html.escape(caption)}</figcaption>'
        "</figure>"
    )

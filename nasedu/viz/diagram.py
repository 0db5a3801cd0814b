"""Drawings of architectures, described once and rendered by graphviz or plotly.

Every drawing (a DARTS cell, a NAS-Bench-201 cell, a NAS-Bench-Macro chain)
is first described backend-free (`Diagram`: nodes and edges with their label,
colour, width, opacity and style) and then rendered, by graphviz when its
`dot` program is installed, else by plotly. So both backends show the same
thing and the rules (what is highlighted, how strength maps to width) live in
one place. An element that shows one decision of an architecture carries that
decision's key, which becomes its id in the SVG: `mark_changed` finds the
decisions that changed and marks them.
"""
from __future__ import annotations

import html
import importlib.util
import math
import re
import shutil
import warnings
from dataclasses import dataclass, field

import graphviz

from ..architecture import element_id

__all__ = ["Diagram", "Node", "Edge", "render", "diagram_svg", "mark_changed", "op_colour", "OP_COLOURS",
           "use_graphviz", "to_digraph", "to_plotly", "inline_svg"]

BACKENDS = ("auto", "graphviz", "plotly")

# Tableau 10, a qualitative palette whose colours stay apart for most colour
# vision. `skip_connect` (red, solid) and `none` (grey, dotted) are the two a
# reader must never confuse: a cell full of skips is the classic DARTS failure.
# NAS-Bench-201's and NAS-Bench-Macro's operations reuse the palette by kind.
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
    "nor_conv_1x1": "#76b7b2",
    "nor_conv_3x3": "#4e79a7",
    "id": "#e15759",
    "ir_3x3_t3": "#4e79a7",
    "ir_5x5_t6": "#b07aa1",
}
UNKNOWN_OP_COLOUR = "#555555"
CONCAT_COLOUR = "#9e9e9e"
CHANGED_GLOW = "#ff9f1c"

# The DARTS code (visualize.py) fills inputs, intermediate nodes and the
# output with these X11 colours; keeping them makes our figures read like the paper's.
NODE_FILL = {"input": "#b4eeb4", "node": "#add8e6", "output": "#eee8aa"}  # darkseagreen2, lightblue, palegoldenrod

INSTALL_HINT = (
    "sudo apt-get install graphviz (Debian/Ubuntu), brew install graphviz (macOS) "
    "or conda install -c conda-forge python-graphviz"
)
FALLBACK_WARNING = (
    "graphviz's 'dot' program was not found, so cells are drawn with plotly. "
    f"Install it with: {INSTALL_HINT}"
)
_fallback_warned = False  # the warning is shown once per process, not per drawing


@dataclass
class Node:
    id: str
    label: str
    role: str  # "input", "node" or "output"
    key: str = ""  # the decision this node shows (NAS-Bench-Macro's layers), if any
    fill: str = ""  # overrides the role's fill colour


@dataclass
class Edge:
    tail: str
    head: str
    kind: str  # "op" or "concat" (a discrete cell); "kept" or "dropped" (a mixed cell)
    label: str = ""
    colour: str = CONCAT_COLOUR
    alpha: float = 1.0
    width: float = 1.5
    style: str = "solid"  # "solid", "dashed" or "dotted"
    tooltip: str = ""
    key: str = ""  # the decision this edge shows, if any


@dataclass
class Diagram:
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    title: str | None = None


def op_colour(op: str) -> str:
    """The fixed colour of operation `op` (grey-black for names we do not know)."""
    return OP_COLOURS.get(op, UNKNOWN_OP_COLOUR)


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


def _warn_fallback(stacklevel: int) -> None:
    global _fallback_warned
    if not _fallback_warned:
        _fallback_warned = True
        warnings.warn(FALLBACK_WARNING, UserWarning, stacklevel=stacklevel)


def use_graphviz(backend: str, stacklevel: int = 4) -> bool:
    """Resolve `backend`; "auto" falls back to plotly (warning once) without `dot`.
    `stacklevel` points the warning at the learner's line: 4 when called
    straight from a public draw_* function (warn <- _warn_fallback <-
    use_graphviz <- draw_* <- the learner's line)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        if _dot_available():
            return True
        _warn_fallback(stacklevel)
        return False
    return backend == "graphviz"


def render(diagram: Diagram, backend: str = "auto", stacklevel: int = 5):
    """`diagram` as a `graphviz.Digraph` (shown inline as SVG in Jupyter), or a
    plotly `Figure` with the same layout where `dot` is missing."""
    return to_digraph(diagram) if use_graphviz(backend, stacklevel) else to_plotly(diagram)


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


def to_digraph(diagram: Diagram) -> graphviz.Digraph:
    g = graphviz.Digraph(
        graph_attr=dict(rankdir="LR", bgcolor="transparent", nodesep="0.25", ranksep="0.5"),
        node_attr=dict(style="filled", shape="rect", fontsize="14", height="0.4", width="0.4",
                       penwidth="1.5", fontname="Helvetica"),
        edge_attr=dict(fontsize="11", fontname="Helvetica", arrowsize="0.7"),
    )
    if diagram.title:
        g.attr(label=diagram.title, labelloc="t", fontname="Helvetica", fontsize="16")
    for node in diagram.nodes:
        attrs = {"id": element_id(node.key)} if node.key else {}
        g.node(node.id, node.label, fillcolor=node.fill or NODE_FILL[node.role], **attrs)
    # Inputs share the first rank in their order (c_{k-2} above c_{k-1}: an
    # invisible edge within a rank fixes it), and outputs take the last rank,
    # as in the papers' figures.
    inputs = [n.id for n in diagram.nodes if n.role == "input"]
    with g.subgraph() as s:
        s.attr(rank="source")
        for tail, head in zip(inputs, inputs[1:]):
            s.edge(tail, head, style="invis")
        for node_id in inputs[:1]:
            s.node(node_id)
    with g.subgraph() as s:
        s.attr(rank="sink")
        for n in diagram.nodes:
            if n.role == "output":
                s.node(n.id)
    for e in diagram.edges:
        attrs = {"class": e.kind, "color": _hex_alpha(e.colour, e.alpha), "penwidth": f"{e.width:.2f}",
                 "style": e.style}
        if e.key:
            attrs["id"] = element_id(e.key)
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


def _ranks(diagram: Diagram) -> dict[str, int]:
    """Column of each node: inputs 0, a node one right of its rightmost input, output last (like dot)."""
    rank = {n.id: 0 for n in diagram.nodes if n.role == "input"}
    into: dict[str, list[str]] = {}
    for e in diagram.edges:
        into.setdefault(e.head, []).append(e.tail)
    for n in diagram.nodes:  # intermediate nodes only take earlier states, so one pass suffices
        if n.role == "node":
            rank[n.id] = 1 + max((rank[t] for t in into.get(n.id, []) if t in rank), default=0)
    last = 1 + max(rank.values())
    for n in diagram.nodes:
        if n.role == "output":
            rank[n.id] = last
    return rank


def _positions(diagram: Diagram, rank) -> dict[str, tuple[float, float]]:
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


def _route(diagram: Diagram, pos) -> list[tuple[list, list]]:
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


def _edge_trace(e: Edge, xs, ys):
    import plotly.graph_objects as go

    return go.Scatter(
        x=xs, y=ys, mode="lines", line=dict(color=_rgba(e.colour, e.alpha), width=e.width, dash=_DASH[e.style]),
        hoverinfo="text", hovertext=e.tooltip or f"{e.tail} -> {e.head}", showlegend=False,
        name=e.label or e.kind, meta={"kind": e.kind, "tail": e.tail, "head": e.head},
    )


def _edge_annotations(e: Edge, xs, ys, head_px: float) -> list[dict]:
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


def to_plotly(diagram: Diagram):
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
                    color=[n.fill or NODE_FILL[n.role] for n in diagram.nodes], line=dict(color="black", width=1.5)),
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
# SVG text, and marking what changed
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


def diagram_svg(diagram: Diagram) -> str:
    """The SVG text of `diagram`: graphviz's `dot`; without it the plotly
    drawing exported by kaleido if installed, else RuntimeError saying how to
    install graphviz."""
    if _dot_available():
        try:
            # Plain "svg": "svg_inline" would need Graphviz >= 10 (Debian ships 2.42).
            return to_digraph(diagram).pipe(format="svg").decode()
        except graphviz.ExecutableNotFound:
            pass
    return _plotly_svg(to_plotly(diagram))


def inline_svg(svg: str) -> str:
    """The <svg> element alone: the XML prolog and DOCTYPE do not belong inside HTML."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


_GROUP_START = re.compile(r'<g id="([^"]*)" class="(?:edge|node)[^"]*">')


def mark_changed(svg: str, keys) -> str:
    """Highlight the elements of a graphviz SVG that show the decisions
    `keys`: thicker pen, a glow, bold label."""
    ids = {element_id(k) for k in keys}
    if not ids:
        return svg
    starts = [m.start() for m in _GROUP_START.finditer(svg)] + [len(svg)]
    pieces = [svg[:starts[0]]]
    for a, b in zip(starts, starts[1:]):
        part = svg[a:b]
        if _GROUP_START.match(part).group(1) in ids:
            part = part.replace('class="', f'style="filter: drop-shadow(0 0 3px {CHANGED_GLOW})" class="', 1)
            part = re.sub(r'stroke-width="[\d.]+"', 'stroke-width="4"', part)
            part = part.replace("<text ", '<text font-weight="bold" ')
        pieces.append(part)
    return "".join(pieces)

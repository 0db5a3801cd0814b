"""Cells drawn as in the DARTS paper (Liu et al. 2019, Figures 4-5).

A cell is a small DAG: two inputs (the outputs of the two previous cells,
c_{k-2} and c_{k-1}), numbered intermediate nodes, and the output c_{k}, the
concatenation of some states. Every edge carries an operation.

Each drawing is described as a backend-free `nasedu.viz.diagram.Diagram` and
rendered by graphviz, or by plotly where graphviz's `dot` is missing.
"""
from __future__ import annotations

import html
from pathlib import Path

import torch

from ..architecture import Architecture
from ..genotypes import GenotypeError, cell_decisions, state_name, derive_cell, edge_endpoints, num_edges, validate_genotype
from ..ops import PRIMITIVES
from .diagram import (OP_COLOURS, Diagram, Edge, Node, diagram_svg, inline_svg, op_colour, render, to_digraph,
                      to_plotly, use_graphviz)

__all__ = ["draw_cell", "draw_mixed_cell", "cell_svg", "save_cell_svgs", "draw_genotypes", "genotype_diagram",
           "OP_COLOURS"]

KINDS = ("normal", "reduce")
DROPPED_COLOUR = "#9e9e9e"
INPUT_LABELS = ("c_{k-2}", "c_{k-1}")
OUTPUT_LABEL = "c_{k}"


def _skeleton(steps: int, title: str | None) -> Diagram:
    """Inputs, `steps` numbered nodes and the output, no edges yet."""
    nodes = [Node(label, label, "input") for label in INPUT_LABELS]
    nodes += [Node(str(i), str(i), "node") for i in range(steps)]
    nodes.append(Node(OUTPUT_LABEL, OUTPUT_LABEL, "output"))
    return Diagram(nodes=nodes, title=title)


def _add_concat_edges(diagram: Diagram, concat) -> None:
    for state in concat:
        diagram.edges.append(Edge(state_name(state), OUTPUT_LABEL, "concat"))


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


# ---------------------------------------------------------------------------
# Discrete cells (a genotype)
# ---------------------------------------------------------------------------

def genotype_diagram(genotype, kind: str, title: str | None = None) -> Diagram:
    """The `kind` cell of `genotype` as a backend-free `Diagram`; each op edge
    carries its decision key (see `Genotype.decisions`)."""
    _check_kind(kind)
    g = validate_genotype(genotype)
    pairs, concat = getattr(g, kind), getattr(g, f"{kind}_concat")
    diagram = _skeleton(len(pairs) // 2, title)
    for key, op, j, node in cell_decisions(g, kind):
        tail, head = state_name(j), str(node)
        diagram.edges.append(Edge(
            tail, head, "op", label=op, colour=op_colour(op), width=2.0,
            style="dotted" if op == "none" else "solid", tooltip=f"{op}: {tail} -> {head}", key=key,
        ))
    _add_concat_edges(diagram, concat)
    return diagram


def draw_cell(genotype, kind: str = "normal", *, title: str | None = None, backend: str = "auto"):
    """Draw the `kind` ("normal" or "reduce") cell of `genotype` as DARTS Figures 4-5 do.

    Returns a `graphviz.Digraph` (shown inline as SVG in Jupyter), or a plotly
    `Figure` with the same layout where graphviz's `dot` is not installed.
    `backend` forces one: "auto" (default), "graphviz" or "plotly".
    """
    diagram = genotype_diagram(genotype, kind, title)  # validate before choosing a backend
    return render(diagram, backend)


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


def _mixed_diagram(probabilities, primitives, steps, multiplier, title) -> Diagram:
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
        tail, head = state_name(j), state_name(state)
        common = dict(label=f"{op} {strength:.2f}", tooltip=_mixed_tooltip(row, primitives, tail, head))
        if (j, state) in kept:
            edge = Edge(tail, head, "kept", colour=op_colour(op), alpha=0.45 + 0.55 * rel,
                         width=1.5 + 3.0 * rel, style="solid", **common)
        else:
            edge = Edge(tail, head, "dropped", colour=DROPPED_COLOUR, alpha=0.15 + 0.45 * rel,
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
    return render(diagram, backend)


# ---------------------------------------------------------------------------
# SVG text and files
# ---------------------------------------------------------------------------

def cell_svg(genotype, kind: str = "normal") -> str:
    """The SVG text of `draw_cell(genotype, kind)`.

    Uses graphviz's `dot`; without it, exports the plotly drawing if kaleido is
    installed, else raises RuntimeError saying how to install graphviz.
    """
    return diagram_svg(genotype_diagram(genotype, kind, None))


def save_cell_svgs(architecture, directory, prefix: str = "") -> list[Path]:
    """Write one SVG per part of `architecture` into `directory` (created if
    missing), ``{prefix}{part}.svg``, and return their paths in part order: for
    a genotype ``normal.svg`` then ``reduce.svg``."""
    if not isinstance(architecture, Architecture):
        architecture = validate_genotype(architecture)
    directory = Path(directory)
    svgs = {part: architecture.svg(part) for part in architecture.parts}  # render all before writing any
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for part, svg in svgs.items():
        path = directory / f"{prefix}{part}.svg"
        path.write_text(svg, encoding="utf-8")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# Several cells side by side in a notebook
# ---------------------------------------------------------------------------

def draw_genotypes(genotypes: dict, kind: str = "normal", *, backend: str = "auto"):
    """Show the `kind` cell of several genotypes side by side, each captioned by its name.

    Returns an `IPython.display.HTML` flex row of SVGs (no widgets needed), or
    a list of plotly figures (titled by name) where `dot` is missing.
    """
    _check_kind(kind)
    diagrams = {}
    for name, g in genotypes.items():
        try:
            diagrams[str(name)] = genotype_diagram(g, kind, None)
        except GenotypeError as err:  # say which of the genotypes is malformed
            raise GenotypeError(f"{name}: {err}") from None
    if not use_graphviz(backend):
        for name, d in diagrams.items():
            d.title = name
        return [to_plotly(d) for d in diagrams.values()]
    from IPython.display import HTML  # IPython comes with Jupyter; only this path needs it

    items = [_captioned(inline_svg(to_digraph(d).pipe(format="svg").decode()), name) for name, d in diagrams.items()]
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

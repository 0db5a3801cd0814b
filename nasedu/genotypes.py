"""Genotypes: a discrete cell written as data, as in the DARTS code.

``Genotype(normal, normal_concat, reduce, reduce_concat)``: `normal` and
`reduce` list ``(op_name, input_index)`` pairs, two per intermediate node;
inputs 0 and 1 are the outputs of the two previous cells (c_{k-2}, c_{k-1}),
input j >= 2 is intermediate node j - 2. `*_concat` lists the states whose
concatenation is the cell's output.

`derive_genotype` turns continuous edge weights into a genotype by the DARTS
rule (Liu et al. 2019, Section 2.4), exactly as the DARTS code does it.

A `Genotype` is the DARTS cell space's `nasedu.architecture.Architecture`:
besides the four fields it has `to_json`, `decisions` and `draw`.
"""
from __future__ import annotations

import ast
import json
import os
from collections import namedtuple

import torch

from .architecture import Architecture, ArchitectureError
from .ops import OPS, PRIMITIVES

__all__ = [
    "Genotype", "PRIMITIVES", "GENOTYPES", "GenotypeError", "derive_genotype", "derive_cell",
    "num_edges", "edge_endpoints", "edge_labels", "state_name", "cell_decisions", "validate_genotype",
    "genotype_to_json", "genotype_from_json", "parse_genotype", "load_genotype", "save_genotype",
    "NASNet", "AmoebaNet", "DARTS_V1", "DARTS_V2", "DARTS", "PC_DARTS", "PDARTS",
]

KIND_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}


class GenotypeError(ArchitectureError):
    """A genotype that is malformed: the message says where and how to fix it."""


def num_edges(steps: int) -> int:
    """Edges of a DARTS cell: intermediate node i has 2 + i inputs (14 for 4 steps)."""
    return sum(2 + i for i in range(steps))


def edge_endpoints(steps: int) -> list[tuple[int, int]]:
    """``(input_index, node_index)`` of every edge, in the order alpha's rows use."""
    return [(j, i + 2) for i in range(steps) for j in range(2 + i)]


def state_name(j: int) -> str:
    """State j of a cell as the DARTS paper names it: c_{k-2}, c_{k-1}, then node j-2."""
    return ("c_{k-2}", "c_{k-1}")[j] if j < 2 else str(j - 2)


def edge_labels(steps: int) -> list[str]:
    """Readable labels of a cell's edges in `edge_endpoints` order, e.g. ``c_{k-1} -> 0``."""
    return [f"{state_name(j)} -> {i - 2}" for j, i in edge_endpoints(steps)]


def cell_decisions(genotype, kind: str) -> list[tuple[str, str, int, int]]:
    """``(key, op, input j, node)`` of every pair of the `kind` cell, the key
    naming the edge (``"normal cell: c_{k-1} -> 0"``; a second pair on the same
    edge, as in NASNet, gets " (2)")."""
    seen, out = {}, []
    for k, (op, j) in enumerate(getattr(genotype, kind)):
        key = f"{KIND_TITLES[kind]}: {state_name(j)} -> {k // 2}"
        seen[key] = seen.get(key, 0) + 1
        out.append((key if seen[key] == 1 else f"{key} ({seen[key]})", op, j, k // 2))
    return out


class Genotype(namedtuple("Genotype", "normal normal_concat reduce reduce_concat"), Architecture):
    """A discrete DARTS cell pair, exactly as the DARTS code writes it (see the module docstring)."""

    __slots__ = ()
    parts = ("normal", "reduce")
    part_titles = KIND_TITLES

    def to_data(self) -> dict:
        return {f: [list(p) if isinstance(p, tuple) else p for p in getattr(self, f)] for f in self._fields}

    def decisions(self) -> dict:
        return {key: op for kind in self.parts for key, op, _, _ in cell_decisions(self, kind)}

    def diagram(self, part, title=None):
        from .viz.cells import genotype_diagram

        return genotype_diagram(self, part, title)


# ---------------------------------------------------------------------------
# Deriving a discrete cell from continuous weights (DARTS, Section 2.4)
# ---------------------------------------------------------------------------

def derive_cell(weights, steps: int = 4, primitives=PRIMITIVES) -> list[tuple[str, int]]:
    """The DARTS rule on one cell's per-edge operation probabilities `weights`
    (shape ``[num_edges(steps), len(primitives)]``).

    For each intermediate node keep the two incoming edges whose strongest
    non-`none` weight is largest (strongest first; ties go to the lower input),
    and on each kept edge its strongest non-`none` operation (ties: lower index).
    """
    W = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
    candidates = [k for k, name in enumerate(primitives) if name != "none"]
    gene, start = [], 0
    for i in range(steps):
        rows = W[start:start + i + 2][:, candidates]
        strength = rows.max(dim=1).values.tolist()
        # Python's sort is stable, so equal strengths keep the lower input first.
        edges = sorted(range(i + 2), key=lambda j: -strength[j])[:2]
        for j in edges:
            row = rows[j].tolist()
            best = max(range(len(row)), key=lambda k: (row[k], -k))
            gene.append((primitives[candidates[best]], j))
        start += i + 2
    return gene


def _check_alpha(name, alpha, steps, primitives):
    expected = (num_edges(steps), len(primitives))
    shape = tuple(torch.as_tensor(alpha).shape)
    if shape != expected:
        raise GenotypeError(
            f"{name} has shape {shape}, expected {expected}: one row per edge "
            f"({steps} steps give {expected[0]} edges) and one column per operation "
            f"({len(primitives)} primitives)"
        )


def derive_genotype(alpha_normal, alpha_reduce, steps: int = 4, multiplier: int = 4,
                    primitives=PRIMITIVES, *, logits: bool = True) -> Genotype:
    """Derive the discrete cells from architecture weights, as DARTS does.

    `alpha_*` are logits (``[edges, ops]``); each row is turned into
    probabilities by a softmax over every operation, `none` included (Eq. 1).
    Strategies that already hold probabilities (theta) pass ``logits=False``.
    The output concatenates the last `multiplier` nodes.
    """
    primitives = list(primitives)
    cells = []
    for name, alpha in (("alpha_normal", alpha_normal), ("alpha_reduce", alpha_reduce)):
        _check_alpha(name, alpha, steps, primitives)
        a = torch.as_tensor(alpha, dtype=torch.float64).detach().cpu()
        cells.append(derive_cell(a.softmax(dim=-1) if logits else a, steps, primitives))
    concat = list(range(2 + steps - multiplier, steps + 2))
    return Genotype(normal=cells[0], normal_concat=concat, reduce=cells[1], reduce_concat=list(concat))


# ---------------------------------------------------------------------------
# Validation, JSON and parsing the printed form
# ---------------------------------------------------------------------------

def _validate_cell(field, cell, concat, known_ops):
    if not isinstance(cell, (list, tuple)) or len(cell) == 0 or len(cell) % 2:
        n = len(cell) if isinstance(cell, (list, tuple)) else "no"
        raise GenotypeError(f"{field}: expected two (op, input) pairs per intermediate node, got {n} pairs")
    steps = len(cell) // 2
    for k, pair in enumerate(cell):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise GenotypeError(f"{field}[{k}]: expected a pair like ('sep_conv_3x3', 0), got {pair!r}")
        op, j = pair
        if op not in known_ops:
            raise GenotypeError(f"{field}[{k}]: unknown operation {op!r}; known operations are: {', '.join(known_ops)}")
        node = k // 2
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < node + 2:
            raise GenotypeError(
                f"{field}[{k}]: input index {j!r} out of range for intermediate node {node} "
                f"(its inputs are 0..{node + 1}: the two previous cells and the nodes before it)"
            )
    bad = [c for c in concat if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < steps + 2]
    if bad or not list(concat):
        raise GenotypeError(f"{field}_concat: indices {bad or 'none given'} outside 0..{steps + 1} for a cell with {steps} nodes")


def validate_genotype(genotype, known_ops=None) -> Genotype:
    """Check every field and return a `Genotype` with tuples and lists normalised."""
    known_ops = list(OPS) if known_ops is None else list(known_ops)
    if not isinstance(genotype, tuple) or len(genotype) != 4:
        raise GenotypeError(f"expected Genotype(normal, normal_concat, reduce, reduce_concat), got {genotype!r:.80}")
    g = Genotype(*genotype)
    _validate_cell("normal", g.normal, list(g.normal_concat), known_ops)
    _validate_cell("reduce", g.reduce, list(g.reduce_concat), known_ops)
    return Genotype(
        normal=[(op, j) for op, j in g.normal], normal_concat=list(g.normal_concat),
        reduce=[(op, j) for op, j in g.reduce], reduce_concat=list(g.reduce_concat),
    )


def genotype_to_json(genotype: Genotype) -> str:
    return validate_genotype(genotype).to_json()


def genotype_from_json(text: str) -> Genotype:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise GenotypeError(f"not valid JSON: {e}") from None
    return genotype_from_data(data)


def genotype_from_data(data) -> Genotype:
    """The genotype of `Genotype.to_data`'s dict."""
    missing = [f for f in Genotype._fields if not isinstance(data, dict) or f not in data]
    if missing:
        raise GenotypeError(f"genotype JSON lacks field(s) {missing}; expected {list(Genotype._fields)}")
    return validate_genotype(Genotype(
        normal=[tuple(p) if isinstance(p, list) else p for p in data["normal"]],
        normal_concat=data["normal_concat"],
        reduce=[tuple(p) if isinstance(p, list) else p for p in data["reduce"]],
        reduce_concat=data["reduce_concat"],
    ))


def _literal(node, where):
    """Evaluate the few literal forms a printed genotype uses, never code."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, where) for e in node.elts]
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
            and not node.keywords and 1 <= len(node.args) <= 3):
        return list(range(*[_literal(a, where) for a in node.args]))
    raise GenotypeError(f"{where}: cannot read {ast.unparse(node)!r}; expected a list of ('op', input) pairs, a list of ints or range(a, b)")


def parse_genotype(text: str) -> Genotype:
    """Parse ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``,
    the text `print(genotype)` gives here and in the papers' code. No `eval`."""
    text = text.strip()
    if "=" in text.split("Genotype", 1)[0]:  # "DARTS_V2 = Genotype(...)" as in genotypes.py files
        text = text.split("=", 1)[1].strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        raise GenotypeError(f"cannot parse genotype text (line {e.lineno}, column {e.offset}): {e.msg}") from None
    if not (isinstance(tree, ast.Call) and getattr(tree.func, "id", None) == "Genotype"):
        raise GenotypeError("expected text of the form Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])")
    fields = dict(zip(Genotype._fields, [_literal(a, Genotype._fields[i]) for i, a in enumerate(tree.args)]))
    for kw in tree.keywords:
        if kw.arg not in Genotype._fields:
            raise GenotypeError(f"unknown field {kw.arg!r}; a genotype has {list(Genotype._fields)}")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    missing = [f for f in Genotype._fields if f not in fields]
    if missing:
        raise GenotypeError(f"genotype text lacks field(s) {missing}")
    for f in ("normal", "reduce"):
        fields[f] = [tuple(p) if isinstance(p, list) else p for p in fields[f]]
    return validate_genotype(Genotype(**fields))


def save_genotype(genotype: Genotype, path) -> None:
    with open(path, "w") as f:
        f.write(genotype_to_json(genotype) + "\n")


def load_genotype(name_or_path) -> Genotype:
    """A published genotype by name (see `GENOTYPES`), or a file holding JSON
    or the printed form."""
    if isinstance(name_or_path, tuple):
        return validate_genotype(name_or_path)
    key = str(name_or_path)
    if key in GENOTYPES:
        return GENOTYPES[key]
    if os.path.isfile(key):
        with open(key) as f:
            text = f.read()
        return genotype_from_json(text) if text.lstrip().startswith("{") else parse_genotype(text)
    raise GenotypeError(
        f"{key!r} is neither a published genotype nor a file; published genotypes: {', '.join(GENOTYPES)}"
    )


# ---------------------------------------------------------------------------
# Published cells, as the papers' code prints them
# ---------------------------------------------------------------------------

# Zoph et al. 2018, "Learning Transferable Architectures" (NASNet-A), as
# transcribed in the DARTS code (quark0/darts, cnn/genotypes.py).
NASNet = Genotype(
    normal=[("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1), ("skip_connect", 1)],
    normal_concat=[2, 3, 4, 5, 6],
    reduce=[("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
    reduce_concat=[4, 5, 6],
)

# Real et al. 2019, "Regularized Evolution" (AmoebaNet-A), same source.
AmoebaNet = Genotype(
    normal=[("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 1)],
    normal_concat=[4, 5, 6],
    reduce=[("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
    reduce_concat=[3, 4, 6],
)

# Liu et al. 2019, DARTS first order (3.0 +- 0.14 % test error, 3.3M params), same source.
DARTS_V1 = Genotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)

# Liu et al. 2019, DARTS second order (2.76 +- 0.09 % test error, 3.3M params), same source.
DARTS_V2 = Genotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)

# Xu et al. 2020, PC-DARTS, CIFAR-10 search (yuhuixu1993/PC-DARTS, genotypes.py).
PC_DARTS = Genotype(
    normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
    reduce_concat=[2, 3, 4, 5],
)

# Chen et al. 2019, P-DARTS, CIFAR-10 search (chenxin061/pdarts, genotypes.py).
PDARTS = Genotype(
    normal=[("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
    reduce_concat=[2, 3, 4, 5],
)

GENOTYPES = {
    "NASNet": NASNet,
    "AmoebaNet": AmoebaNet,
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "PC_DARTS": PC_DARTS,
    "PDARTS": PDARTS,
}
DARTS = DARTS_V2

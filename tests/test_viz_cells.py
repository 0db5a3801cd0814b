"""Cell drawings: graphviz source and SVG, the mixed (supernet) cell, and the plotly fallback."""
import re
import shutil
import warnings
import xml.etree.ElementTree as ET

import pytest
import torch

from nasedu.genotypes import DARTS_V2, GENOTYPES, NASNet, Genotype, GenotypeError, derive_cell, num_edges
from nasedu.ops import PRIMITIVES
from nasedu.viz import cell_svg, draw_cell, draw_genotypes, draw_mixed_cell, save_cell_svgs
from nasedu.viz import diagram

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot is not installed")

# `"c_{k-2}" -> 0 [label=sep_conv_3x3 class=op ...]`: tail, head and the attribute list.
EDGE = re.compile(r'^\s*("[^"]+"|\w+) -> ("[^"]+"|\w+) \[(.*)\]$', re.M)


def _edges(source: str, kind: str) -> list[tuple[str, str, str]]:
    """(tail, head, attributes) of the edges of one class in a Digraph's source."""
    return [(t.strip('"'), h.strip('"'), attrs) for t, h, attrs in EDGE.findall(source)
            if re.search(rf"\bclass={kind}\b", attrs)]


def _state(j: int) -> str:
    return ("c_{k-2}", "c_{k-1}")[j] if j < 2 else str(j - 2)


@pytest.fixture
def forced_plotly(monkeypatch):
    """Pretend `dot` is missing and the one-time warning has not been shown yet."""
    monkeypatch.setattr(diagram, "_dot_available", lambda: False)
    monkeypatch.setattr(diagram, "_fallback_warned", False)


# ---------------------------------------------------------------------------
# draw_cell
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind", [("DARTS_V2", "normal"), ("DARTS_V2", "reduce"), ("NASNet", "normal"),
                                        ("NASNet", "reduce"), ("AmoebaNet", "reduce")])
def test_op_edges_match_the_genotype_pairs(name, kind):
    g = GENOTYPES[name]
    source = draw_cell(g, kind, backend="graphviz").source
    op_edges = _edges(source, "op")
    expected = [(_state(j), str(k // 2), op) for k, (op, j) in enumerate(getattr(g, kind))]
    assert len(op_edges) == len(getattr(g, kind))  # 8 for DARTS, 10 for NASNet/AmoebaNet
    assert [(t, h, re.search(r"label=(\w+)", a).group(1)) for t, h, a in op_edges] == expected
    concat = _edges(source, "concat")
    assert sorted(t for t, _, _ in concat) == sorted(_state(j) for j in getattr(g, f"{kind}_concat"))
    assert {h for _, h, _ in concat} == {"c_{k}"}


def test_nasnet_has_five_nodes_and_partial_concat():
    source = draw_cell(NASNet, "reduce", backend="graphviz").source
    assert re.search(r"^\s*4 \[label=4", source, re.M) and not re.search(r"^\s*5 \[", source, re.M)
    assert sorted(t for t, _, _ in _edges(source, "concat")) == ["2", "3", "4"]  # reduce_concat [4, 5, 6]


def test_skip_and_none_are_distinguishable():
    g = Genotype(normal=[("skip_connect", 0), ("none", 1)], normal_concat=[2],
                 reduce=[("skip_connect", 0), ("none", 1)], reduce_concat=[2])
    (_, _, skip), (_, _, none) = _edges(draw_cell(g, backend="graphviz").source, "op")
    colour = lambda attrs: re.search(r'color="(#\w+)"', attrs).group(1)
    assert colour(skip) != colour(none)
    assert "style=solid" in skip and "style=dotted" in none


def test_invalid_kind_raises():
    with pytest.raises(ValueError, match="normal.*reduce"):
        draw_cell(DARTS_V2, "reduction")


def test_malformed_genotype_gives_the_validation_error():
    bad = Genotype(normal=[("sep_conv_3x3", 5), ("sep_conv_3x3", 1)], normal_concat=[2],
                   reduce=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], reduce_concat=[2])
    with pytest.raises(GenotypeError, match="out of range"):
        draw_cell(bad)


def test_digraph_displays_as_svg_in_jupyter():
    g = draw_cell(DARTS_V2, backend="graphviz")
    assert hasattr(g, "_repr_mimebundle_")
    assert 'rankdir=LR' in g.source


@needs_dot
def test_svg_has_every_op_and_node_label():
    svg = cell_svg(DARTS_V2, "normal")
    # Read the text as a browser would: graphviz writes "-" as "&#45;".
    texts = [el.text for el in ET.fromstring(svg).iter() if el.tag.endswith("}text")]
    assert {op for op, _ in DARTS_V2.normal} <= set(texts)
    assert {"c_{k-2}", "c_{k-1}", "c_{k}", "0", "1", "2", "3"} <= set(texts)
    assert svg.count('class="edge op"') == 8 and svg.count('class="edge concat"') == 4


# ---------------------------------------------------------------------------
# draw_mixed_cell
# ---------------------------------------------------------------------------

def _hand_made_probabilities() -> torch.Tensor:
    """4 steps; each edge's row puts most mass on one op. `none` is strongest on
    edge (c_{k-1} -> 1) so that it must be ignored when ranking edges."""
    torch.manual_seed(0)
    P = torch.rand(num_edges(4), len(PRIMITIVES)) * 0.05
    favourites = [4, 3, 5, 0, 1, 6, 2, 3, 4, 7, 4, 5, 6, 3]  # one op index per edge row
    for row, k in enumerate(favourites):
        P[row, k] = 0.2 + 0.05 * ((row * 7) % 11)
    return P / P.sum(dim=1, keepdim=True)


def test_mixed_cell_highlights_exactly_the_derived_edges():
    P = _hand_made_probabilities()
    source = draw_mixed_cell(P, backend="graphviz").source
    kept, dropped = _edges(source, "kept"), _edges(source, "dropped")
    expected = {(_state(j), str(k // 2)) for k, (_, j) in enumerate(derive_cell(P, 4, PRIMITIVES))}
    assert {(t, h) for t, h, _ in kept} == expected and len(kept) == 8
    assert len(dropped) == num_edges(4) - 8
    assert all("style=solid" in a for _, _, a in kept) and all("style=dashed" in a for _, _, a in dropped)
    # Kept edges carry the op derive_cell chose, with its probability.
    chosen = {(_state(j), str(k // 2)): op for k, (op, j) in enumerate(derive_cell(P, 4, PRIMITIVES))}
    for t, h, attrs in kept:
        assert re.search(rf'label="{chosen[(t, h)]} 0\.\d\d"', attrs)
    # The strongest edge of the cell is drawn widest.
    widths = [float(re.search(r"penwidth=([\d.]+)", a).group(1)) for _, _, a in kept + dropped]
    assert max(widths) == pytest.approx(4.5)
    assert _edges(source, "concat") and len(_edges(source, "concat")) == 4


def test_mixed_cell_labels_skip_none_and_respects_multiplier():
    P = torch.zeros(num_edges(2), len(PRIMITIVES))
    P[:, 0] = 0.9  # `none` dominates every edge, yet labels name the best real op
    P[:, PRIMITIVES.index("skip_connect")] = 0.1
    source = draw_mixed_cell(P, multiplier=1, title="epoch 3", backend="graphviz").source
    labels = re.findall(r'\blabel="([^"]+)"', source)
    assert labels.count("skip_connect 0.10") == num_edges(2) and not any(l.startswith("none") for l in labels)
    assert [t for t, _, _ in _edges(source, "concat")] == ["1"]
    assert 'label="epoch 3"' in source


@pytest.mark.parametrize("shape, steps, fragment", [((14, 7), None, "[num_edges, 8]"),
                                                    ((13, 8), None, "14 (4 steps)"),
                                                    ((14, 8), 3, "(9, 8)")])
def test_mixed_cell_wrong_shape_says_the_expected_shape(shape, steps, fragment):
    with pytest.raises(ValueError) as err:
        draw_mixed_cell(torch.full(shape, 0.1), steps=steps)
    assert fragment in str(err.value)


def test_mixed_cell_rejects_logits():
    with pytest.raises(ValueError, match="softmax"):
        draw_mixed_cell(torch.randn(14, 8) * 3)


# ---------------------------------------------------------------------------
# The plotly fallback
# ---------------------------------------------------------------------------

def test_fallback_draws_with_plotly_and_warns_once(forced_plotly):
    import plotly.graph_objects as go

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = draw_cell(DARTS_V2, "normal")
        draw_cell(DARTS_V2, "reduce")
    ours = [w for w in caught if "plotly" in str(w.message)]
    assert len(ours) == 1 and issubclass(ours[0].category, UserWarning)
    assert "apt-get install graphviz" in str(ours[0].message) and "brew install graphviz" in str(ours[0].message)
    assert type(fig) is go.Figure
    kinds = [t.meta["kind"] for t in fig.data]
    assert kinds.count("op") == 8 and kinds.count("concat") == 4
    labels = [a.text for a in fig.layout.annotations if a.name == "label"]
    assert sorted(labels) == sorted(op for op, _ in DARTS_V2.normal)
    assert sum(a.name == "arrow" for a in fig.layout.annotations) == 12
    nodes = next(t for t in fig.data if t.meta["kind"] == "nodes")
    assert list(nodes.text) == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    # Columns: inputs left, output right, intermediate nodes between.
    x = dict(zip(nodes.text, nodes.x))
    assert x["c_{k-2}"] == x["c_{k-1}"] < min(x[str(i)] for i in range(4)) <= max(x[str(i)] for i in range(4)) < x["c_{k}"]


def test_fallback_mixed_cell_and_colours_match_graphviz(forced_plotly):
    P = _hand_made_probabilities()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = draw_mixed_cell(P)
    kept = [t for t in fig.data if t.meta["kind"] == "kept"]
    dropped = [t for t in fig.data if t.meta["kind"] == "dropped"]
    expected = {(_state(j), str(k // 2)) for k, (_, j) in enumerate(derive_cell(P, 4, PRIMITIVES))}
    assert {(t.meta["tail"], t.meta["head"]) for t in kept} == expected
    assert len(dropped) == num_edges(4) - 8 and all(t.line.dash == "dash" for t in dropped)
    assert sum(a.name == "label" for a in fig.layout.annotations) == num_edges(4)


def test_fallback_draw_genotypes_returns_figures(forced_plotly):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figs = draw_genotypes({"DARTS_V2": DARTS_V2, "NASNet": NASNet})
    assert [f.layout.title.text for f in figs] == ["DARTS_V2", "NASNet"]


def test_fallback_svg_without_kaleido_explains_how_to_install(forced_plotly, monkeypatch):
    real_find_spec = diagram.importlib.util.find_spec
    monkeypatch.setattr(diagram.importlib.util, "find_spec",
                        lambda name, *a: None if name == "kaleido" else real_find_spec(name, *a))
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        cell_svg(DARTS_V2, "normal")


def test_invalid_backend_raises():
    with pytest.raises(ValueError, match="auto"):
        draw_cell(DARTS_V2, backend="matplotlib")


# ---------------------------------------------------------------------------
# Files and side-by-side display
# ---------------------------------------------------------------------------

@needs_dot
def test_save_cell_svgs_writes_two_parseable_files(tmp_path):
    paths = save_cell_svgs(DARTS_V2, tmp_path / "cells", prefix="DARTS_V2_")
    assert [p.name for p in paths] == ["DARTS_V2_normal.svg", "DARTS_V2_reduce.svg"]
    for path in paths:
        root = ET.parse(path).getroot()
        assert root.tag.rsplit("}", 1)[-1] == "svg"
    assert "max_pool_3x3" in paths[1].read_text()


@needs_dot
def test_draw_genotypes_shows_one_svg_per_genotype():
    from IPython.display import HTML

    chosen = {"DARTS_V2": DARTS_V2, "NASNet": NASNet, "A<B": GENOTYPES["PDARTS"]}
    out = draw_genotypes(chosen, kind="reduce")
    assert isinstance(out, HTML)
    assert out.data.count("<svg") == 3 and "<?xml" not in out.data
    assert out.data.count("<figcaption") == 3 and "A&lt;B" in out.data
    assert "display:flex" in out.data


def test_draw_genotypes_names_the_malformed_genotype():
    bad = Genotype(normal=[("conv_9x9", 0), ("sep_conv_3x3", 1)], normal_concat=[2],
                   reduce=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1)], reduce_concat=[2])
    with pytest.raises(GenotypeError, match="^mine: .*conv_9x9"):
        draw_genotypes({"DARTS_V2": DARTS_V2, "mine": bad})

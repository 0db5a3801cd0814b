"""Known answers for the operations and the genotype rules (DARTS, Liu et al. 2019)."""
import json

import pytest
import torch

from nasedu.genotypes import (DARTS_V1, DARTS_V2, GENOTYPES, PRIMITIVES, GenotypeError, derive_cell,
                              derive_genotype, edge_endpoints, genotype_from_json, genotype_to_json, load_genotype,
                              num_edges, parse_genotype)
from nasedu.ops import OPS, UnknownOperationError, make_op


def test_primitives_are_the_darts_order():
    assert PRIMITIVES == ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
                          "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_applies_stride(name, stride):
    x = torch.randn(2, 8, 8, 8)
    y = make_op(name, 8, stride)(x)
    assert y.shape == (2, 8, 8 // stride, 8 // stride)


def test_none_is_zero_and_skip_is_identity():
    x = torch.randn(2, 4, 6, 6)
    assert torch.count_nonzero(make_op("none", 4, 1)(x)) == 0
    assert torch.equal(make_op("skip_connect", 4, 1)(x), x)


def test_avg_pool_excludes_padding():
    # count_include_pad=False: a corner averages only its 4 real pixels.
    y = make_op("avg_pool_3x3", 1, 1)(torch.ones(1, 1, 4, 4))
    assert torch.allclose(y, torch.ones_like(y))


def test_sep_conv_is_two_depthwise_pointwise_blocks():
    convs = [m for m in make_op("sep_conv_3x3", 8, 1).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.groups, c.kernel_size) for c in convs] == [(8, (3, 3)), (1, (1, 1))] * 2
    dil = [m for m in make_op("dil_conv_5x5", 8, 1).modules() if isinstance(m, torch.nn.Conv2d)]
    assert dil[0].dilation == (2, 2) and len(dil) == 2


def test_unknown_op_lists_known_ones():
    with pytest.raises(UnknownOperationError, match="sep_conv_3x3"):
        make_op("conv_9x9", 8, 1)


def test_edges_of_a_four_node_cell():
    assert num_edges(4) == 14
    assert edge_endpoints(2) == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]


def _hand_made_weights():
    """Probabilities for a 2-node cell (5 edges) with a known derivation."""
    W = torch.full((5, len(PRIMITIVES)), 0.01)
    W[0, PRIMITIVES.index("none")] = 0.9          # strong `none` must be ignored...
    W[0, PRIMITIVES.index("max_pool_3x3")] = 0.05  # ...so edge (0->2) keeps max pool at 0.05
    W[1, PRIMITIVES.index("sep_conv_3x3")] = 0.30  # edge (1->2)
    W[2, PRIMITIVES.index("skip_connect")] = 0.20  # edge (0->3)
    W[3, PRIMITIVES.index("dil_conv_5x5")] = 0.40  # edge (1->3), strongest of node 3
    W[4, PRIMITIVES.index("avg_pool_3x3")] = 0.10  # edge (2->3), weakest: dropped
    return W


def test_derivation_rule_on_hand_made_weights():
    gene = derive_cell(_hand_made_weights(), steps=2)
    # node 2: both inputs kept, strongest first; node 3: top 2 of 3 edges, strongest first.
    assert gene == [("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 0)]


def test_derivation_ties_go_to_the_lower_index():
    gene = derive_cell(torch.full((5, len(PRIMITIVES)), 0.125), steps=2)
    assert gene == [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1)]


def test_derive_genotype_applies_softmax_over_all_ops_including_none():
    # Logits where `none` is largest: the derivation still names the best non-none op.
    alpha = torch.zeros(14, 8)
    alpha[:, 0] = 5.0
    alpha[:, PRIMITIVES.index("sep_conv_5x5")] = 1.0
    g = derive_genotype(alpha, alpha, steps=4, multiplier=4)
    assert all(op == "sep_conv_5x5" for op, _ in g.normal) and g.normal_concat == [2, 3, 4, 5]
    # The same rule on probabilities (theta) gives the same cell.
    assert derive_genotype(alpha.softmax(-1), alpha.softmax(-1), logits=False) == g


def test_derive_genotype_rejects_wrong_shapes_with_the_expected_shape():
    with pytest.raises(GenotypeError, match=r"expected \(14, 8\)"):
        derive_genotype(torch.zeros(14, 7), torch.zeros(14, 8))


def test_json_round_trip_and_printed_form():
    for g in GENOTYPES.values():
        assert genotype_from_json(genotype_to_json(g)) == g
        assert parse_genotype(str(g)) == g


def test_parses_the_darts_codes_printed_form_with_range():
    text = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
            "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
            "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
            "('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
    assert parse_genotype(text) == DARTS_V2
    assert parse_genotype("DARTS_V1 = " + str(DARTS_V1)) == DARTS_V1


@pytest.mark.parametrize("text, message", [
    ("Genotype(normal=[('sep_conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], reduce=[('skip_connect', 0), "
     "('skip_connect', 1)], reduce_concat=[2])", "unknown operation 'sep_conv_9x9'"),
    ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 2)], normal_concat=[2], reduce=[('skip_connect', 0), "
     "('skip_connect', 1)], reduce_concat=[2])", "input index 2 out of range for intermediate node 0"),
    ("Genotype(normal=[('skip_connect', 0)], normal_concat=[2], reduce=[('skip_connect', 0), ('skip_connect', 1)], "
     "reduce_concat=[2])", "two \\(op, input\\) pairs per intermediate node"),
    ("Genotype(normal=__import__('os'), normal_concat=[2], reduce=[], reduce_concat=[2])", "cannot read"),
    ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)]", "cannot parse"),
])
def test_malformed_text_points_at_the_problem(text, message):
    with pytest.raises(GenotypeError, match=message):
        parse_genotype(text)


def test_load_genotype_by_name_and_file(tmp_path):
    assert load_genotype("DARTS_V2") == DARTS_V2
    (tmp_path / "g.json").write_text(genotype_to_json(DARTS_V1))
    (tmp_path / "g.txt").write_text(str(DARTS_V1))
    assert load_genotype(tmp_path / "g.json") == load_genotype(tmp_path / "g.txt") == DARTS_V1
    with pytest.raises(GenotypeError, match="published genotypes: NASNet"):
        load_genotype("DARTS_V3")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"normal": []}))
    with pytest.raises(GenotypeError, match="lacks field"):
        load_genotype(bad)

"""Search spaces: the NAS-Bench-201 cell and NAS-Bench-Macro beside the DARTS
cell. Round trips of their notations, the derivation rules on hand-made
probabilities, supernets that run the architecture they are given (a one-hot
mixture equals the hard path, which computes only what it chooses), and
parameter and FLOP counts against the published table and hand counts."""

import pytest
import torch

import nasedu
from nasedu.architecture import ArchitectureError, agreement, chance_agreement
from nasedu.cost import count_parameters
from nasedu.genotypes import DARTS_V1, DARTS_V2, GENOTYPES, NASNet, PRIMITIVES
from nasedu.spaces import (DartsCellSpace, MacroArch, MacroSpace, NB201Arch, NB201Space, get_space,
                           load_architecture, space_options)
from nasedu.spaces.nb201 import EDGES, NB201_OPS
from nasedu.viz.diagram import mark_changed

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAPER_EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


# ---------------------------------------------------------------------------
# NAS-Bench-201
# ---------------------------------------------------------------------------

def test_nb201_arch_strings_round_trip_for_every_cell():
    space = NB201Space()
    cells = space.all()
    assert len(cells) == space.size() == 15_625
    assert [c.index for c in cells] == list(range(15_625))
    for cell in cells:
        assert NB201Arch.from_string(str(cell)) == cell
        assert space.decode(space.encode(cell)) == cell
        assert space.from_json(cell.to_json()) == cell


def test_nb201_string_order_is_the_papers():
    arch = NB201Arch.from_string(PAPER_EXAMPLE)
    assert str(arch) == PAPER_EXAMPLE
    # Edges in the string's (and the authors' alpha rows') order: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2.
    assert EDGES == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert arch.decisions() == {"cell: 0 -> 1": "nor_conv_3x3", "cell: 0 -> 2": "nor_conv_3x3",
                                "cell: 1 -> 2": "avg_pool_3x3", "cell: 0 -> 3": "skip_connect",
                                "cell: 1 -> 3": "nor_conv_3x3", "cell: 2 -> 3": "skip_connect"}
    assert NB201_OPS == ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


@pytest.mark.parametrize("text, message", [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|", "3 '+'-separated groups"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|", "node 2 reads 2"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~1|avg_pool_3x3~0|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
     "expected 'op~0'"),
    (PAPER_EXAMPLE.replace("avg_pool_3x3", "max_pool_3x3"), "unknown operation(s) ['max_pool_3x3']"),
])
def test_nb201_bad_strings_say_what_is_wrong(text, message):
    with pytest.raises(ArchitectureError) as e:
        NB201Arch.from_string(text)
    assert message in str(e.value)


def test_nb201_derivation_takes_the_strongest_operation_none_included():
    """The authors' rule for DARTS on NAS-Bench-201 (search_model_darts.genotype): argmax per edge."""
    P = torch.full((6, 5), 0.1)
    for e, k in enumerate([3, 0, 4, 1, 2, 0]):
        P[e, k] = 0.6
    arch = NB201Space().derive({"cell": P})
    assert list(arch) == ["nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none"]


def _nb201_count(arch, C, N, classes=10, in_channels=1, blocks="resnet"):
    """Parameters of the NAS-Bench-201 network by hand: stem, cells, two ResNet blocks (or their
    shortcuts alone), last BN, classifier."""
    conv = {"nor_conv_3x3": lambda W: 9 * W * W + 2 * W, "nor_conv_1x1": lambda W: W * W + 2 * W}
    cells = sum(N * conv[op](W) for W in (C, 2 * C, 4 * C) for op in arch if op in conv)
    block = lambda a, b: 9 * a * b + 2 * b + 9 * b * b + 2 * b + a * b  # conv_a, conv_b (with BN), 1x1 shortcut
    if blocks == "shortcut":
        block = lambda a, b: a * b  # the 1x1 shortcut alone
    return 9 * in_channels * C + 2 * C + cells + block(C, 2 * C) + block(2 * C, 4 * C) + 2 * 4 * C + 4 * C * classes + classes


@pytest.mark.parametrize("text", [PAPER_EXAMPLE, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"])
def test_nb201_network_has_the_hand_counted_parameters(text):
    arch = NB201Arch.from_string(text)
    for C, N in ((8, 1), (16, 5)):
        net = NB201Space(C, N).network(arch, 10, 1)
        assert count_parameters(net) == _nb201_count(arch, C, N)
    net = NB201Space(4, 1, blocks="shortcut").network(arch, 10, 1)  # the nb201-digits table's skeleton
    assert count_parameters(net) == _nb201_count(arch, 4, 1, blocks="shortcut")
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_nb201_unknown_blocks_say_what_exists():
    with pytest.raises(ValueError, match="unknown blocks 'dense'; choose one of"):
        NB201Space(blocks="dense")


def test_nb201_supernet_runs_what_it_is_given():
    torch.manual_seed(0)
    space = NB201Space(C=4, N=1)
    net = space.supernet(10, 1).eval()
    x = torch.randn(3, 1, 8, 8)
    for arch in (NB201Arch.from_string(PAPER_EXAMPLE), space.sample(torch.Generator().manual_seed(1))):
        hard = space.encode(arch)
        one_hot = {"cell": torch.nn.functional.one_hot(hard["cell"], 5).float()}
        assert torch.allclose(net(x, hard), net(x, one_hot), atol=1e-6)
    calls = []
    for _, _, k, op in net.choices():
        op.register_forward_hook(lambda m, i, o, k=k: calls.append(NB201_OPS[k]))
    net(x, space.encode(PAPER_EXAMPLE))
    assert sorted(set(calls)) == ["avg_pool_3x3", "nor_conv_3x3", "skip_connect"] and len(calls) == 6 * 3
    calls.clear()
    net(x, {"cell": torch.full((6, 5), 0.2)})
    assert "none" not in calls and len(calls) == 4 * 6 * 3  # every operation but `none`, never zeros
    with pytest.raises(ArchitectureError, match=r"arch\['cell'\] has shape \(6, 4\), expected \(6, 5\)"):
        net(x, {"cell": torch.rand(6, 4)})


def test_a_cell_of_only_none_computes_zeros_without_a_path():
    space = NB201Space(C=4, N=1)
    net = space.network("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 10, 1).eval()
    out = net(torch.randn(4, 1, 8, 8))
    assert torch.allclose(out, out[:1].expand_as(out))  # the input cannot reach the output: every image alike


# ---------------------------------------------------------------------------
# NAS-Bench-Macro
# ---------------------------------------------------------------------------

def test_macro_codes_round_trip_and_canonical_forms_count_3969_networks():
    space = MacroSpace()
    codes = space.all()
    assert len(codes) == space.size() == 6561
    for code in codes[::7]:
        assert space.decode(space.encode(code)) == code and space.from_json(code.to_json()) == code
    assert len(space.all(distinct=True)) == 3969
    # An identity after a stage's first layer computes nothing; the canonical code moves it to the stage's end.
    assert MacroArch("22212202").canonical() == "22212220" == MacroArch("22212220").canonical()
    assert MacroArch("10000000").canonical() == "10000000"  # a stage's first identity is a 1x1 conv: it stays
    assert MacroArch("02102010").canonical() == "02120010"  # stages 02 | 102 | 010
    with pytest.raises(ArchitectureError, match="8 digits 0/1/2"):
        MacroArch("2221222")
    with pytest.raises(ArchitectureError, match="8 digits 0/1/2"):
        MacroArch("22212223")


def test_macro_networks_have_the_published_parameters_and_flops():
    """Known answers: the paper's table gives every network's parameters and FLOPs on CIFAR-10."""
    bench = nasedu.bench.load("nas-bench-macro")
    space = MacroSpace()
    for code in ["00000000", "22222222", "11111111", "10000000", "22212220", *bench.sample(10, seed=3)]:
        counted = space.count(code, num_classes=10, in_channels=3, image_size=32)
        record = bench.query(code)
        assert (counted["params"], counted["flops"]) == (record.params, record.flops), code


def test_choice_costs_add_up_to_the_network_cost():
    """Each option's cost, measured in the supernet, is exactly what choosing it adds to the network."""
    space = MacroSpace()
    costs = space.costs(num_classes=10, in_channels=3, image_size=32)
    base = space.count("00000000", 10, 3, 32)
    for code in ("22212220", "12012010", "00000000"):
        counted = space.count(code, 10, 3, 32)
        for metric in ("params", "flops"):
            chosen = sum(costs[metric]["layers"][k, int(d)] - costs[metric]["layers"][k, 0]
                         for k, d in enumerate(code))
            assert counted[metric] == base[metric] + chosen, (code, metric)


def test_macro_supernet_one_hot_equals_hard_path():
    torch.manual_seed(0)
    space = MacroSpace(C=4, head=16)
    net = space.supernet(10, 1).eval()
    x = torch.randn(2, 1, 8, 8)
    hard = space.encode("21012201")
    assert torch.allclose(net(x, hard), net(x, {"layers": torch.nn.functional.one_hot(hard["layers"], 3).float()}),
                          atol=1e-6)


# ---------------------------------------------------------------------------
# The DARTS cell space, and what every space shares
# ---------------------------------------------------------------------------

def test_darts_space_size_encode_decode_and_sample():
    space = DartsCellSpace()
    # DARTS Section 2.1 (approximately 10^18 cell pairs): prod_i C(i+2, 2) * 7^2, squared.
    assert space.size() == (1 * 3 * 6 * 10 * 7 ** 8) ** 2 and 1e18 < space.size() < 1.1e18
    for g in (DARTS_V1, DARTS_V2, GENOTYPES["PC_DARTS"]):
        # The pairs of a node come back in input order: the same cell (a node sums its two edges).
        assert space.decode(space.encode(g)) == space.canonical(g) != g
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        g = space.sample(generator)
        assert space.decode(space.encode(g)) == g and all(op != "none" for op, _ in g.normal + g.reduce)
    with pytest.raises(ArchitectureError, match="uses input 0 twice for node 1"):
        DartsCellSpace(steps=5, multiplier=5, primitives=list(PRIMITIVES) + ["sep_conv_7x7"]).encode(NASNet)
    five = DARTS_V2._replace(normal=DARTS_V2.normal + [("sep_conv_3x3", 0), ("skip_connect", 5)])
    with pytest.raises(ArchitectureError, match="has 5 nodes; this space's cells have 4"):
        space.validate(five)
    with pytest.raises(ArchitectureError, match="unknown operation 'sep_conv_7x7'"):
        space.validate(NASNet)  # NASNet's operations are not all in the DARTS space


def test_agreement_counts_shared_decisions_and_its_chance_level_is_the_counted_one():
    space = DartsCellSpace()
    a = space.canonical(DARTS_V2)
    assert agreement(a, a) == 1.0 and agreement(a, a, operations=False) == 1.0
    # DARTS_V2's normal cell with node 0's first operation changed, and node 3's edge from node 2 moved to input 1
    normal = list(a.normal)
    normal[0] = ("dil_conv_5x5", normal[0][1])
    b = space.canonical(a._replace(normal=normal[:7] + [("sep_conv_3x3", 1)]))
    assert agreement(a, b) == 14 / 16 and agreement(a, b, operations=False) == 15 / 16
    # Both changes are in the normal cell: one part at a time.
    assert agreement(a, b, part="normal") == 6 / 8 and agreement(a, b, operations=False, part="normal") == 7 / 8
    assert agreement(a, b, part="reduce") == 1.0
    assert list(a.part_decisions("reduce"))[0] == "c_{k-2} -> 0"
    # Two uniform cells: node n keeps 2 of its n + 2 inputs, so an edge of one is in the other with
    # probability 2 / (n + 2): 1, 2/3, 1/2, 2/5 for the four nodes, and then the same one of 7 operations.
    edges = (1 + 2 / 3 + 1 / 2 + 2 / 5) / 4
    mean, p99 = chance_agreement(space, samples=3000, operations=False)
    assert abs(mean - edges) < 0.01 and mean < p99 < 1
    mean, p99 = chance_agreement(space, samples=3000)
    assert abs(mean - edges / 7) < 0.01 and mean < p99 < 0.5
    # The mean over the 28 pairs of 8 cells: the same expectation, a much narrower spread.
    mean8, p99_8 = chance_agreement(space, samples=300, cells=8)
    assert abs(mean8 - edges / 7) < 0.01 and mean8 < p99_8 < (mean + p99) / 2


def test_every_space_derives_encodes_and_draws_with_marked_decisions():
    generator = torch.Generator().manual_seed(0)
    for name in ("darts", "nb201", "macro"):
        space = get_space(name)
        arch = space.sample(generator)
        for part in arch.parts:
            svg = arch.svg(part)
            keys = [k for k in arch.decisions() if k.startswith(arch.part_titles[part])]
            assert keys, (name, part)
            assert mark_changed(svg, keys[:1]).count("drop-shadow") == 1, (name, part)
        uniform = {k: t.probabilities for k, t in space.tables().items()}
        assert space.validate(space.derive(uniform)) == space.derive(uniform)
        assert {k: tuple(v.shape) for k, v in space.encode(arch).items()} == {k: s[:1] for k, s in space.shapes().items()}


def test_spaces_by_name_with_options_and_clear_errors():
    assert get_space("nb201", C=8, N=1).config() == {"name": "nb201", "C": 8, "N": 1, "blocks": "resnet"}
    assert get_space("nas-bench-201") == NB201Space()
    space = get_space("darts", C=4)
    assert get_space(space.config()) == space and get_space(space, layers=3).layers == 3
    assert space_options("macro") == {"C": 32, "head": 1280}
    with pytest.raises(ValueError, match="unknown search space 'nb101'; available: darts, nb201, macro"):
        get_space("nb101")


def test_load_architecture_reads_names_files_and_texts(tmp_path):
    space, g = load_architecture("DARTS_V2")
    assert g == DARTS_V2 and space.steps == 4
    space, g = load_architecture("NASNet")
    assert space.steps == 5  # a space that fits the genotype
    nasedu.spaces.save_architecture(NB201Space(C=8, N=1), NB201Arch.from_string(PAPER_EXAMPLE), tmp_path / "a.json")
    space, arch = load_architecture(tmp_path / "a.json")
    assert space == NB201Space(C=8, N=1) and str(arch) == PAPER_EXAMPLE
    space, arch = load_architecture("01201220", space="macro")
    assert arch == "01201220" and isinstance(space, MacroSpace)
    with pytest.raises(ArchitectureError, match="give the space"):
        load_architecture(PAPER_EXAMPLE)

"""The supernet runs the architecture it is given; the network builds from a genotype."""
import pytest
import torch

from nasedu.genotypes import DARTS_V2, GENOTYPES, PRIMITIVES
from nasedu.network import Network, count_parameters
from nasedu.spaces import DartsCellSpace
from nasedu.supernet import ArchitectureError, MixedOp, Supernet

SPACE = DartsCellSpace(C=4, layers=3)


def _net(**kw):
    torch.manual_seed(0)
    return Supernet(C=4, num_classes=10, layers=3, in_channels=1, **kw).eval()


def test_mixed_op_with_one_hot_weights_equals_the_plain_op():
    torch.manual_seed(0)
    op = MixedOp(4, 1, PRIMITIVES).eval()
    x = torch.randn(2, 4, 6, 6)
    for k, name in enumerate(PRIMITIVES):
        one_hot = torch.zeros(len(PRIMITIVES))
        one_hot[k] = 1.0
        mixed = op(x, one_hot)
        plain = op._ops[k](x)
        assert torch.allclose(mixed, plain), name
        hard = op(x, torch.tensor(k))
        assert (hard is None) if name == "none" else torch.equal(hard, plain)


def test_none_is_never_computed():
    op = MixedOp(4, 1, PRIMITIVES)
    calls = []
    op._ops[0].register_forward_hook(lambda *a: calls.append(1))
    op(torch.randn(1, 4, 4, 4), torch.full((8,), 1 / 8))
    assert calls == []


def test_hard_path_matches_mixed_op_with_one_hot_architecture():
    net = _net()
    arch = SPACE.encode(DARTS_V2)
    one_hot = {k: torch.nn.functional.one_hot(v, len(PRIMITIVES)).float() for k, v in arch.items()}
    x = torch.randn(3, 1, 8, 8)
    assert torch.allclose(net(x, arch), net(x, one_hot), atol=1e-6)


def test_hard_path_computes_only_the_chosen_ops():
    net = _net(fast=False)  # the readable cell calls each chosen op module: hooks count them
    calls = []
    for cell in net.cells:
        for mixed in cell._ops:
            for k, op in enumerate(mixed._ops):
                op.register_forward_hook(lambda m, i, o, k=k: calls.append(k))
    net(torch.randn(2, 1, 8, 8), SPACE.encode(DARTS_V2))
    assert len(calls) == 8 * len(net.cells)  # two edges per node, four nodes, per cell


@pytest.mark.parametrize("fast", [False, True])
def test_hard_path_trains_only_the_chosen_ops(fast):
    """Readable or fast (which calls no op module, so hooks cannot see it):
    gradients reach exactly the weights of the chosen operations."""
    net = _net(fast=fast).train()
    arch = SPACE.encode(DARTS_V2)
    net(torch.randn(2, 1, 8, 8), arch).sum().backward()
    reached, chosen = set(), set()
    for c, cell in enumerate(net.cells):
        row = arch["reduce" if cell.reduction else "normal"]
        for e, mixed in enumerate(cell._ops):
            for k, op in enumerate(mixed._ops):
                if any(p.grad is not None for p in op.parameters()):
                    reached.add((c, e, k))
                if k == int(row[e]) and any(True for _ in op.parameters()):
                    chosen.add((c, e, k))
    assert chosen and reached == chosen


def test_architecture_is_an_argument_with_clear_errors():
    net = _net()
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ArchitectureError, match=r"expected \(14, 8\)"):
        net(x, {"normal": torch.rand(14, 7), "reduce": torch.rand(14, 8)})
    with pytest.raises(ArchitectureError, match=r"keys \['normal', 'reduce'\]"):
        net(x, torch.rand(14, 8))
    with pytest.raises(ArchitectureError, match="outside 0..7"):
        net(x, {"normal": torch.full((14,), 9), "reduce": torch.zeros(14, dtype=torch.long)})
    assert not any("alpha" in n for n, _ in net.named_parameters())


def test_a_subset_of_primitives_by_name():
    net = Supernet(C=4, layers=2, in_channels=1, primitives=["none", "skip_connect", "sep_conv_3x3"])
    out = net(torch.randn(2, 1, 8, 8), {"normal": torch.rand(14, 3), "reduce": torch.rand(14, 3)})
    assert out.shape == (2, 10)


def test_darts_v2_has_the_papers_parameter_count():
    # DARTS Table 1: 3.3M parameters at 36 initial channels and 20 cells (auxiliary head excluded).
    n = count_parameters(Network(DARTS_V2, C=36, num_classes=10, layers=20, auxiliary=True))
    assert round(n / 1e6, 1) == 3.3


@pytest.mark.parametrize("name", list(GENOTYPES))
def test_every_published_genotype_builds_and_runs(name):
    net = Network(GENOTYPES[name], C=8, num_classes=10, layers=5, auxiliary=True, drop_path_prob=0.2).train()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    net.eval()
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_network_on_digits_sized_input():
    net = Network(DARTS_V2, C=8, num_classes=10, layers=5, in_channels=1, auxiliary=True).train()
    logits, aux = net(torch.randn(2, 1, 8, 8))
    assert logits.shape == aux.shape == (2, 10)

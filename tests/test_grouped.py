"""The fast (grouped) supernet path computes what the readable one does:
outputs, gradients for w and alpha, BatchNorm running statistics, in train
and eval mode, for mixtures and hard paths, on every space with a grouped cell;
and the two hold the same parameters (a state_dict of one loads into the other)."""
import copy

import pytest
import torch

from nasedu.diagnostics import hessian_vector_product_in_alpha
from nasedu.genotypes import DARTS_V2
from nasedu.grouped import GROUPED_MAX_PIXELS, cat_channels_keeping, to_memory_format
from nasedu.spaces import DartsCellSpace
from nasedu.supernet import FastSearchCell, SearchCell, Supernet
from nasedu.training import batch_statistics, untracked_batch_norm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def close(a, b, rel=1e-4, floor=1e-3):
    """Equal up to float rounding, relative to the tensor's scale (or `floor`
    for a tensor that is zero up to rounding, as a bias before a BatchNorm's gradient)."""
    scale = max(b.abs().max().item(), floor)
    return (a - b).abs().max().item() <= rel * scale


def pair(space, in_channels=1, **options):
    """The fast and the readable supernet of `space` with the same weights."""
    torch.manual_seed(0)
    fast = space.supernet(10, in_channels, fast=True, **options)
    readable = space.supernet(10, in_channels, fast=False, **options)
    readable.load_state_dict(fast.state_dict())
    return fast, readable


def run(net, x, y, arch_fn, alpha):
    net.zero_grad()
    for a in alpha.values():
        a.grad = None
    out = net(x, arch_fn())
    torch.nn.functional.cross_entropy(out, y).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return out.detach(), grads, {k: None if a.grad is None else a.grad.clone() for k, a in alpha.items()}


def assert_same(fast, readable, x, y, arch_fn, alpha):
    out_f, grads_f, alpha_f = run(fast, x, y, arch_fn, alpha)
    out_r, grads_r, alpha_r = run(readable, x, y, arch_fn, alpha)
    assert close(out_f, out_r)
    assert grads_f.keys() == grads_r.keys() and grads_r
    largest = max(g.abs().max().item() for g in grads_r.values())
    bad = [n for n in grads_r if not close(grads_f[n], grads_r[n], rel=1e-3, floor=1e-2 * largest)]
    assert not bad, f"gradients differ for {bad[:5]}"
    for k in alpha:
        assert (alpha_f[k] is None) == (alpha_r[k] is None)
        if alpha_r[k] is not None:
            assert close(alpha_f[k], alpha_r[k], rel=1e-3)
    state_f, state_r = fast.state_dict(), readable.state_dict()
    assert state_f.keys() == state_r.keys()
    bad = [k for k in state_r if not close(state_f[k].float(), state_r[k].float())]
    assert not bad, f"state differs for {bad[:5]} (running statistics)"


def soft(alpha):
    return lambda: {k: a.softmax(-1) for k, a in alpha.items()}


def make_alpha(space, scale=1.0):
    torch.manual_seed(1)
    return {k: (scale * torch.randn(shape)).requires_grad_() for k, shape in space.shapes().items()}


@pytest.mark.parametrize("space", [DartsCellSpace(C=4, layers=3), DartsCellSpace(C=4, layers=4, steps=3, multiplier=2)],
                         ids=["darts", "darts-3-steps"])
def test_fast_path_matches_readable_under_a_mixture(space):
    fast, readable = pair(space)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    alpha = make_alpha(space)
    for _ in range(2):  # the second step runs on running statistics the first one updated
        assert_same(fast, readable, x, y, soft(alpha), alpha)
    fast.eval(), readable.eval()
    with torch.no_grad():
        assert close(fast(x, soft(alpha)()), readable(x, soft(alpha)()))
        with batch_statistics(fast), batch_statistics(readable):
            assert close(fast(x, soft(alpha)()), readable(x, soft(alpha)()))


def test_fast_path_matches_readable_on_hard_paths():
    space, architecture = DartsCellSpace(C=4, layers=3), DARTS_V2
    fast, readable = pair(space)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    alpha = make_alpha(space)
    assert_same(fast, readable, x, y, lambda: space.encode(architecture), alpha)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):  # sampled paths: every edge one operation, `none` included
        path = {k: torch.randint(0, n, (rows,), generator=generator) for k, (rows, n) in space.shapes().items()}
        assert_same(fast, readable, x, y, lambda: path, alpha)
    nothing = {k: torch.zeros(rows, dtype=torch.long) for k, (rows, _) in space.shapes().items()}  # all `none`
    with torch.no_grad():
        assert close(fast(x, nothing), readable(x, nothing))


def test_fast_path_on_the_papers_operations_beyond_darts():
    """NASNet's and AmoebaNet's operations: a 7x7 separable convolution
    (grouped), and a 1x7-7x1 convolution (not 'same' padded per axis)."""
    primitives = ["none", "max_pool_3x3", "skip_connect", "sep_conv_7x7", "conv_7x1_1x7", "dil_conv_3x3"]
    torch.manual_seed(0)
    fast = Supernet(C=4, num_classes=10, layers=3, primitives=primitives, in_channels=1, fast=True)
    readable = Supernet(C=4, num_classes=10, layers=3, primitives=primitives, in_channels=1, fast=False)
    readable.load_state_dict(fast.state_dict())
    alpha = {k: torch.randn(14, len(primitives)).requires_grad_() for k in ("normal", "reduce")}
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    assert_same(fast, readable, x, y, soft(alpha), alpha)


def test_every_route_of_the_fast_cell_on_larger_maps():
    """16x16 input, 4 cells: a normal cell at 16x16 (readable operations on
    channels_last tensors), a reduction from 16x16 (grouped, the depthwise
    convolutions as convolutions), cells at 8x8 and 4x4 (grouped, as matrix products)."""
    space = DartsCellSpace(C=4, layers=4)
    fast, readable = pair(space, in_channels=3)
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    alpha = make_alpha(space)
    assert_same(fast, readable, x, y, soft(alpha), alpha)


def test_memory_format_changes_hand_each_gradient_back_in_its_tensors_format():
    """The large-map route converts to channels_last and back; a gradient that
    reached a tensor in the other format would fall off ATen's fast kernels."""
    cl = torch.channels_last
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    y = to_memory_format(x, cl)
    assert y.is_contiguous(memory_format=cl) and torch.equal(y, x)
    g = torch.randn(2, 3, 5, 5).contiguous(memory_format=cl)
    y.backward(g)
    assert x.grad.is_contiguous() and torch.equal(x.grad, g)
    a = torch.randn(2, 3, 5, 5).contiguous(memory_format=cl).requires_grad_()
    b = torch.randn(2, 4, 5, 5).contiguous(memory_format=cl).requires_grad_()
    out = cat_channels_keeping([a, b], cl)
    assert torch.equal(out, torch.cat([a, b], dim=1))
    g = torch.randn(2, 7, 5, 5).contiguous(memory_format=cl)
    out.backward(g)
    assert a.grad.is_contiguous(memory_format=cl) and torch.equal(a.grad, g[:, :3])
    assert b.grad.is_contiguous(memory_format=cl) and torch.equal(b.grad, g[:, 3:])


def test_second_derivatives_on_larger_maps_under_torch_func():
    """The Hessian's products in alpha (`nasedu.diagnostics`, reverse over
    reverse with torch.func) through the large-map route equal the readable
    cell's: the format changes are differentiable twice under torch.func."""
    space = DartsCellSpace(C=4, layers=2)  # two reduction cells: 32x32 -> 16x16 (the large-map route) -> 8x8
    fast, readable = pair(space, in_channels=3)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    assert 16 * 16 > GROUPED_MAX_PIXELS >= 8 * 8
    alpha = {k: a.detach() for k, a in make_alpha(space).items()}
    v = {k: torch.randn_like(a) for k, a in alpha.items()}
    products = []
    for net in (fast, readable):
        w = {n: p.detach() for n, p in net.named_parameters()}
        with untracked_batch_norm(net):
            def loss(w, alpha, batch):
                arch = {k: a.softmax(-1) for k, a in alpha.items()}
                return torch.nn.functional.cross_entropy(torch.func.functional_call(net, w, (batch[0], arch)), batch[1])
            products.append(hessian_vector_product_in_alpha(loss, w, alpha, (x, y))(v))
    for k in alpha:
        assert close(products[0][k], products[1][k], rel=1e-3)


def test_grouped_plan_on_channels_last_tensors():
    """On CUDA the supernet runs in channels_last: the grouped plan must give
    the same states from tensors in that layout."""
    space = DartsCellSpace(C=4, layers=3)
    fast, _ = pair(space)
    cell = fast.cells[0]
    s0, s1 = torch.randn(4, 12, 8, 8), torch.randn(4, 12, 8, 8)
    w = soft(make_alpha(space))()["normal"]
    with torch.no_grad():
        inputs = [cell.preprocess0(s0), cell.preprocess1(s1)]
        plain = cell._plan.run(inputs, w, None)
        last = cell._plan.run([t.contiguous(memory_format=torch.channels_last) for t in inputs], w, None)
    assert all(close(a, b) for a, b in zip(last, plain))


def test_fast_and_readable_cells_hold_the_same_parameters():
    space = DartsCellSpace(C=4, layers=3)
    fast, readable = pair(space)
    assert all(isinstance(c, FastSearchCell) for c in fast.cells)
    assert all(type(c) is SearchCell for c in readable.cells)
    assert [n for n, _ in fast.named_parameters()] == [n for n, _ in readable.named_parameters()]
    clone = copy.deepcopy(fast)  # the plan follows the copied modules, not the originals
    with torch.no_grad():
        for p in clone.parameters():
            p.mul_(0.5)
    x = torch.randn(4, 1, 8, 8)
    arch = soft(make_alpha(space))()
    fast.eval(), clone.eval()
    with torch.no_grad():
        assert not close(clone(x, arch), fast(x, arch))
        readable.load_state_dict(clone.state_dict())
        readable.eval()
        assert close(clone(x, arch), readable(x, arch))


def test_a_search_checkpointed_on_one_path_resumes_on_the_other(tmp_path):
    """The readable and the fast supernet share parameters and checkpoints:
    a search stopped on the readable path finishes on the fast one, close to
    the search run on the readable path throughout (float rounding apart)."""
    import nasedu
    from helpers import InterruptAt

    tiny = dict(data="synthetic", C=4, layers=2, steps=2, multiplier=2, epochs=2, batch_size=32, progress=False)
    reference = nasedu.search("darts", fast=False, **tiny)
    nasedu.search("darts", fast=False, out=str(tmp_path), callbacks=[InterruptAt(3)], **tiny)
    resumed = nasedu.search("darts", fast=True, out=str(tmp_path), **tiny)
    assert not resumed.interrupted
    assert all(isinstance(c, FastSearchCell) for c in resumed.strategy.supernet.cells)
    for k, a in reference.strategy.alpha.items():
        assert close(resumed.strategy.alpha[k].detach(), a.detach(), rel=1e-3)


def test_fast_path_on_odd_map_sizes():
    """A 7x7 input: reductions to 4x4 and 2x2 (FactorizedReduce's shifted half pads)."""
    space = DartsCellSpace(C=4, layers=3)
    fast, readable = pair(space)
    x, y = torch.randn(8, 1, 7, 7), torch.randint(0, 10, (8,))
    alpha = make_alpha(space)
    assert_same(fast, readable, x, y, soft(alpha), alpha)
    assert_same(fast, readable, x, y, lambda: space.encode(DARTS_V2), alpha)

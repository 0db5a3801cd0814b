"""The fast path of a weight-sharing cell: many small operations run as a few
grouped ones, each on the kernel that is fastest for it.

Under a mixture a DARTS cell computes 14 edges x 7 operations, each a chain of
two to eight tiny layers. Measured here (torch 2.15, one CPU thread, the quick
budget; `benchmarks/supernet_step.py`), most of a step goes to oneDNN's
depthwise convolutions other than 3x3, whose backward pass on 8x8, 4x4 and 2x2
maps costs many times its arithmetic, and to grouped 1x1 convolutions; the
number of calls comes second. So the cell runs wave by wave (a wave: every
edge whose source state is ready), and in a wave every (edge, operation) pair
whose operation is the same chain of layers is stacked along the channel axis:

- ReLU and pooling act per channel and give one result per source state,
  whichever edge reads it: one call per source, not per edge;
- a depthwise convolution on a map of at most `DEPTHWISE_AS_MATMUL_PIXELS`
  pixels is a linear map of each channel's pixels: one batched matrix product
  for every pair and kernel size of the wave;
- 1x1 convolutions: one batched matrix product; other convolutions: one
  convolution of n * groups groups per kernel size;
- n BatchNorms become one `F.batch_norm` over the stacked channels (the
  statistics are per channel, so this is exact); each module's running
  statistics end as its own forward would leave them;
- a mixture's weight rides on the last BatchNorm as its scale where that
  BatchNorm has no affine parameters (free), otherwise one multiplication;
  the sum into the nodes is one `index_add`.

The parameters stay in the readable modules (`MixedOp`, the learners' version):
this module only reads them, so a state_dict or a checkpoint of the readable
cell loads into the fast one and back. Operations that are not plain chains of
these layers are called as they are, one by one.
"""
from __future__ import annotations

from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn

from .ops import FactorizedReduce, Identity

__all__ = ["CellPlan", "chain_layers", "run_chain", "to_memory_format", "cat_channels_keeping", "GROUPED_MAX_PIXELS"]


def chain_layers(module: nn.Module) -> list | None:
    """The layers `module` applies one after another, or None if it is not a
    plain chain (it is then called as it is). A class whose forward is
    ``self.op(x)`` says so with ``chain = "op"``."""
    if isinstance(module, nn.Sequential):
        layers = []
        for child in module:
            inner = chain_layers(child)
            if inner is None:
                return None
            layers += inner
        return layers
    if isinstance(getattr(type(module), "chain", None), str):
        return chain_layers(getattr(module, type(module).chain))
    if isinstance(module, (nn.Identity, Identity)):
        return []
    if isinstance(module, (nn.ReLU, nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, FactorizedReduce)):
        return [module]
    return None


def _same_padded(conv: nn.Conv2d) -> bool:
    (kh, kw), (dh, dw) = conv.kernel_size, conv.dilation
    return (kh == kw and kh % 2 == 1 and dh == dw and conv.padding == (dh * (kh - 1) // 2,) * 2
            and conv.padding_mode == "zeros")


def _layer_key(layer: nn.Module) -> tuple:
    """What layers must share to be stacked (the size of a 'same'-padded
    kernel is not among it: `_conv` runs each size in its own call, or all in
    one matrix product)."""
    if isinstance(layer, nn.Conv2d):
        size = () if _same_padded(layer) else (layer.kernel_size, layer.padding, layer.padding_mode)
        return ("conv", layer.in_channels, layer.out_channels, layer.groups, layer.stride, layer.dilation,
                layer.bias is not None) + size
    if isinstance(layer, nn.BatchNorm2d):
        return ("bn", layer.num_features, layer.affine, layer.eps, layer.momentum, layer.track_running_stats)
    if isinstance(layer, nn.MaxPool2d):
        return ("max", layer.kernel_size, layer.stride, layer.padding, layer.dilation, layer.ceil_mode)
    if isinstance(layer, nn.AvgPool2d):
        return ("avg", layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode, layer.count_include_pad,
                layer.divisor_override)
    if isinstance(layer, FactorizedReduce):
        return ("fr", layer.conv_1.in_channels, layer.conv_1.out_channels, layer.bn.affine)
    return ("relu",)


_PER_CHANNEL = (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d)


class _Group:
    """Pairs of one wave whose operations are the same chain: run as one."""

    def __init__(self, pairs):
        # Pairs with the same kernel sizes side by side: one call per size.
        self.pairs = sorted(pairs, key=lambda p: [layer.kernel_size for layer in p[3]
                                                  if isinstance(layer, nn.Conv2d)])
        self.sources = tuple(p[0] for p in self.pairs)
        layers = list(zip(*(p[3] for p in self.pairs)))  # per layer: that layer of every pair
        # Leading layers without weights that act per channel (ReLU, pooling) give
        # one result per source state, whichever edge reads it: run them once per source.
        k = next((i for i, ls in enumerate(layers) if not isinstance(ls[0], _PER_CHANNEL)), len(layers))
        self.shared, self.layers = [ls[0] for ls in layers[:k]], layers[k:]
        self.unique = tuple(dict.fromkeys(self.sources))
        self.prefix = (self.unique, tuple(_layer_key(layer) for layer in self.shared))
        self._pick = [self.unique.index(s) for s in self.sources]
        last = self.layers[-1][0] if self.layers else None
        # A last BatchNorm without affine parameters applies the mixture's weight for free.
        self.weights_in_norm = isinstance(last, nn.BatchNorm2d) and not last.affine

    def inputs(self, states, cache):
        """The stacked input of every pair (after the shared per-source layers)."""
        if self.prefix not in cache:
            x = _cat_channels([states[s] for s in self.unique])
            for layer in self.shared:
                x = layer(x)
            cache[self.prefix] = x
        x = cache[self.prefix]
        if self.sources == self.unique:
            return x
        per_source = x.chunk(len(self.unique), dim=1)  # views; one copy below (index_select is slower on a CPU)
        return _cat_channels([per_source[i] for i in self._pick])

    def __call__(self, x, weights=None):
        """The pairs' outputs, stacked; each times its weight in `weights` if given."""
        x = _run_layers(x, self.layers, weights if self.weights_in_norm else None)
        if weights is not None and not self.weights_in_norm:
            B, _, H, W = x.shape
            x = (x.view(B, len(self.pairs), -1, H, W) * weights.view(1, -1, 1, 1, 1).to(x.dtype)).view(B, -1, H, W)
        return x


def _run_layers(x, layers, last_norm_weights=None):
    """Apply ``layers[i]`` (the i-th layer of every stacked chain) in turn."""
    for i, same in enumerate(layers):
        first = same[0]
        if isinstance(first, nn.Conv2d):
            x = _conv(x, same)
        elif isinstance(first, nn.BatchNorm2d):
            x = _batch_norm(x, same, last_norm_weights if i == len(layers) - 1 else None)
        elif isinstance(first, FactorizedReduce):
            x = _factorized_reduce(x, same)
        else:  # ReLU and pooling: per channel, one call for the stack
            x = first(x)
    return x


def run_chain(x, layers):
    """One chain of layers (`chain_layers`) on the kernels chosen here, e.g. a
    cell's preprocessing ReLU-conv-BN (its 1x1 convolution as a matrix product)."""
    return _run_layers(x, [[layer] for layer in layers])


class _PerDevice:
    """An index tensor, copied once to each device it is asked for on."""

    def __init__(self, tensor):
        self._on = {"cpu": tensor}

    def __call__(self, device):
        key = str(device)
        if key not in self._on:
            self._on[key] = self._on["cpu"].to(device)
        return self._on[key]


def _cat(tensors):
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


# Largest output map (pixels) of a cell run grouped: on larger maps each call
# has enough work that grouping no longer pays, and channels_last does (measured
# per cell in benchmarks/supernet_step.py).
GROUPED_MAX_PIXELS = 64

# Largest input (pixels) for which a depthwise convolution runs as a matrix
# product: oneDNN's depthwise kernels other than 3x3 are slow on small maps
# (benchmarks/supernet_step.py), and the matrix grows as the square of the map.
DEPTHWISE_AS_MATMUL_PIXELS = 64


def _runs(convs):
    """Slices of consecutive convolutions with one kernel size."""
    runs, start = [], 0
    for i in range(1, len(convs) + 1):
        if i == len(convs) or convs[i].kernel_size != convs[start].kernel_size:
            runs.append(slice(start, i))
            start = i
    return runs


def _conv(x, convs):
    """n convolutions on n stacked inputs: per kernel size one convolution of
    n * groups groups, or one matrix product where that is faster on a CPU
    (depthwise on small maps, 1x1)."""
    first = convs[0]
    if (first.groups == first.in_channels == first.out_channels and first.bias is None
            and x.shape[2] * x.shape[3] <= DEPTHWISE_AS_MATMUL_PIXELS):
        return _depthwise_matmul(x, convs)
    outs, C = [], first.in_channels
    for run in _runs(convs):
        part = x if run.stop - run.start == len(convs) else x[:, run.start * C:run.stop * C]
        c, same = convs[run.start], convs[run]
        if c.kernel_size == (1, 1) and c.stride == (1, 1) and c.padding == (0, 0) and c.groups == 1:
            outs.append(_pointwise_matmul(part, same))
            continue
        bias = _cat([m.bias for m in same]) if c.bias is not None else None
        outs.append(F.conv2d(part, _cat([m.weight for m in same]), bias, c.stride, c.padding, c.dilation,
                             c.groups * len(same)))
    return _cat_channels(outs)


def _pointwise_matmul(x, convs):
    """n 1x1 convolutions on n stacked inputs as one batched matrix product
    (oneDNN's grouped 1x1 convolution is several times slower on a CPU)."""
    B, _, H, W = x.shape
    n, first = len(convs), convs[0]
    C_in, C_out = first.in_channels, first.out_channels
    weight = _cat([m.weight for m in convs]).view(n, C_out, C_in)
    columns = x.view(B, n, C_in, H * W).permute(1, 2, 0, 3).reshape(n, C_in, B * H * W)
    y = torch.bmm(weight, columns).view(n, C_out, B, H * W).permute(2, 0, 1, 3).reshape(B, n * C_out, H, W)
    if first.bias is not None:
        y = y + _cat([m.bias for m in convs]).view(1, -1, 1, 1)
    return y


def _depthwise_matmul(x, convs):
    """Depthwise convolutions as one batched matrix product: on an H x W map a
    channel's convolution is a linear map of its H*W pixels, the matrix
    ``M[c] = sum_t w[c, t] E_t`` with ``E_t`` the (output, input) pixel pairs
    that kernel tap t joins (stride, padding and dilation are in E)."""
    B, Ch, H, W = x.shape
    mats = []
    for run in _runs(convs):
        c = convs[run.start]
        E, out_hw = _tap_pairs(H, W, c.kernel_size, c.stride, c.padding, c.dilation, x.device, x.dtype)
        w = _cat([m.weight for m in convs[run]])
        mats.append((w.reshape(w.shape[0], -1) @ E).view(w.shape[0], out_hw[0] * out_hw[1], H * W))
    M = _cat(mats)  # [Ch, out pixels, in pixels]
    y = torch.bmm(x.reshape(B, Ch, H * W).transpose(0, 1), M.transpose(1, 2))  # [Ch, B, out pixels]
    return y.transpose(0, 1).reshape(B, Ch, *out_hw)


_TAP_PAIRS = {}


def _tap_pairs(H, W, kernel, stride, padding, dilation, device, dtype):
    """``E [taps, out pixels * in pixels]``: 1 where tap t joins the two pixels."""
    key = (H, W, kernel, stride, padding, dilation, str(device), dtype)
    if key not in _TAP_PAIRS:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
        Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        E = torch.zeros(kh * kw, Ho * Wo, H * W)
        for ky in range(kh):
            for kx in range(kw):
                for oy in range(Ho):
                    iy = oy * sh - ph + ky * dh
                    if not 0 <= iy < H:
                        continue
                    for ox in range(Wo):
                        ix = ox * sw - pw + kx * dw
                        if 0 <= ix < W:
                            E[ky * kw + kx, oy * Wo + ox, iy * W + ix] = 1.0
        _TAP_PAIRS[key] = (E.view(kh * kw, -1).to(device, dtype), (Ho, Wo))
        if torch._C._functorch.is_functorch_wrapped_tensor(_TAP_PAIRS[key][0]):
            # Made inside a torch.func transform (a hypergradient): it would not outlive it.
            return _TAP_PAIRS.pop(key)
    return _TAP_PAIRS[key]


def _batch_norm(x, norms, weights=None):
    """n BatchNorms on n stacked inputs: one call over the stacked channels
    (the statistics are per channel); each module's running statistics end as
    its own forward would leave them. `weights` (one per module, for modules
    without affine parameters) scale each output."""
    first, C = norms[0], norms[0].num_features
    tracking = first.track_running_stats and first.running_mean is not None
    if first.training and tracking and first.momentum is None:  # a cumulative average: rare, one by one
        x = _cat_channels([m(part) for m, part in zip(norms, x.split(C, dim=1))])
        return x if weights is None else x * weights.repeat_interleave(C).view(1, -1, 1, 1).to(x.dtype)
    if first.affine:
        weight, bias = _cat([m.weight for m in norms]), _cat([m.bias for m in norms])
    else:
        weight, bias = (None if weights is None else weights.repeat_interleave(C)), None
    means = _cat([m.running_mean for m in norms]) if tracking else None
    variances = _cat([m.running_var for m in norms]) if tracking else None
    y = F.batch_norm(x, means, variances, weight, bias, first.training or not tracking, first.momentum or 0.0,
                     first.eps)
    if first.training and tracking:
        with torch.no_grad():
            if len(norms) > 1:  # batch_norm updated the concatenated copies: hand each module its part
                torch._foreach_copy_([m.running_mean for m in norms], list(means.split(C)))
                torch._foreach_copy_([m.running_var for m in norms], list(variances.split(C)))
            torch._foreach_add_([m.num_batches_tracked for m in norms], 1)
    return y


def _factorized_reduce(x, reduces):
    """n `FactorizedReduce` on n stacked inputs (ReLU, two shifted stride-2
    1x1 convolutions, concatenated per module, BatchNorm)."""
    n = len(reduces)
    x = F.relu(x)
    # A stride-2 1x1 convolution reads every other pixel: pick them, then one
    # matrix product does both convolutions of every module.
    even = x[:, :, ::2, ::2]
    odd = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))[:, :, ::2, ::2]
    y = _pointwise_matmul(torch.cat([even, odd], dim=1),
                          [m.conv_1 for m in reduces] + [m.conv_2 for m in reduces])
    B, _, H, W = y.shape  # [B, (conv_1 | conv_2) x module x C/2]: regroup per module
    y = y.view(B, 2, n, -1, H, W).transpose(1, 2).reshape(B, -1, H, W)
    return _batch_norm(y, [m.bn for m in reduces])


class _Wave:
    def __init__(self, pairs, ready_after, index_base):
        groups, alone = defaultdict(list), []
        for pair in pairs:
            if pair[3] is None:
                alone.append(pair)
            else:
                groups[tuple(_layer_key(layer) for layer in pair[3])].append(pair)
        self.groups = [_Group(g) for g in groups.values()]
        self.alone = alone  # operations that are not chains: called one by one
        order = [p for g in self.groups for p in g.pairs] + alone
        self.group_index = [_PerDevice(torch.tensor([p[4] for p in g.pairs], dtype=torch.long)) for g in self.groups]
        self.targets = _PerDevice(torch.tensor([p[1] - index_base for p in order], dtype=torch.long))
        self.ready_after = ready_after  # nodes complete once this wave is summed


class CellPlan:
    """How to run a cell (a DAG of edges) grouped, for a mixture or one hard path.

    `edges`: ``(source, target)`` state indices of each edge (states
    ``0..inputs-1`` are the cell's inputs, then its nodes in order);
    `mixed`: each edge's `MixedOp`. Plans for hard paths are kept by path."""

    def __init__(self, edges, mixed, inputs: int):
        self.edges, self.mixed, self.inputs = list(edges), list(mixed), inputs
        self.nodes = max(t for _, t in self.edges) + 1 - inputs
        level = {s: 0 for s in range(inputs)}
        for s, t in sorted(self.edges, key=lambda e: e[1]):
            level[t] = max(level.get(t, 0), level[s] + 1)
        self.levels = level
        self.layers = [[chain_layers(op) for op in m._ops] for m in self.mixed]
        self._plans = {}

    def plan(self, choice=None) -> list:
        """The waves for the mixture (`choice` None) or for one op index per edge."""
        if choice not in self._plans:
            if len(self._plans) > 256:
                self._plans.clear()
            self._plans[choice] = self._make_plan(choice)
        return self._plans[choice]

    def _make_plan(self, choice):
        n_ops = len(self.mixed[0].primitives)
        waves = defaultdict(list)
        for e, (s, t) in enumerate(self.edges):
            names = self.mixed[e].primitives
            for k in ([choice[e]] if choice is not None else range(n_ops)):
                if names[k] != "none":
                    waves[self.levels[s]].append((s, t, self.mixed[e]._ops[k], self.layers[e][k], e * n_ops + k))
        top = max(self.levels.values())
        plan = []
        for lv in range(top):
            ready = [t for t, v in self.levels.items() if v == lv + 1]
            if waves[lv] or ready:
                plan.append(_Wave(waves[lv], ready, self.inputs))
        return plan

    def run(self, inputs, weights, zero_node):
        """The cell's states (inputs, then nodes) under `weights`: a float
        ``[edges, ops]`` mixture or an integer ``[edges]`` hard path.
        `zero_node()` makes a node that no edge reaches."""
        soft = weights.is_floating_point()
        plan = self.plan(None if soft else tuple(weights.tolist()))
        flat = weights.reshape(-1) if soft else None
        states, acc = dict(enumerate(inputs)), None
        for wave in plan:
            outs, cache = [], {}
            for group, index in zip(wave.groups, wave.group_index):
                weights_g = flat[index(flat.device)] if soft else None
                outs.append(group(group.inputs(states, cache), weights_g))
            for s, _, op, _, k in wave.alone:
                outs.append(op(states[s]) * flat[k] if soft else op(states[s]))
            if outs:
                y = _cat_channels(outs)
                B, _, H, W = y.shape
                targets = wave.targets(y.device)
                y = y.view(B, len(targets), -1, H, W)
                if acc is None:
                    acc = y.new_zeros(B, self.nodes, *y.shape[2:])
                acc = acc.index_add(1, targets, y)
            for t in wave.ready_after:
                states[t] = acc[:, t - self.inputs] if acc is not None else zero_node()
        return [states[i] for i in range(len(states))]


def _cat_channels(tensors):
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, dim=1)


def _format_of(x):
    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if channels_last else torch.contiguous_format


class _ToFormat(torch.autograd.Function):
    generate_vmap_rule = True  # torch.func (the Hessian's products) runs through it

    @staticmethod
    def forward(x, memory_format):
        return x.contiguous(memory_format=memory_format)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.memory_format = _format_of(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous(memory_format=ctx.memory_format), None


class _CatChannels(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(memory_format, *xs):
        return torch.cat(xs, dim=1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.memory_format, ctx.sizes = inputs[0], [x.shape[1] for x in inputs[1:]]

    @staticmethod
    def backward(ctx, grad):
        return (None,) + tuple(g.contiguous(memory_format=ctx.memory_format) for g in grad.split(ctx.sizes, dim=1))


def to_memory_format(x, memory_format):
    """`x` in `memory_format`, whose gradient goes back in x's own format.

    Why: `Tensor.contiguous` hands the gradient back as it came, and a ReLU or
    BatchNorm backward whose gradient and input differ in memory format falls
    off ATen's fast kernels (measured here, one thread, 64x64x32x32: ReLU
    backward 27 ms against 3 ms, BatchNorm backward about 2.5x slower)."""
    return x if x.is_contiguous(memory_format=memory_format) else _ToFormat.apply(x, memory_format)


def cat_channels_keeping(tensors, memory_format):
    """``torch.cat(tensors, dim=1)`` whose backward hands each input a
    `memory_format`-contiguous gradient rather than a strided channel slice
    (the same slow paths as in `to_memory_format`: a cell's nodes end in a
    BatchNorm and are read by ReLUs)."""
    return _CatChannels.apply(memory_format, *tensors)

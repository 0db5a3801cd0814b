"""The weight-sharing supernet: one network holding the weights `w` of every
candidate architecture (DARTS, Liu et al. 2019, Section 2; ENAS, Pham et al.
2018, Section 2.1).

The architecture is an argument of `forward`, never state inside the network:
``supernet(x, {"normal": A_n, "reduce": A_r})`` where each ``A`` is either

- a float tensor ``[edges, ops]`` of operation weights (the mixed operation,
  DARTS Eq. 1: ``o_bar(x) = sum_o weight_o * o(x)``), or
- an integer tensor ``[edges]`` with one operation index per edge (a hard
  path: only that operation is computed, as in ENAS or ASNG-NAS).

`none` is the zero operation: it is skipped, never computed as zeros.
"""
from __future__ import annotations

import torch
from torch import nn

from .architecture import ArchitectureError, check_arch_argument
from .genotypes import edge_endpoints, num_edges
from .grouped import GROUPED_MAX_PIXELS, CellPlan, cat_channels_keeping, chain_layers, run_chain, to_memory_format
from .network import stack_cells, stem
from .ops import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN, check_op_names

__all__ = ["MixedOp", "SearchCell", "FastSearchCell", "Supernet", "ArchitectureError", "darts_search_op"]


def darts_search_op(name: str, C: int, stride: int) -> nn.Module:
    """Operation `name` as the DARTS supernet builds it: BatchNorm without
    affine parameters, and a BatchNorm after each pooling."""
    op = OPS[name](C, stride, False)
    if "pool" in name:  # DARTS adds a BN without affine after pooling in the search
        op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
    return op


class MixedOp(nn.Module):
    """Every candidate operation of one edge (DARTS Eq. 1). `make_op(name, C,
    stride)` builds each candidate (default: as the DARTS supernet does; other
    spaces pass their own)."""

    def __init__(self, C: int, stride: int, primitives, make_op=darts_search_op):
        super().__init__()
        self.primitives = list(primitives)
        self._ops = nn.ModuleList(make_op(name, C, stride) for name in self.primitives)
        # Indices to compute under soft weights: every operation but `none`.
        self._computed = [k for k, name in enumerate(self.primitives) if name != "none"]

    def forward(self, x, weights):
        """`weights`: a float vector (mixed) or an integer index (hard path).
        Returns None when the edge contributes zero (`none`)."""
        if not weights.is_floating_point():
            k = int(weights)
            return None if self.primitives[k] == "none" else self._ops[k](x)
        return sum(weights[k] * self._ops[k](x) for k in self._computed)


class SearchCell(nn.Module):
    """A DARTS cell with a `MixedOp` on each of its edges; node i (from 2) sums
    the edges from every earlier state (DARTS Eq. 2)."""

    def __init__(self, steps, multiplier, C_prev_prev, C_prev, C, reduction, reduction_prev, primitives):
        super().__init__()
        self.reduction = reduction
        self.steps, self.multiplier = steps, multiplier
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C, affine=False) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1, primitives)
            for j, _ in edge_endpoints(steps)
        )

    def forward(self, s0, s1, weights):
        return torch.cat(self.states(s0, s1, weights)[-self.multiplier:], dim=1)

    def states(self, s0, s1, weights) -> list:
        """The cell's states: its two preprocessed inputs, then each node."""
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        states, offset = [s0, s1], 0
        for _ in range(self.steps):
            parts = [self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states)]
            parts = [p for p in parts if p is not None]
            states.append(sum(parts) if parts else self._zero_like(s1))
            offset += len(states) - 1
        return states

    def _zero_like(self, s1):
        # Every edge into this node was `none`: the node is zero (rare, hard paths only).
        n, c, h, w = s1.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return s1.new_zeros(n, c, h, w)


class FastSearchCell(SearchCell):
    """`SearchCell` with the same modules and parameters, run the fastest
    measured way (`benchmarks/supernet_step.py`, on a CPU):

    - output maps of at most `GROUPED_MAX_PIXELS` pixels: through
      `nasedu.grouped`, the edges whose source is ready computed together, each
      kind of operation as one call (a few dozen calls per cell instead of hundreds);
    - larger maps: the readable operations on channels_last tensors, which
      oneDNN's depthwise convolutions run about twice as fast, with every
      gradient handed back in the format of the tensor it belongs to
      (`to_memory_format`, `cat_channels_keeping`).

    Same outputs and gradients within float rounding; a state_dict of either
    cell loads into the other."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plan = CellPlan(edge_endpoints(self.steps), self._ops, inputs=2)
        self._preprocess = [chain_layers(self.preprocess0), chain_layers(self.preprocess1)]

    def forward(self, s0, s1, weights):
        h, w = s1.shape[-2:]
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        if h * w > GROUPED_MAX_PIXELS:
            cl = torch.channels_last
            states = self.states(to_memory_format(s0, cl), to_memory_format(s1, cl), weights)
            return cat_channels_keeping(states[-self.multiplier:], cl)
        if s1.device.type == "cpu":  # the grouped kernels were measured on NCHW tensors
            s0, s1 = (to_memory_format(s, torch.contiguous_format) for s in (s0, s1))
        s0, s1 = (run_chain(s, layers) for s, layers in zip((s0, s1), self._preprocess))
        states = self._plan.run([s0, s1], weights, lambda: self._zero_like(s1))
        return torch.cat(states[-self.multiplier:], dim=1)


class Supernet(nn.Module):
    """The DARTS search network (stem, `layers` cells with reduction cells at
    1/3 and 2/3 of the depth, global pooling, a linear classifier).

    Paper settings for CIFAR-10 search: ``C=16, layers=8, steps=4,
    multiplier=4, stem_multiplier=3`` (DARTS Section 3.1.1). `fast` runs the
    cells grouped (`FastSearchCell`); False runs the readable `SearchCell`.
    Both hold the same parameters.
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, in_channels: int = 3,
                 primitives=PRIMITIVES, fast: bool = True):
        super().__init__()
        if layers < 1 or steps < 1 or not 1 <= multiplier <= steps:
            raise ValueError("need layers >= 1, steps >= 1 and 1 <= multiplier <= steps; "
                             f"got {layers=}, {steps=}, {multiplier=}")
        self.primitives = check_op_names(primitives)
        self.C, self.num_classes, self.layers = C, num_classes, layers
        self.steps, self.multiplier = steps, multiplier
        self.num_edges = num_edges(steps)
        self.stem = stem(in_channels, stem_multiplier * C)
        cell = FastSearchCell if fast else SearchCell
        self.cells, out_channels = stack_cells(
            lambda *sizes: cell(steps, multiplier, *sizes, self.primitives), C, layers, stem_multiplier * C)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_channels[-1], num_classes)

    @property
    def arch_shape(self) -> tuple[int, int]:
        """Shape of one cell type's architecture weights: ``(edges, ops)``."""
        return (self.num_edges, len(self.primitives))

    def check_architecture(self, arch) -> None:
        """Raise `ArchitectureError` naming the problem if `arch` does not fit."""
        check_arch_argument(arch, {"normal": self.arch_shape, "reduce": self.arch_shape},
                            {"normal": self.primitives, "reduce": self.primitives})

    def forward(self, x, arch):
        self.check_architecture(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def choices(self):
        """``(table, edge, op index, module)`` of every candidate operation in every cell."""
        for cell in self.cells:
            for e, mixed in enumerate(cell._ops):
                for k, op in enumerate(mixed._ops):
                    yield ("reduce" if cell.reduction else "normal"), e, k, op

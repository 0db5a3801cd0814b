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

from .genotypes import Genotype, edge_endpoints, num_edges, validate_genotype
from .ops import OPS, PRIMITIVES, FactorizedReduce, ReLUConvBN, check_op_names

__all__ = ["MixedOp", "SearchCell", "Supernet", "ArchitectureError"]


class ArchitectureError(ValueError):
    """An architecture argument that does not fit the supernet."""


class MixedOp(nn.Module):
    """Every candidate operation of one edge (DARTS Eq. 1)."""

    def __init__(self, C: int, stride: int, primitives):
        super().__init__()
        self.primitives = list(primitives)
        self._ops = nn.ModuleList()
        for name in self.primitives:
            op = OPS[name](C, stride, False)
            if "pool" in name:  # DARTS adds a BN without affine after pooling in the search
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)
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
        s0, s1 = self.preprocess0(s0), self.preprocess1(s1)
        states, offset = [s0, s1], 0
        for _ in range(self.steps):
            parts = [self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states)]
            parts = [p for p in parts if p is not None]
            states.append(sum(parts) if parts else self._zero_like(s1))
            offset += len(states) - 1
        return torch.cat(states[-self.multiplier:], dim=1)

    def _zero_like(self, s1):
        # Every edge into this node was `none`: the node is zero (rare, hard paths only).
        n, c, h, w = s1.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return s1.new_zeros(n, c, h, w)


class Supernet(nn.Module):
    """The DARTS search network (stem, `layers` cells with reduction cells at
    1/3 and 2/3 of the depth, global pooling, a linear classifier).

    Paper settings for CIFAR-10 search: ``C=16, layers=8, steps=4,
    multiplier=4, stem_multiplier=3`` (DARTS Section 3.1.1).
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, steps: int = 4,
                 multiplier: int = 4, stem_multiplier: int = 3, in_channels: int = 3,
                 primitives=PRIMITIVES):
        super().__init__()
        if layers < 1 or steps < 1 or not 1 <= multiplier <= steps:
            raise ValueError(f"need layers >= 1, steps >= 1 and 1 <= multiplier <= steps; got {layers=}, {steps=}, {multiplier=}")
        self.primitives = check_op_names(primitives)
        self.C, self.num_classes, self.layers = C, num_classes, layers
        self.steps, self.multiplier = steps, multiplier
        self.num_edges = num_edges(steps)

        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction,
                                         reduction_prev, self.primitives))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    @property
    def arch_shape(self) -> tuple[int, int]:
        """Shape of one cell type's architecture weights: ``(edges, ops)``."""
        return (self.num_edges, len(self.primitives))

    def check_architecture(self, arch) -> None:
        """Raise `ArchitectureError` naming the problem if `arch` does not fit."""
        if not isinstance(arch, dict) or set(arch) != {"normal", "reduce"}:
            got = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
            raise ArchitectureError(f"architecture must be a dict with keys 'normal' and 'reduce', got {got}")
        for kind, a in arch.items():
            if not torch.is_tensor(a):
                raise ArchitectureError(f"arch[{kind!r}] must be a tensor, got {type(a).__name__}")
            if a.is_floating_point():
                if tuple(a.shape) != self.arch_shape:
                    raise ArchitectureError(
                        f"arch[{kind!r}] has shape {tuple(a.shape)}, expected {self.arch_shape} "
                        f"({self.num_edges} edges x {len(self.primitives)} operations: {self.primitives})")
            elif tuple(a.shape) != (self.num_edges,):
                raise ArchitectureError(
                    f"arch[{kind!r}] (operation indices) has shape {tuple(a.shape)}, expected ({self.num_edges},)")
            elif a.numel() and (int(a.min()) < 0 or int(a.max()) >= len(self.primitives)):
                raise ArchitectureError(f"arch[{kind!r}] holds indices outside 0..{len(self.primitives) - 1}")

    def forward(self, x, arch):
        self.check_architecture(arch)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def arch_from_genotype(self, genotype: Genotype) -> dict:
        """The hard architecture (one index per edge) of a genotype: its edges
        carry their operation, every other edge `none`."""
        g = validate_genotype(genotype, self.primitives)
        if "none" not in self.primitives:
            raise ArchitectureError("a genotype leaves edges out, which needs 'none' among the primitives")
        index = {e: k for k, e in enumerate(edge_endpoints(self.steps))}
        arch = {}
        for kind in ("normal", "reduce"):
            cell = getattr(g, kind)
            if len(cell) != 2 * self.steps:
                raise ArchitectureError(f"genotype.{kind} has {len(cell) // 2} nodes; this supernet has {self.steps}")
            a = torch.full((self.num_edges,), self.primitives.index("none"), dtype=torch.long)
            for k, (op, j) in enumerate(cell):
                if a[index[(j, k // 2 + 2)]] != self.primitives.index("none"):
                    raise ArchitectureError(f"genotype.{kind} uses input {j} twice for node {k // 2}; "
                                            "a supernet has one edge per (input, node) pair")
                a[index[(j, k // 2 + 2)]] = self.primitives.index(op)
            arch[kind] = a
        return arch

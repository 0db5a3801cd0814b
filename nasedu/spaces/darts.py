"""The DARTS cell space (Liu, Simonyan & Yang, ICLR 2019, Section 2.1).

A network stacks `layers` cells, reduction cells at 1/3 and 2/3 of the depth.
Each cell has two inputs (the two previous cells), `steps` intermediate nodes
and an output that concatenates the last `multiplier` nodes. Every edge from
an earlier state to a node carries one of `primitives`; a discrete cell keeps
two incoming edges per node. There are two tables, ``normal`` and
``reduce``, one row per edge (14 for 4 steps) and one column per operation:
DARTS's ``alphas_normal`` and ``alphas_reduce``.

The operations live in `nasedu.ops`, the cells written down in
`nasedu.genotypes`, the supernet in `nasedu.supernet` and the retrained
network in `nasedu.network`; this class ties them together.
"""
from __future__ import annotations

import math

import torch

from ..architecture import ArchitectureError, Table
from ..genotypes import (Genotype, derive_genotype, edge_endpoints, edge_labels, genotype_from_data, load_genotype,
                         num_edges, parse_genotype, validate_genotype)
from ..ops import PRIMITIVES, check_op_names
from .base import SearchSpace

__all__ = ["DartsCellSpace"]

KINDS = ("normal", "reduce")


class DartsCellSpace(SearchSpace):
    """The DARTS cell space and the DARTS search skeleton.

    `C` and `layers` size the supernet (the paper's CIFAR-10 search: 16 and 8)
    and, unless `network` is given others, the stand-alone network;
    `stem_multiplier` widens the stem (3 in the paper).
    """

    name = "darts"
    title = "DARTS cell"
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019"

    def __init__(self, C: int = 16, layers: int = 8, steps: int = 4, multiplier: int = 4, primitives=PRIMITIVES,
                 stem_multiplier: int = 3):
        if layers < 1 or steps < 1 or not 1 <= multiplier <= steps or C < 1:
            raise ValueError(f"need C >= 1, layers >= 1, steps >= 1 and 1 <= multiplier <= steps; "
                             f"got {C=}, {layers=}, {steps=}, {multiplier=}")
        self.C, self.layers, self.steps, self.multiplier = int(C), int(layers), int(steps), int(multiplier)
        self.primitives = check_op_names(primitives)
        if "none" in self.primitives and self.primitives[0] != "none":
            raise ValueError(f"'none' must come first among the primitives (the DARTS order), got {self.primitives}")
        self.stem_multiplier = int(stem_multiplier)

    @classmethod
    def fitting(cls, genotype, **options) -> "DartsCellSpace":
        """The space whose cells have as many nodes as `genotype`'s (NASNet's 5, DARTS's 4)."""
        g = validate_genotype(genotype)
        steps = len(g.normal) // 2
        return cls(steps=steps, multiplier=max(1, min(steps, len(g.normal_concat))), **options)

    def config(self) -> dict:
        return {"name": self.name, "C": self.C, "layers": self.layers, "steps": self.steps,
                "multiplier": self.multiplier, "primitives": list(self.primitives),
                "stem_multiplier": self.stem_multiplier}

    # -- the choices ----------------------------------------------------------------
    def tables(self) -> dict:
        E, O = num_edges(self.steps), len(self.primitives)
        uniform = torch.full((E, O), 1.0 / O)
        labels = edge_labels(self.steps)
        return {"normal": Table(uniform, labels, self.primitives, title="normal cell"),
                "reduce": Table(uniform, labels, self.primitives, title="reduction cell")}

    def size(self) -> int:
        """Node i keeps 2 of its i + 2 inputs and one of the operations but
        `none` on each: prod_i C(i+2, 2) * (|O| - 1)^2 per cell, squared for the
        pair (about 10^18 for the DARTS space, as the paper says)."""
        ops = len([p for p in self.primitives if p != "none"])
        one_cell = math.prod(math.comb(i + 2, 2) * ops ** 2 for i in range(self.steps))
        return one_cell ** 2

    # -- discrete architectures -------------------------------------------------------
    def derive(self, probabilities: dict) -> Genotype:
        """The DARTS rule (Section 2.4): per node, the two edges whose strongest
        non-`none` probability is largest, and on each its strongest non-`none` op."""
        return derive_genotype(probabilities["normal"], probabilities["reduce"], self.steps, self.multiplier,
                               self.primitives, logits=False)

    def _concat(self):
        return list(range(2 + self.steps - self.multiplier, self.steps + 2))

    def encode(self, genotype) -> dict:
        """One operation index per edge: the genotype's edges carry their
        operation, every other edge `none`."""
        g = self.validate(genotype)
        if "none" not in self.primitives:
            raise ArchitectureError("a genotype leaves edges out, which needs 'none' among the primitives")
        index = {e: k for k, e in enumerate(edge_endpoints(self.steps))}
        none = self.primitives.index("none")
        out = {}
        for kind in KINDS:
            a = torch.full((num_edges(self.steps),), none, dtype=torch.long)
            for k, (op, j) in enumerate(getattr(g, kind)):
                if a[index[(j, k // 2 + 2)]] != none:
                    raise ArchitectureError(f"genotype.{kind} uses input {j} twice for node {k // 2}; "
                                            "a supernet has one edge per (input, node) pair")
                a[index[(j, k // 2 + 2)]] = self.primitives.index(op)
            out[kind] = a
        return out

    def canonical(self, genotype) -> Genotype:
        """The same cells with each node's two pairs in input order (a node sums
        its two edges, so their order changes nothing)."""
        g = self.validate(genotype)
        cells = {k: [p for i in range(0, len(getattr(g, k)), 2) for p in sorted(getattr(g, k)[i:i + 2], key=lambda p: p[1])]
                 for k in KINDS}
        return g._replace(**cells)

    def decode(self, indices: dict) -> Genotype:
        """The genotype of one operation index per edge (each node's pairs in
        input order); each node must have exactly two edges that are not `none`."""
        cells = {}
        for kind in KINDS:
            a = torch.as_tensor(indices[kind]).tolist()
            pairs, start = [], 0
            for i in range(self.steps):
                kept = [(self.primitives[a[start + j]], j) for j in range(i + 2) if self.primitives[a[start + j]] != "none"]
                if len(kept) != 2:
                    raise ArchitectureError(f"{kind} cell, node {i}: {len(kept)} edges are not 'none'; "
                                            "a DARTS cell keeps exactly two inputs per node")
                pairs += kept
                start += i + 2
            cells[kind] = pairs
        return Genotype(cells["normal"], self._concat(), cells["reduce"], self._concat())

    def sample(self, generator=None) -> Genotype:
        """Per node, two distinct inputs and an operation (not `none`) on each, uniformly."""
        ops = [p for p in self.primitives if p != "none"]
        cells = {}
        for kind in KINDS:
            pairs = []
            for i in range(self.steps):
                inputs = torch.randperm(i + 2, generator=generator)[:2].sort().values.tolist()
                pairs += [(ops[int(torch.randint(len(ops), (1,), generator=generator))], j) for j in inputs]
            cells[kind] = pairs
        return Genotype(cells["normal"], self._concat(), cells["reduce"], self._concat())

    def from_data(self, data) -> Genotype:
        return self._fits(genotype_from_data(data))

    def parse(self, text: str) -> Genotype:
        """A published genotype's name (``"DARTS_V2"``) or the printed ``Genotype(...)``."""
        text = text.strip()
        return self._fits(load_genotype(text) if text.isidentifier() else parse_genotype(text))

    def validate(self, architecture) -> Genotype:
        if isinstance(architecture, str):
            return self.parse(architecture)
        return self._fits(validate_genotype(architecture, self.primitives))

    def _fits(self, genotype: Genotype) -> Genotype:
        g = validate_genotype(genotype)
        for kind in KINDS:
            nodes = len(getattr(g, kind)) // 2
            if nodes != self.steps:
                raise ArchitectureError(f"genotype.{kind} has {nodes} nodes; this space's cells have {self.steps} "
                                        f"(DartsCellSpace(steps={nodes}) would fit it)")
        return g

    # -- networks ------------------------------------------------------------------------
    def supernet(self, num_classes: int, in_channels: int, fast: bool = True):
        from ..supernet import Supernet

        return Supernet(self.C, num_classes, self.layers, self.steps, self.multiplier, self.stem_multiplier,
                        in_channels, self.primitives, fast=fast)

    def network_options(self) -> dict:
        return {"C": self.C, "layers": self.layers, "auxiliary": False, "drop_path_prob": 0.0}

    def network(self, architecture, num_classes: int, in_channels: int, *, C: int | None = None,
                layers: int | None = None, auxiliary: bool = False, drop_path_prob: float = 0.0):
        """The DARTS evaluation network (``NetworkCIFAR``) of a genotype; any
        genotype of the DARTS operations builds (NASNet's cells too)."""
        from ..network import Network

        genotype = load_genotype(architecture) if isinstance(architecture, str) else validate_genotype(architecture)
        return Network(genotype, C or self.C, num_classes, layers or self.layers,
                       auxiliary=auxiliary, drop_path_prob=drop_path_prob, in_channels=in_channels,
                       stem_multiplier=self.stem_multiplier)

"""NAS-RL's chain ("macro") space (Zoph & Le, "Neural Architecture Search with
Reinforcement Learning", ICLR 2017, Sections 3.1 and 3.3, Figure 4).

A network is a chain of convolutional layers. For each layer the controller
chooses, token by token,

- the filter height and the filter width, each in {1, 3, 5, 7};
- the number of filters, in {24, 36, 48, 64};
- at the layer's *anchor point*, which earlier layers feed it (skip
  connections: one yes/no per earlier layer, Section 3.3).

Each layer is a convolution (stride 1, "same" padding), batch norm and ReLU.
Its input is the depth-wise concatenation of the layers chosen at its anchor
point; the paper's three rules (Section 3.3) finish the network:

1. a layer connected to no earlier layer takes the image as its input;
2. every layer no later layer reads (a "loose end", the last layer always
   among them) is concatenated into the final hidden state, which goes to
   the classifier (here: global average pooling and a linear layer);
3. inputs of different sizes are zero-padded to the largest before they are
   concatenated (with stride 1 and odd kernels they never differ; the rule
   is kept so the network is the paper's).

The paper's first experiment also predicts strides (and its best network
adds pooling layers); neither is searched here. Its search starts at 6 layers
and adds 2 every 1,600 sampled networks (Section 4.1); this space holds
chains of 1 to `layers` layers, so the architectures of such a growing search
all belong to it (the growth lives in `nasedu.strategies.nas_rl`).

What is scaled for 8x8 digits is set by the budget (`nasedu.budgets`): a
few layers instead of up to 15, and fewer filters per option. An
architecture is written layer by layer, ``"3x3x36 | 5x1x24 <- 1 | 7x7x64 <- 1,2"``:
filter height x width x filters, then the earlier layers it reads.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..architecture import Architecture, ArchitectureError, Table
from .base import SearchSpace

__all__ = ["ChainLayer", "ChainArch", "ChainSpace", "ChainNetwork", "KERNELS", "FILTERS", "concat_padded"]

KERNELS = (1, 3, 5, 7)  # filter heights and widths (Section 4.1)
FILTERS = (24, 36, 48, 64)  # numbers of filters (Section 4.1)
SKIP_OPTIONS = ("no", "yes")


class ChainLayer(NamedTuple):
    """One layer: its filter `height` and `width`, its number of `filters`, and
    the earlier layers it reads (`inputs`, numbered from 1; empty: the image)."""

    height: int
    width: int
    filters: int
    inputs: tuple = ()

    def __str__(self):
        reads = f" <- {','.join(str(j) for j in self.inputs)}" if self.inputs else ""
        return f"{self.height}x{self.width}x{self.filters}{reads}"


_LAYER = re.compile(r"(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*(?:<-\s*([\d,\s]*))?")


class ChainArch(tuple, Architecture):
    """A chain of `ChainLayer`s: ``ChainArch.parse("3x3x36 | 5x1x24 <- 1")``."""

    __slots__ = ()
    parts = ("network",)
    part_titles = {"network": "network"}

    def __new__(cls, layers):
        if isinstance(layers, str):
            return cls.parse(layers)
        out = []
        for i, layer in enumerate(layers, start=1):
            if isinstance(layer, dict):
                layer = (layer["height"], layer["width"], layer["filters"], layer.get("inputs", ()))
            h, w, f, *rest = layer
            inputs = tuple(sorted({int(j) for j in (rest[0] if rest else ())}))
            if min(int(h), int(w), int(f)) < 1:
                raise ArchitectureError(f"layer {i}: filter height, width and number must be positive, got {layer}")
            if any(not 1 <= j < i for j in inputs):
                raise ArchitectureError(f"layer {i} can read only earlier layers 1..{i - 1}, got inputs {list(inputs)}")
            out.append(ChainLayer(int(h), int(w), int(f), inputs))
        if not out:
            raise ArchitectureError("a chain needs at least one layer")
        return super().__new__(cls, out)

    @classmethod
    def parse(cls, text: str) -> "ChainArch":
        """Read ``"HxWxF | HxWxF <- j,k | ..."`` (the format `str` writes)."""
        layers = []
        for i, part in enumerate(str(text).split("|"), start=1):
            match = _LAYER.fullmatch(part.strip())
            if not match:
                raise ArchitectureError(f"layer {i}: expected 'HxWxF' or 'HxWxF <- j,k' (filter height x width x "
                                        f"filters, then the earlier layers it reads), got {part.strip()!r}")
            reads = [j for j in re.split(r"[,\s]+", match.group(4) or "") if j]
            layers.append((int(match.group(1)), int(match.group(2)), int(match.group(3)), [int(j) for j in reads]))
        return cls(layers)

    def __str__(self):
        return " | ".join(str(layer) for layer in self)

    def __repr__(self):
        return f"ChainArch({str(self)!r})"

    @property
    def depth(self) -> int:
        return len(self)

    def loose_ends(self) -> list[int]:
        """The layers (numbered from 1) that no later layer reads: concatenated at the output (rule 2)."""
        read = {j for layer in self for j in layer.inputs}
        return [i for i in range(1, len(self) + 1) if i not in read]

    def to_data(self) -> str:
        return str(self)

    def decisions(self) -> dict:
        """One decision per layer (its convolution, ``"HxWxF"``) and one per pair of layers (a skip, yes or no)."""
        out = {}
        for i, layer in enumerate(self, start=1):
            out[f"network: layer {i}"] = f"{layer.height}x{layer.width}x{layer.filters}"
            out.update({f"network: layer {i} <- {j}": SKIP_OPTIONS[j in layer.inputs] for j in range(1, i)})
        return out

    def diagram(self, part="network", title=None):
        from ..viz.diagram import Diagram, Edge, Node

        self._check_part(part)
        nodes = [Node("image", "image", "input")]
        nodes += [Node(str(i), f"{i}: {layer.height}x{layer.width}, {layer.filters}", "node", key=f"network: layer {i}")
                  for i, layer in enumerate(self, start=1)]
        nodes.append(Node("output", "concat + classifier", "output"))
        edges = []
        for i, layer in enumerate(self, start=1):
            if not layer.inputs:
                edges.append(Edge("image", str(i), "concat", tooltip=f"layer {i} reads the image"))
            edges += [Edge(str(j), str(i), "op", colour="#4e79a7" if j == i - 1 else "#e15759",
                           width=2.0, key=f"network: layer {i} <- {j}", tooltip=f"layer {j} -> layer {i}")
                      for j in layer.inputs]
        edges += [Edge(str(j), "output", "concat", tooltip=f"layer {j}: a loose end") for j in self.loose_ends()]
        return Diagram(nodes, edges, title)


# ---------------------------------------------------------------------------
# The stand-alone network
# ---------------------------------------------------------------------------

def concat_padded(maps: list) -> torch.Tensor:
    """Concatenate feature maps along depth, zero-padding smaller maps at the
    bottom and right to the largest height and width (Section 3.3, rule 3)."""
    if len(maps) == 1:
        return maps[0]
    H, W = max(m.shape[2] for m in maps), max(m.shape[3] for m in maps)
    return torch.cat([F.pad(m, (0, W - m.shape[3], 0, H - m.shape[2])) for m in maps], dim=1)


class ChainNetwork(nn.Module):
    """The network of one chain: conv (stride 1, same padding) - BN - ReLU per
    layer, inputs as its anchor point chose them, loose ends concatenated,
    global average pooling and a linear classifier."""

    def __init__(self, arch: ChainArch, num_classes: int, in_channels: int):
        super().__init__()
        self.arch = arch
        widths = [layer.filters for layer in arch]
        self.layers = nn.ModuleList()
        for layer in arch:
            C_in = sum(widths[j - 1] for j in layer.inputs) if layer.inputs else in_channels
            self.layers.append(nn.Sequential(
                nn.Conv2d(C_in, layer.filters, (layer.height, layer.width),
                          padding=(layer.height // 2, layer.width // 2), bias=False),
                nn.BatchNorm2d(layer.filters), nn.ReLU(inplace=False)))
        self.loose = arch.loose_ends()
        self.classifier = nn.Linear(sum(widths[j - 1] for j in self.loose), num_classes)

    def forward(self, x):
        outputs = []
        for layer, spec in zip(self.layers, self.arch):
            outputs.append(layer(concat_padded([outputs[j - 1] for j in spec.inputs]) if spec.inputs else x))
        final = concat_padded([outputs[j - 1] for j in self.loose])
        return self.classifier(F.adaptive_avg_pool2d(final, 1).flatten(1))


# ---------------------------------------------------------------------------
# The space
# ---------------------------------------------------------------------------

def skip_rows(depth: int) -> list[tuple[int, int]]:
    """``(i, j)``: layer i may read layer j, for every j < i <= depth (the order of the anchor points' sigmoids)."""
    return [(i, j) for i in range(2, depth + 1) for j in range(1, i)]


class ChainSpace(SearchSpace):
    """Chains of 1 to `layers` layers with filter heights and widths from
    `kernels` and numbers of filters from `filters` (the paper's values by
    default). Its tables (one row per decision of a `layers`-deep chain):
    ``filter_height``, ``filter_width``, ``filters`` (a row per layer) and
    ``skips`` (a row ``"layer i <- j"`` per pair, options no / yes)."""

    name = "chain"
    title = "NAS-RL chain"
    paper = "Zoph & Le, Neural Architecture Search with Reinforcement Learning, ICLR 2017"

    def __init__(self, layers: int = 15, kernels=KERNELS, filters=FILTERS):
        self.layers = int(layers)
        self.kernels, self.filters = tuple(int(k) for k in kernels), tuple(int(f) for f in filters)
        if self.layers < 1:
            raise ValueError(f"a chain needs at least one layer, got layers={layers}")
        for name, values in (("kernels", self.kernels), ("filters", self.filters)):
            if not values or min(values) < 1 or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct positive integers (the options of a decision), "
                                 f"got {list(values)}")

    def config(self) -> dict:
        return {"name": self.name, "layers": self.layers, "kernels": list(self.kernels),
                "filters": list(self.filters)}

    # -- the choices --------------------------------------------------------------------
    def tables(self, depth: int | None = None) -> dict:
        """Uniform tables of a chain of `depth` layers (default: `layers`)."""
        depth = self.layers if depth is None else depth
        rows = [f"layer {i}" for i in range(1, depth + 1)]
        kernels, counts = [str(k) for k in self.kernels], [str(f) for f in self.filters]

        def uniform(row_labels, columns, title):
            return Table(torch.full((len(row_labels), len(columns)), 1.0 / len(columns)), row_labels, columns,
                         title=title)
        tables = {"filter_height": uniform(rows, kernels, "filter height"),
                  "filter_width": uniform(rows, kernels, "filter width"),
                  "filters": uniform(rows, counts, "number of filters")}
        if depth > 1:
            tables["skips"] = uniform([f"layer {i} <- {j}" for i, j in skip_rows(depth)], list(SKIP_OPTIONS),
                                      "skip connections (anchor points)")
        return tables

    def size(self) -> int:
        """Chains of exactly `layers` layers: (kernels^2 filters)^L 2^(L (L - 1) / 2)."""
        L = self.layers
        return (len(self.kernels) ** 2 * len(self.filters)) ** L * 2 ** (L * (L - 1) // 2)

    # -- discrete architectures -----------------------------------------------------------
    def decode(self, indices: dict) -> ChainArch:
        """The chain of one option index per row; its depth is the number of rows of ``filter_height``."""
        h, w, f = (torch.as_tensor(indices[k]).tolist() for k in ("filter_height", "filter_width", "filters"))
        depth = len(h)
        pairs = skip_rows(depth)
        skips = torch.as_tensor(indices.get("skips", [])).tolist() if depth > 1 else []
        if not len(w) == len(f) == depth or len(skips) != len(pairs):
            raise ArchitectureError(f"a chain of {depth} layers needs {depth} rows of filter_height, filter_width and "
                                    f"filters and {len(pairs)} of skips, got {len(w)}, {len(f)} and {len(skips)}")
        inputs = {i: [] for i in range(1, depth + 1)}
        for (i, j), on in zip(pairs, skips):
            if on:
                inputs[i].append(j)
        return self.validate(ChainArch([(self.kernels[h[i - 1]], self.kernels[w[i - 1]], self.filters[f[i - 1]],
                                         inputs[i]) for i in range(1, depth + 1)]))

    def encode(self, architecture) -> dict:
        arch = self.validate(architecture)
        if arch.depth != self.layers:
            raise ArchitectureError(f"encode gives one option per row of this space's {self.layers}-layer tables; "
                                    f"this chain has {arch.depth} layers (ChainSpace(layers={arch.depth}) encodes it)")
        return {"filter_height": torch.tensor([self.kernels.index(la.height) for la in arch]),
                "filter_width": torch.tensor([self.kernels.index(la.width) for la in arch]),
                "filters": torch.tensor([self.filters.index(la.filters) for la in arch]),
                **({"skips": torch.tensor([int(j in arch[i - 1].inputs) for i, j in skip_rows(arch.depth)])}
                   if arch.depth > 1 else {})}

    def derive(self, probabilities: dict) -> ChainArch:
        """The most probable option of every row; a skip where "yes" is more probable than "no"."""
        return self.decode({k: torch.as_tensor(P).argmax(dim=1) for k, P in probabilities.items()})

    def sample(self, generator=None) -> ChainArch:
        """A chain of `layers` layers drawn uniformly (every option and every skip equally likely)."""
        return self.decode({k: torch.randint(t.probabilities.shape[1], (len(t.rows),), generator=generator)
                            for k, t in self.tables().items()})

    def from_data(self, data) -> ChainArch:
        arch = data if isinstance(data, ChainArch) else ChainArch(data)
        if arch.depth > self.layers:
            raise ArchitectureError(f"this chain has {arch.depth} layers; the space holds chains of at most "
                                    f"{self.layers}")
        for i, layer in enumerate(arch, start=1):
            if layer.height not in self.kernels or layer.width not in self.kernels:
                raise ArchitectureError(f"layer {i}: filter {layer.height}x{layer.width}; the space's filter heights "
                                        f"and widths are {list(self.kernels)}")
            if layer.filters not in self.filters:
                raise ArchitectureError(f"layer {i}: {layer.filters} filters; the space's numbers of filters are "
                                        f"{list(self.filters)}")
        return arch

    def parse(self, text: str) -> ChainArch:
        return self.from_data(ChainArch.parse(text))

    # -- networks -------------------------------------------------------------------------
    def supernet(self, num_classes: int, in_channels: int, fast: bool = True):
        raise NotImplementedError("the chain space has no supernet: NAS-RL trains every child network from scratch "
                                  "(strategy 'nas_rl', or 'random' with data)")

    def network(self, architecture, num_classes: int, in_channels: int):
        return ChainNetwork(self.validate(architecture), num_classes, in_channels)

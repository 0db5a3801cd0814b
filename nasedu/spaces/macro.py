"""The NAS-Bench-Macro space (Su et al., "Prioritized Architecture Sampling
with Monte-Carlo Tree Search", CVPR 2021): a chain of 8 searched layers.

Each layer is one of three blocks, written as a digit (the authors' names):

- ``0`` ``id``: the identity (at the first layer of a stage, a 1x1 convolution
  with stride 2 and batch norm, since the width doubles there);
- ``1`` ``ir_3x3_t3``: a MobileNetV2 inverted residual block, 3x3 depthwise
  kernel, expansion 3;
- ``2`` ``ir_5x5_t6``: the same with a 5x5 kernel and expansion 6.

The skeleton (the authors' ``train/model.py``): a 3x3 stem convolution to C =
32 channels with BN and ReLU; the 8 layers in stages of 2, 3 and 3, the first
layer of each stage with stride 2 and twice the width (32 -> 64 -> 128 ->
256); a 1x1 convolution to 1280 channels with BN and ReLU, global pooling and
a linear classifier. A block keeps its residual shortcut only at stride 1.

An architecture is its 8-digit code, ``"22212220"``; there are 3^8 = 6,561
codes but only 3,969 distinct networks: an identity after a stage's first
layer computes nothing, so codes that differ only in where such identities
sit are one network (`MacroArch.canonical` moves them to the stage's end).
`nasedu.bench.load("nas-bench-macro")` gives every code's CIFAR-10 accuracy.
"""
from __future__ import annotations

import itertools

import torch
from torch import nn

from ..architecture import Architecture, ArchitectureError, Table, check_arch_argument
from ..supernet import MixedOp
from .base import SearchSpace

__all__ = ["MACRO_OPS", "STAGES", "MacroArch", "MacroSpace", "MacroSupernet", "MacroNetwork", "InvertedResidual"]

MACRO_OPS = ["id", "ir_3x3_t3", "ir_5x5_t6"]  # digits 0, 1, 2
STAGES = (2, 3, 3)
LAYERS = sum(STAGES)
STAGE_STARTS = tuple(sum(STAGES[:s]) for s in range(len(STAGES)))  # layers with stride 2: 0, 2, 5


class MacroArch(str, Architecture):
    """One NAS-Bench-Macro network: its 8-digit code, e.g. ``MacroArch("22212220")``."""

    __slots__ = ()
    parts = ("network",)
    part_titles = {"network": "network"}

    def __new__(cls, code):
        if isinstance(code, (list, tuple)):
            code = "".join(str(MACRO_OPS.index(c)) if c in MACRO_OPS else str(c) for c in code)
        code = str(code).strip()
        if len(code) != LAYERS or any(c not in "012" for c in code):
            raise ArchitectureError(f"a NAS-Bench-Macro architecture is {LAYERS} digits 0/1/2 (one per layer: "
                                    f"0 {MACRO_OPS[0]}, 1 {MACRO_OPS[1]}, 2 {MACRO_OPS[2]}), got {code!r}")
        return super().__new__(cls, code)

    def __repr__(self):
        return f"MacroArch({str(self)!r})"

    @property
    def ops(self) -> list[str]:
        return [MACRO_OPS[int(c)] for c in self]

    def canonical(self) -> "MacroArch":
        """The code of the same network with each stage's later identities moved
        to the stage's end (the authors' ``get_real_arch``): equal networks, equal codes."""
        out, start = [], 0
        for n in STAGES:
            stage = self[start:start + n]
            rest = [c for c in stage[1:] if c != "0"]
            out += [stage[0], *rest, *"0" * (n - 1 - len(rest))]
            start += n
        return MacroArch("".join(out))

    def to_data(self) -> str:
        return str(self)

    def decisions(self) -> dict:
        return {f"network: layer {k + 1}": op for k, op in enumerate(self.ops)}

    def diagram(self, part="network", title=None):
        from ..viz.diagram import Diagram, Edge, Node, op_colour

        self._check_part(part)
        nodes = [Node("stem", "stem", "input")]
        nodes += [Node(str(k + 1), f"{k + 1} \u2193" if k in STAGE_STARTS else str(k + 1), "node")
                  for k in range(LAYERS)]
        nodes.append(Node("head", "head", "output"))
        edges = []
        for k, op in enumerate(self.ops):
            tail = nodes[k].id
            idle = op == "id" and k not in STAGE_STARTS  # computes nothing
            edges.append(Edge(tail, str(k + 1), "op", label=op, colour=op_colour(op), width=2.0,
                              style="dotted" if idle else "solid", key=f"network: layer {k + 1}",
                              tooltip=f"layer {k + 1}: {op}" + (" (stride 2)" if k in STAGE_STARTS else "")))
        edges.append(Edge(str(LAYERS), "head", "concat"))
        return Diagram(nodes, edges, title)


# ---------------------------------------------------------------------------
# Blocks and networks (the authors' train/model.py, re-implemented)
# ---------------------------------------------------------------------------

class IdentityBlock(nn.Module):
    """`id`: nothing, or a 1x1 convolution and BN where the stride or the width changes."""

    def __init__(self, C_in, C_out, stride):
        super().__init__()
        self.downsample = (nn.Sequential(nn.Conv2d(C_in, C_out, 1, stride=stride, bias=False), nn.BatchNorm2d(C_out))
                           if stride != 1 or C_in != C_out else None)

    def forward(self, x):
        return x if self.downsample is None else self.downsample(x)


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al. 2018): 1x1 expansion to `t` times
    the input width, k x k depthwise convolution (carrying the stride), 1x1
    linear projection, each with BN; ReLU after the first two; a residual
    shortcut at stride 1 with equal widths."""

    def __init__(self, C_in, C_out, stride, t, k):
        super().__init__()
        hidden = round(C_in * t)
        self.conv = nn.Sequential(
            nn.Conv2d(C_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=False),
            nn.Conv2d(hidden, hidden, k, stride, padding=k // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=False),
            nn.Conv2d(hidden, C_out, 1, bias=False), nn.BatchNorm2d(C_out),
        )
        self.shortcut = stride == 1 and C_in == C_out

    def forward(self, x):
        return self.conv(x) + x if self.shortcut else self.conv(x)


def macro_block(name: str, C_in: int, C_out: int, stride: int) -> nn.Module:
    if name == "id":
        return IdentityBlock(C_in, C_out, stride)
    if name == "ir_3x3_t3":
        return InvertedResidual(C_in, C_out, stride, t=3, k=3)
    if name == "ir_5x5_t6":
        return InvertedResidual(C_in, C_out, stride, t=6, k=5)
    raise ArchitectureError(f"unknown block {name!r}; NAS-Bench-Macro's blocks are {MACRO_OPS}")


def layer_plan(C: int):
    """``(C_in, C_out, stride)`` of each of the 8 layers."""
    plan, width = [], C
    for k in range(LAYERS):
        if k in STAGE_STARTS:
            plan.append((width, 2 * width, 2))
            width *= 2
        else:
            plan.append((width, width, 1))
    return plan


class _Skeleton(nn.Module):
    def __init__(self, layers, C, C_last, head, num_classes, in_channels):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C),
                                  nn.ReLU(inplace=False))
        self.layers = layers
        self.out = nn.Sequential(nn.Conv2d(C_last, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU(inplace=False),
                                 nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(head, num_classes)


class MacroNetwork(_Skeleton):
    """The stand-alone network of one code (the authors' ``Network``)."""

    def __init__(self, arch: MacroArch, C, head, num_classes, in_channels):
        plan = layer_plan(C)
        layers = nn.Sequential(*[macro_block(op, *sizes) for op, sizes in zip(arch.ops, plan)])
        super().__init__(layers, C, plan[-1][1], head, num_classes, in_channels)

    def forward(self, x):
        return self.classifier(self.out(self.layers(self.stem(x))).flatten(1))


class MacroSupernet(_Skeleton):
    """Every code at once: ``supernet(x, {"layers": A})`` with A the weights
    [8, 3] of a mixture of the three blocks per layer or one block index per layer."""

    def __init__(self, C, head, num_classes, in_channels):
        plan = layer_plan(C)
        layers = nn.ModuleList(MixedOp(C_in, stride, MACRO_OPS, lambda name, c, s, C_out=C_out: macro_block(name, c, C_out, s))
                               for C_in, C_out, stride in plan)
        super().__init__(layers, C, plan[-1][1], head, num_classes, in_channels)
        self.shapes = {"layers": (LAYERS, len(MACRO_OPS))}

    def forward(self, x, arch):
        check_arch_argument(arch, self.shapes, {"layers": MACRO_OPS})
        x = self.stem(x)
        for layer, weights in zip(self.layers, arch["layers"]):
            x = layer(x, weights)
        return self.classifier(self.out(x).flatten(1))

    def choices(self):
        for k, mixed in enumerate(self.layers):
            for option, block in enumerate(mixed._ops):
                yield "layers", k, option, block


# ---------------------------------------------------------------------------
# The space
# ---------------------------------------------------------------------------

class MacroSpace(SearchSpace):
    """The NAS-Bench-Macro chain with the authors' skeleton: stem width `C`
    (32 in the paper) and a head of `head` channels (1280)."""

    name = "macro"
    title = "NAS-Bench-Macro chain"
    paper = "Su et al., Prioritized Architecture Sampling with Monte-Carlo Tree Search, CVPR 2021"

    def __init__(self, C: int = 32, head: int = 1280):
        if C < 1 or head < 1:
            raise ValueError(f"need C >= 1 and head >= 1, got {C=}, {head=}")
        self.C, self.head = int(C), int(head)

    def config(self) -> dict:
        return {"name": self.name, "C": self.C, "head": self.head}

    def tables(self) -> dict:
        uniform = torch.full((LAYERS, len(MACRO_OPS)), 1.0 / len(MACRO_OPS))
        rows = [f"layer {k + 1}" + (" (stride 2)" if k in STAGE_STARTS else "") for k in range(LAYERS)]
        return {"layers": Table(uniform, rows, MACRO_OPS, title="layers")}

    def ordinal_tables(self) -> tuple:
        """A layer's options grow in order: no block, a small block (3x3, expansion 3), a large one (5x5,
        expansion 6); a strategy may search each layer as an ordinal variable (`ASNGNAS(ordinal=True)`)."""
        return ("layers",)

    def size(self) -> int:
        """3^8 codes (3,969 distinct networks: see `MacroArch.canonical`)."""
        return len(MACRO_OPS) ** LAYERS

    def all(self, distinct: bool = False):
        """Every code, or with `distinct` one canonical code per network."""
        codes = [MacroArch("".join(d)) for d in itertools.product("012", repeat=LAYERS)]
        return sorted({c.canonical() for c in codes}) if distinct else codes

    def derive(self, probabilities: dict) -> MacroArch:
        """The most probable block of every layer."""
        P = torch.as_tensor(probabilities["layers"], dtype=torch.float64)
        if tuple(P.shape) != (LAYERS, len(MACRO_OPS)):
            raise ArchitectureError(f"probabilities['layers'] has shape {tuple(P.shape)}, expected "
                                    f"{(LAYERS, len(MACRO_OPS))}")
        return MacroArch("".join(str(int(k)) for k in P.argmax(dim=1)))

    def encode(self, architecture) -> dict:
        return {"layers": torch.tensor([int(c) for c in self.validate(architecture)], dtype=torch.long)}

    def decode(self, indices: dict) -> MacroArch:
        return MacroArch("".join(str(int(k)) for k in torch.as_tensor(indices["layers"]).tolist()))

    def sample(self, generator=None) -> MacroArch:
        """A code drawn uniformly (over codes, not over distinct networks)."""
        return self.decode({"layers": torch.randint(len(MACRO_OPS), (LAYERS,), generator=generator)})

    def from_data(self, data) -> MacroArch:
        return MacroArch(data)

    def parse(self, text: str) -> MacroArch:
        return MacroArch(text)

    def validate(self, architecture) -> MacroArch:
        return MacroArch(architecture)

    def canonical(self, architecture) -> MacroArch:
        return self.validate(architecture).canonical()

    def supernet(self, num_classes: int, in_channels: int, fast: bool = True):
        # No grouped path: 8 layers of 3 residual blocks make few calls (`fast` is accepted for the contract).
        return MacroSupernet(self.C, self.head, num_classes, in_channels)

    def network_options(self) -> dict:
        return {"C": self.C, "head": self.head}

    def network(self, architecture, num_classes: int, in_channels: int, *, C: int | None = None,
                head: int | None = None):
        return MacroNetwork(self.validate(architecture), C or self.C, head or self.head, num_classes, in_channels)

"""The network built from a genotype, for retraining from scratch as in the
papers' evaluation (DARTS Section 3.2; NASNet, Zoph et al. 2018, Section 4).

Cells are stacked `layers` deep, reduction cells at 1/3 and 2/3 of the depth,
with drop path (Larsson et al., FractalNet) on every non-identity edge and an
optional auxiliary classifier after the second reduction (Szegedy et al.).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cost import count_parameters
from .genotypes import Genotype, validate_genotype
from .ops import OPS, FactorizedReduce, Identity, ReLUConvBN

__all__ = ["Cell", "Network", "count_parameters", "drop_path", "stem", "stack_cells", "reduction_layers"]


def reduction_layers(layers: int) -> tuple[int, int]:
    """The cells that halve the resolution: at 1/3 and 2/3 of the depth (DARTS, NASNet)."""
    return layers // 3, 2 * layers // 3


def stem(in_channels: int, C: int) -> nn.Sequential:
    """The DARTS CIFAR stem: a 3x3 convolution to `C` channels and batch norm."""
    return nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))


def stack_cells(make_cell, C: int, layers: int, stem_channels: int):
    """The DARTS skeleton's `layers` cells: ``make_cell(C_prev_prev, C_prev,
    C_curr, reduction, reduction_prev)`` builds each; a reduction cell doubles
    the width `C_curr`; a cell's output has ``cell.multiplier * C_curr``
    channels. Shared by the search supernet and the retrained `Network`.
    Returns the cells and each cell's output channels."""
    C_prev_prev, C_prev, C_curr = stem_channels, stem_channels, C
    cells, out_channels, reduction_prev = nn.ModuleList(), [], False
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            C_curr *= 2
        cell = make_cell(C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        out_channels.append(C_prev)
    return cells, out_channels


def drop_path(x, drop_prob: float):
    """Zero a whole sample's path with probability `drop_prob`, rescaling the rest."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """A discrete cell: for node i, ``h_i = op_a(states[a]) + op_b(states[b])``."""

    def __init__(self, genotype: Genotype, C_prev_prev, C_prev, C, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(C_prev_prev, C) if reduction_prev else ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        pairs = genotype.reduce if reduction else genotype.normal
        self.concat = list(genotype.reduce_concat if reduction else genotype.normal_concat)
        self.multiplier = len(self.concat)
        self.steps = len(pairs) // 2
        self.indices = [j for _, j in pairs]
        self._ops = nn.ModuleList(OPS[name](C, 2 if reduction and j < 2 else 1, True) for name, j in pairs)

    def forward(self, s0, s1, drop_prob: float = 0.0):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.steps):
            h = []
            for k in (2 * i, 2 * i + 1):
                out = self._ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0 and not isinstance(self._ops[k], Identity):
                    out = drop_path(out, drop_prob)
                h.append(out)
            states.append(h[0] + h[1])
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """The CIFAR auxiliary classifier of the DARTS/NASNet code (expects ~8x8 input)."""

    def __init__(self, C, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = F.relu(x)
        # The papers pool 8x8 maps with a 5x5/3 window to 2x2; small inputs pool adaptively.
        x = F.avg_pool2d(x, 5, 3, count_include_pad=False) if min(x.shape[-2:]) >= 5 else F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.features(x).flatten(1))


class Network(nn.Module):
    """Stacked cells of one genotype (DARTS ``NetworkCIFAR``).

    The DARTS CIFAR-10 evaluation network: ``C=36, layers=20, auxiliary=True``,
    drop path 0.2, 600 epochs (DARTS Section A.2). `forward` returns the logits,
    and ``(logits, aux_logits)`` when the auxiliary head is on and training.
    """

    def __init__(self, genotype: Genotype, C: int = 36, num_classes: int = 10, layers: int = 20,
                 auxiliary: bool = False, drop_path_prob: float = 0.0, in_channels: int = 3,
                 stem_multiplier: int = 3):
        super().__init__()
        self.genotype = validate_genotype(genotype)
        self.layers, self.auxiliary = layers, auxiliary
        self.drop_path_prob = drop_path_prob
        self.stem = stem(in_channels, stem_multiplier * C)
        self.cells, out_channels = stack_cells(
            lambda *sizes: Cell(self.genotype, *sizes), C, layers, stem_multiplier * C)
        aux_after = reduction_layers(layers)[1]
        self.auxiliary_head = AuxiliaryHead(out_channels[aux_after], num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_channels[-1], num_classes)

    def forward(self, x):
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == reduction_layers(self.layers)[1] and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if aux is not None else logits

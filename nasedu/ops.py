"""The candidate operations of the DARTS search space.

Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019,
Section 3.1 and Appendix A.1: on every edge of a cell the candidates are 3x3
and 5x5 separable convolutions, 3x3 and 5x5 dilated separable convolutions,
3x3 max and average pooling, identity and zero. Every convolution is
ReLU-conv-BN, and a separable convolution is applied twice.

`OPS` maps a name to a constructor ``(C, stride, affine) -> nn.Module``, as in
the DARTS code, so a genotype printed by any paper that uses these names builds
here. NASNet's and AmoebaNet's extra operations (7x7 separable, 1x7-7x1) are
included so that their published cells build too.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "PRIMITIVES", "OPS", "make_op", "check_op_names", "UnknownOperationError",
    "Zero", "Identity", "FactorizedReduce", "ReLUConvBN", "SepConv", "DilConv",
]

# DARTS order; index 0 must stay `none` because the derivation rule skips it.
PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


class UnknownOperationError(ValueError):
    """An operation name that is not in `OPS`."""


class Zero(nn.Module):
    """The `none` operation: no connection. Kept so a stride-2 edge still
    knows its output shape; the supernet never multiplies by it (it skips it)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.new_zeros(x.shape)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Module):
    chain = "op"  # forward is self.op(x): `nasedu.grouped` may run it layer by layer

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    """ReLU, depthwise dilated conv, pointwise conv, BN (applied once)."""

    chain = "op"  # forward is self.op(x): `nasedu.grouped` may run it layer by layer

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two stacked ReLU-depthwise-pointwise-BN blocks (DARTS Appendix A.1);
    only the first carries the stride."""

    chain = "op"  # forward is self.op(x): `nasedu.grouped` may run it layer by layer

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine).op,
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine).op,
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halves the resolution without losing half the pixels: two stride-2 1x1
    convolutions, the second shifted by one pixel, concatenated."""

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        # Pad on the right/bottom so odd sizes (e.g. 7x7) still line up.
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Conv7x1_1x7(nn.Module):
    """AmoebaNet's factorised 7x7: a 1x7 then a 7x1 convolution."""

    chain = "op"  # forward is self.op(x): `nasedu.grouped` may run it layer by layer

    def __init__(self, C, stride, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(C, C, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(C, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


OPS = {
    "none": lambda C, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "sep_conv_7x7": lambda C, stride, affine: SepConv(C, C, 7, stride, 3, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": lambda C, stride, affine: Conv7x1_1x7(C, stride, affine),
}


def check_op_names(names) -> list[str]:
    """Return `names` as a list, or raise naming every unknown operation."""
    names = list(names)
    unknown = [n for n in names if n not in OPS]
    if unknown:
        raise UnknownOperationError(
            f"unknown operation(s) {unknown}; known operations are: {', '.join(OPS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"operation names must be distinct, got {names}")
    return names


def make_op(name: str, C: int, stride: int, affine: bool = True) -> nn.Module:
    """Build operation `name` on `C` channels, e.g. ``make_op("sep_conv_3x3", 16, 1)``."""
    check_op_names([name])
    return OPS[name](C, stride, affine)

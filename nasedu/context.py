"""What a strategy gets to set itself up and to work: its `SearchContext`.

The search loop builds one context per run and hands it to the strategy. The
strategy asks it for the search space, for batches (`streams`: as many from
each split as its paper needs), for the device and the precision, and for
help: evaluating a model on the validation split, training an architecture
from scratch, or looking up an architecture's true accuracy in a table.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .device import Precision

__all__ = ["SearchContext"]


@dataclass
class SearchContext:
    """Everything a strategy may use.

    - `space`: the `nasedu.spaces.SearchSpace` searched;
    - `data`: the `nasedu.data.DataBundle` (train / val / test), or None when
      the search runs on a benchmark table's rewards alone;
    - `streams`: endless batches of the `w` half, the `arch` half and the whole
      `train` split (`nasedu.data.Streams`), or None without data;
    - `device`, `precision` (``with context.precision.autocast():``), `epochs`,
      `batch_size`, `seed`, `num_workers`;
    - `benchmark`: a `nasedu.bench.Benchmark` of this space on this data, or None;
    - `fast`: build the supernet on its fast path (`nasedu.grouped`) where the
      space has one; False runs the readable cells (same parameters, same results).
    """

    space: object
    device: torch.device
    epochs: int
    seed: int = 0
    data: object = None
    streams: object = None
    batch_size: int = 64
    precision: Precision = None
    benchmark: object = None
    num_workers: int = 0
    fast: bool = True

    def __post_init__(self):
        self.device = torch.device(self.device)
        if self.precision is None:
            self.precision = Precision(self.device)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes if self.data is not None else 10

    @property
    def in_channels(self) -> int:
        return self.data.in_channels if self.data is not None else 3

    def require_data(self, who: str):
        """Raise a clear error if there is no data (a search on a table's rewards only)."""
        if self.data is None:
            raise ValueError(f"{who} trains networks and needs data; a benchmark table (benchmark=...) gives only "
                             f"rewards. Give data= instead, e.g. data='digits', or search the table with a strategy "
                             f"that needs only rewards (e.g. 'random').")

    def evaluate(self, model, architecture=None, split: str = "val", bn: str = "running"):
        """``(loss, accuracy)`` of `model` (``model(x)``, or ``model(x, architecture)``
        for a supernet) on `split`; ``bn="batch"`` uses batch statistics."""
        from .training import evaluate_model

        self.require_data("evaluate")
        return evaluate_model(model, getattr(self.data, split), self.device, arch=architecture,
                              precision=self.precision, bn=bn)

    def train_from_scratch(self, architecture, **options):
        """Train `architecture`'s stand-alone network from scratch on this data
        (`nasedu.evaluate.train_architecture`); returns its `TrainResult`."""
        from .evaluate import train_architecture

        self.require_data("train_from_scratch")
        options = {"seed": self.seed, "device": self.device, "progress": False, **options}
        return train_architecture(architecture, self.data, space=self.space, **options)

    def true_accuracy(self, architecture):
        """The benchmark table's accuracy of `architecture`, or None without a table."""
        return None if self.benchmark is None else self.benchmark.accuracy(architecture)

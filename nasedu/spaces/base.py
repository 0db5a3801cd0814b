"""What every search space provides, and what every discrete architecture can do.

A search space says which architectures exist (Elsken et al. 2019, Section 2):

- its choices, as named *tables*: one row per decision (an edge of a cell, a
  layer of a chain), one column per option (an operation, a block). A
  strategy's distribution over the space is one probability per (row, column)
  of each table, which is what the dashboard draws;
- how a discrete architecture is derived from such probabilities, encoded as
  one option index per row (the hard path a supernet runs), sampled
  uniformly, counted (parameters, FLOPs), written as JSON, parsed from the
  papers' notation and drawn;
- how its supernet (every architecture at once, sharing weights `w`) and the
  stand-alone network of one architecture are built.

A discrete architecture is a `nasedu.architecture.Architecture`.
"""
from __future__ import annotations

import json

import torch

from ..architecture import Architecture, ArchitectureError, Table

__all__ = ["SearchSpace", "Architecture", "Table", "ArchitectureError"]


class SearchSpace:
    """Base class of the search spaces. Subclasses set `name`, `title` and
    `paper`, and implement the methods that raise NotImplementedError."""

    name = "space"
    title = "search space"
    paper = ""

    # -- identity ---------------------------------------------------------------
    def config(self) -> dict:
        """The settings that rebuild this space: ``get_space(space.config())``."""
        raise NotImplementedError

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({options})"

    def __eq__(self, other):
        return isinstance(other, SearchSpace) and self.config() == other.config()

    def __hash__(self):
        return hash(json.dumps(self.config(), sort_keys=True))

    # -- the choices --------------------------------------------------------------
    def tables(self) -> dict:
        """``{name: Table}`` with uniform probabilities: the layout of every choice."""
        raise NotImplementedError

    def table(self, name: str, probabilities) -> Table:
        """Table `name` holding `probabilities` (a tensor or array of its shape)."""
        layout = self.tables()
        if name not in layout:
            raise ArchitectureError(f"{self.name} has no table {name!r}; its tables are {list(layout)}")
        t = layout[name]
        return Table(probabilities, t.rows, t.columns, t.mask, t.title)

    def ordinal_tables(self) -> tuple:
        """Names of the tables whose options are ordered (a size that grows with the option's index), which
        a strategy may search as ordinal variables, as ASNG-NAS does with sizes. None by default."""
        return ()

    def shapes(self) -> dict:
        """``{name: (rows, columns)}`` of every table: the shape of alpha or theta."""
        return {k: t.probabilities.shape for k, t in self.tables().items()}

    def size(self) -> int:
        """How many architectures the space holds (as its paper counts them)."""
        raise NotImplementedError

    # -- discrete architectures ------------------------------------------------------
    def derive(self, probabilities: dict) -> Architecture:
        """The discrete architecture the space's rule reads off per-row probabilities."""
        raise NotImplementedError

    def encode(self, architecture) -> dict:
        """``{table: LongTensor [rows]}``, one option index per row: the hard path
        a supernet runs for `architecture` (not chosen rows hold `none`)."""
        raise NotImplementedError

    def decode(self, indices: dict) -> Architecture:
        """The architecture of one option index per row (the inverse of `encode`)."""
        raise NotImplementedError

    def sample(self, generator: torch.Generator | None = None) -> Architecture:
        """An architecture drawn uniformly from the space."""
        raise NotImplementedError

    def from_data(self, data) -> Architecture:
        """Read what `Architecture.to_data` wrote."""
        raise NotImplementedError

    def from_json(self, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchitectureError(f"not valid JSON: {e}") from None
        return self.from_data(data)

    def parse(self, text: str) -> Architecture:
        """Read an architecture written in the papers' notation."""
        raise NotImplementedError

    def canonical(self, architecture) -> Architecture:
        """One representative of every architecture computing the same network
        (NAS-Bench-Macro's identities; the identity where every architecture is distinct)."""
        return self.validate(architecture)

    def validate(self, architecture) -> Architecture:
        """`architecture` (or its text) as this space's architecture, or an
        ArchitectureError that says what is wrong."""
        if isinstance(architecture, str):
            return self.parse(architecture)
        return self.from_data(architecture.to_data() if isinstance(architecture, Architecture) else architecture)

    # -- networks -------------------------------------------------------------------
    def supernet(self, num_classes: int, in_channels: int, fast: bool = True):
        """A module holding every architecture's weights: ``supernet(x, arch)``
        with ``arch = {table: weights [rows, options] or indices [rows]}``.
        `fast` runs it on the grouped path where the space has one
        (`nasedu.grouped`); the readable path holds the same parameters."""
        raise NotImplementedError

    def network(self, architecture, num_classes: int, in_channels: int, **options):
        """The stand-alone network of one architecture, for training from scratch."""
        raise NotImplementedError

    def network_options(self) -> dict:
        """The options `network` takes besides the architecture and the data's shape, with defaults."""
        return {}

    # -- costs ----------------------------------------------------------------------
    def costs(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> dict:
        """``{"params": {table: [rows, options]}, "flops": {...}}``: what each
        option of each row costs in the supernet, summed over the cells that
        share the row (for resource terms such as SNAS's). FLOPs count the
        multiply-adds of convolutions and linear layers, as NAS papers do."""
        from ..cost import choice_costs

        return choice_costs(self, num_classes, in_channels, image_size)

    def count(self, architecture, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
              **options) -> dict:
        """``{"params", "flops"}`` of the stand-alone network of `architecture`."""
        from ..cost import count_flops, count_parameters

        net = self.network(architecture, num_classes, in_channels, **options)
        return {"params": count_parameters(net),
                "flops": count_flops(net, torch.zeros(1, in_channels, image_size, image_size))}

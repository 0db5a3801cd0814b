"""What every discrete architecture can do, and the tables a strategy shows.

A discrete architecture is a small value object (a `Genotype` for the DARTS
cell, an arch string for NAS-Bench-201, a layer code for NAS-Bench-Macro)
with the methods of `Architecture`: `to_json`, `decisions`, `svg`, `draw`.
A `Table` is a distribution over the options of each row of a choice (the
operations of each edge): what `strategy.distributions()` returns and what
the dashboard draws, whatever the strategy and the space.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Architecture", "Table", "ArchitectureError", "element_id", "changed_decisions", "check_arch_argument",
           "agreement", "chance_agreement"]


class ArchitectureError(ValueError):
    """An architecture (or an architecture argument of a supernet) that does
    not fit its search space; the message says what is wrong and what fits."""


def element_id(key: str) -> str:
    """The id a drawing gives the element (edge or node) that shows decision
    `key`, so that a changed decision can be found in the SVG and marked."""
    return "nasedu" + hashlib.md5(key.encode()).hexdigest()[:12]


@dataclass
class Table:
    """A distribution over the options of each row: what a strategy shows.

    ``probabilities[r, c]`` is the probability of option c at row r. `mask`
    (same shape, bool) is False where an option does not exist for a row (a
    controller's decisions with different numbers of options, an ordinal
    variable): those cells are not drawn and count in no entropy.
    """

    probabilities: np.ndarray
    rows: list
    columns: list
    mask: np.ndarray | None = None
    title: str = ""

    def __post_init__(self):
        P = self.probabilities
        if torch.is_tensor(P):
            P = P.detach().float().cpu().numpy()
        self.probabilities = np.asarray(P, dtype=np.float64)
        self.rows, self.columns = [str(r) for r in self.rows], [str(c) for c in self.columns]
        expected = (len(self.rows), len(self.columns))
        if self.probabilities.shape != expected:
            raise ArchitectureError(f"table {self.title or ''!r} has probabilities of shape "
                                    f"{self.probabilities.shape}, expected {expected} "
                                    f"({len(self.rows)} rows x {len(self.columns)} columns)")
        if self.mask is not None:
            self.mask = np.asarray(self.mask, dtype=bool)
            if self.mask.shape != expected:
                raise ArchitectureError(
                    f"table {self.title!r} has a mask of shape {self.mask.shape}, expected {expected}")

    def layout(self) -> dict:
        """Everything but the probabilities, as JSON-friendly data."""
        return {"rows": list(self.rows), "columns": list(self.columns), "title": self.title,
                "mask": None if self.mask is None else self.mask.tolist()}


class Architecture:
    """What every discrete architecture can do. Subclasses set `parts` (the
    pictures it is drawn as, e.g. the normal and the reduction cell) and
    implement `to_data`, `decisions` and `diagram`."""

    __slots__ = ()
    parts: tuple = ()
    part_titles: dict = {}

    def to_data(self):
        """The architecture as JSON-friendly data (the space's `from_data` reads it back)."""
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_data())

    def decisions(self) -> dict:
        """``{"<part title>: <row label>": option}``: the architecture as flat
        decisions, so that two architectures can be compared decision by decision."""
        raise NotImplementedError

    def part_decisions(self, part: str) -> dict:
        """The `decisions` of one part, keyed by their row label alone."""
        self._check_part(part)
        prefix = f"{self.part_titles.get(part, part)}: "
        return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in self.decisions().items()
                if k.startswith(prefix) or len(self.parts) == 1}

    def diagram(self, part: str, title: str | None = None):
        """A backend-free drawing of `part` (`nasedu.viz.diagram.Diagram`)."""
        raise NotImplementedError

    def _check_part(self, part):
        if part not in self.parts:
            raise ValueError(f"part must be one of {self.parts}, got {part!r}")

    def svg(self, part: str | None = None) -> str:
        """The SVG text of `part` (default: the first), drawn by graphviz's `dot`."""
        from .viz.diagram import diagram_svg

        part = part or self.parts[0]
        self._check_part(part)
        return diagram_svg(self.diagram(part))

    def draw(self, part: str | None = None, *, title: str | None = None, backend: str = "auto"):
        """Draw `part` (default: the first of `parts`): a graphviz drawing shown
        inline in Jupyter, or a plotly figure where `dot` is missing."""
        from .viz.diagram import render

        part = part or self.parts[0]
        self._check_part(part)
        return render(self.diagram(part, title), backend, stacklevel=6)


def changed_decisions(old: Architecture | None, new: Architecture) -> list[tuple[str, str | None, str | None]]:
    """``(key, old option, new option)`` for every decision that differs, in
    the new architecture's order (then the dropped ones)."""
    if old is None:
        return []
    before, after = old.decisions(), new.decisions()
    keys = list(after) + [k for k in before if k not in after]
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]




def check_arch_argument(arch, shapes: dict, options: dict | None = None) -> None:
    """Raise `ArchitectureError` naming the problem if `arch`, the architecture
    argument of a supernet, does not fit: ``{table: weights [rows, options]}``
    (a mixture) or ``{table: indices [rows]}`` (a hard path), for every table
    of `shapes` (``{table: (rows, options)}``); `options` names each table's
    options for the message."""
    if not isinstance(arch, dict) or set(arch) != set(shapes):
        got = sorted(arch) if isinstance(arch, dict) else type(arch).__name__
        raise ArchitectureError(f"the architecture must be a dict with keys {sorted(shapes)}, got {got}")
    for name, a in arch.items():
        rows, n = shapes[name]
        if not torch.is_tensor(a):
            raise ArchitectureError(f"arch[{name!r}] must be a tensor, got {type(a).__name__}")
        if a.is_floating_point():
            if tuple(a.shape) != (rows, n):
                names = f": {list(options[name])}" if options else ""
                raise ArchitectureError(f"arch[{name!r}] has shape {tuple(a.shape)}, expected {(rows, n)} "
                                        f"({rows} rows x {n} options{names})")
        elif tuple(a.shape) != (rows,):
            raise ArchitectureError(f"arch[{name!r}] (option indices) has shape {tuple(a.shape)}, expected ({rows},)")
        elif a.numel() and (int(a.min()) < 0 or int(a.max()) >= n):
            raise ArchitectureError(f"arch[{name!r}] holds indices outside 0..{n - 1}")


def agreement(a: Architecture, b: Architecture, operations: bool = True, part: str | None = None) -> float:
    """The fraction of `a`'s decisions (an edge and its operation, a layer and
    its block) that `b` makes too: 1 for the same architecture. With
    ``operations=False``, only where: the fraction of `a`'s edges that `b`
    keeps too, whatever their operations (in a space where every edge or layer
    is kept, 1). With `part` (``"normal"``), that part's decisions alone.
    Compare the `canonical` forms when one architecture can be written two ways."""
    da, db = (a.decisions(), b.decisions()) if part is None else (a.part_decisions(part), b.part_decisions(part))
    if not da:
        return 1.0
    same = (db.get(key) == value if operations else key in db for key, value in da.items())
    return sum(same) / max(len(da), len(db))


def chance_agreement(space, samples: int = 2000, seed: int = 0, operations: bool = True,
                     cells: int = 2) -> tuple[float, float]:
    """The `agreement` of architectures drawn uniformly from `space`: averaged
    over every pair of `cells` of them (2: one pair), its mean and its 99th
    percentile over `samples` draws. The bar that `cells` seeds' mean agreement
    must clear to be more than chance: averaging over pairs narrows the spread,
    so more seeds make a lower bar."""
    if cells < 2:
        raise ValueError(f"agreement needs at least 2 cells to compare, not cells={cells}")
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(samples):
        drawn = [space.canonical(space.sample(generator)) for _ in range(cells)]
        values.append(np.mean([agreement(a, b, operations) for i, a in enumerate(drawn) for b in drawn[i + 1:]]))
    return float(np.mean(values)), float(np.percentile(values, 99))

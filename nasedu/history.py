"""What a search records, as plain JSON-friendly data.

- ``steps``: one dict per step, ``{"step", "epoch", **metrics}`` (any numeric
  keys the strategy reports: losses, rewards, a baseline, a temperature...);
- ``epochs``: one dict per epoch: the step metrics averaged over the epoch,
  the strategy's validation metrics, the architecture derived at its end and
  its distributions;
- ``snapshots``: every `record_every` steps, the strategy's distributions
  (``{table: [[p, ...], ...]}``) and its architecture;
- ``meta``: the run's configuration, its search space, the layout of the
  distribution tables (row and column labels, mask) and the curves to plot.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from .checkpoint import atomic_write

__all__ = ["History"]


@dataclass
class History:
    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def series(self, key, where="steps"):
        """``(x, y)`` lists of metric `key` over `where` ("steps" or "epochs"); x is the global step."""
        rows = [r for r in getattr(self, where) if r.get(key) is not None]
        return [r["step"] for r in rows], [r[key] for r in rows]

    def space(self):
        """The search space the run searched (rebuilt from ``meta["space"]``)."""
        from .spaces import get_space

        if "space" not in self.meta:
            raise ValueError("this history does not say which search space it searched (no meta['space'])")
        return get_space(self.meta["space"])

    def architectures(self):
        """The architecture derived at the end of each epoch."""
        space = self.space()
        return [space.from_data(r["architecture"]) for r in self.epochs]

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d.get(k, [] if k != "meta" else {}) for k in ("steps", "epochs", "snapshots", "meta")})

    def save(self, path):
        atomic_write(path, lambda f: f.write(json.dumps(self.to_dict()).encode()))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))

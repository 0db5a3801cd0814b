"""Ground truth: tables of the true accuracy of every architecture of a space.

    >>> bench = nasedu.bench.load("nas-bench-macro")
    >>> bench.query("22212220").test_acc        # 0.9313: the best network, trained 3 times on CIFAR-10
    >>> bench.best(), bench.rank("11111111"), bench.sample(10, seed=0)

A search is judged by the true accuracy of what it found, not by its own
estimate, next to random search and the space's best. Strategies that need
only a reward (a controller, ASNG's optimiser, random search) can search a
table directly: the whole search on real CIFAR-10 numbers in seconds.

Tables:

- ``"nas-bench-macro"``: NAS-Bench-Macro (Su et al., CVPR 2021), as published
  (github.com/xiusu/NAS-Bench-Macro, commit 61a2bfc, Apache-2.0: the licence
  and the authors' README ship beside the data in ``nasedu/tables/``). All
  6,561 codes of `nasedu.spaces.MacroSpace`, each trained from scratch three
  times on CIFAR-10 (50 epochs, SGD, cosine schedule). Only *test* accuracy
  was recorded, so searching on it selects on test data: a search on this
  table says how well a strategy searches, not how well its result would
  generalise.

- ``"nb201-digits"``: built in this repository (`nasedu.bench_builder`): all
  15,625 cells of `nasedu.spaces.NB201Space` trained from scratch on the
  bundled digits, twice, in a shrunken NAS-Bench-201 skeleton; validation
  and test accuracy after every epoch, parameters, FLOPs, seconds. Cells that
  compute the same function share one training (5,425 distinct; see
  `nasedu.spaces.nb201.function_form`). ``bench.meta`` holds the protocol,
  the versions and the build's cost.

Accuracies here are fractions (0.9313), as everywhere in nasedu; the
published file holds percentages. Architectures that compute the same network
(for NAS-Bench-Macro, codes that differ only in where a stage's later
identities sit) are one *distinct* architecture: counts, samples, ranks and
accuracy distributions use distinct architectures unless told otherwise.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from .architecture import Architecture, ArchitectureError
from .spaces import SearchSpace, get_space

__all__ = ["load", "Benchmark", "Record", "BENCHMARKS", "for_space"]


@dataclass(frozen=True)
class Record:
    """What a table knows of one architecture: its test accuracy (the mean
    over the runs, and each run), parameters and FLOPs; where the table has
    them, validation accuracy and learning curves (``curve["epochs"]`` and,
    per run, ``curve["val_acc"]`` and ``curve["test_acc"]`` after each of
    those epochs) and each run's training seconds."""

    architecture: Architecture
    test_acc: float
    test_accs: tuple
    params: int
    flops: int
    val_acc: float | None = None
    val_accs: tuple = ()
    curve: dict | None = None
    seconds: tuple = ()

    @property
    def test_acc_std(self) -> float:
        return float(np.std(self.test_accs))

    def __repr__(self):
        return (f"Record({self.architecture!r}: test_acc={self.test_acc:.4f} over {len(self.test_accs)} runs, "
                f"params={self.params:,}, flops={self.flops:,})")


class Benchmark:
    """A table of true accuracies over the architectures of `space` on `data`."""

    def __init__(self, name: str, space: SearchSpace, data: str, records: dict, *, description: str = "",
                 source: str = "", meta: dict | None = None):
        self.name, self.space, self.data = name, space, data
        self.description, self.source = description, source
        self.meta = meta or {}  # how the table was made (protocol, versions, cost), where known
        self._records = records  # every architecture, keyed by its canonical form
        canon = {}
        for arch in records:
            canon.setdefault(space.canonical(arch), arch)
        self._distinct = sorted(canon)
        self._acc = {a: records[a].test_acc for a in self._distinct}
        self._sorted = np.sort(np.array(list(self._acc.values())))

    # -- looking up -----------------------------------------------------------------
    def _arch(self, architecture):
        try:
            return self.space.validate(architecture)
        except ArchitectureError as e:
            raise ArchitectureError(f"{self.name}: {e}") from None

    def query(self, architecture) -> Record:
        """The record of `architecture` (an architecture of the space or its text)."""
        arch = self._arch(architecture)
        record = self._records.get(arch) or self._records.get(self.space.canonical(arch))
        if record is None:
            raise ArchitectureError(f"{self.name} has no record of {arch!r}")
        return record

    def accuracy(self, architecture) -> float:
        """The mean test accuracy of `architecture` (a fraction)."""
        return self.query(architecture).test_acc

    def search_accuracy(self, architecture) -> float:
        """The accuracy a search may select on: the validation accuracy where the table records one
        (nb201-digits), else the test accuracy (NAS-Bench-Macro records no other). A search that selects on
        test accuracy overstates what it found; `accuracy` judges it afterwards."""
        record = self.query(architecture)
        return record.val_acc if record.val_acc is not None else record.test_acc

    def __len__(self):
        return len(self._records)

    def __contains__(self, architecture):
        try:
            self.query(architecture)
            return True
        except ArchitectureError:
            return False

    # -- the whole table ---------------------------------------------------------------
    def architectures(self, distinct: bool = True) -> list:
        """Every architecture (one per distinct network by default)."""
        return list(self._distinct) if distinct else sorted(self._records)

    def accuracies(self, distinct: bool = True) -> np.ndarray:
        """Every test accuracy, sorted ascending (one per distinct network by default)."""
        if distinct:
            return self._sorted.copy()
        return np.sort(np.array([r.test_acc for r in self._records.values()]))

    def best(self, n: int | None = None):
        """The record of the most accurate architecture, or the `n` best (a list)."""
        ranked = sorted(self._distinct, key=lambda a: -self._acc[a])
        return self.query(ranked[0]) if n is None else [self.query(a) for a in ranked[:n]]

    def worst(self, n: int | None = None):
        """The record of the least accurate architecture, or the `n` worst (a list)."""
        ranked = sorted(self._distinct, key=lambda a: self._acc[a])
        return self.query(ranked[0]) if n is None else [self.query(a) for a in ranked[:n]]

    def rank(self, architecture) -> int:
        """1 for the best distinct architecture: 1 + how many are strictly more accurate."""
        acc = self.accuracy(architecture)
        return 1 + int(len(self._sorted) - np.searchsorted(self._sorted, acc, side="right"))

    def percentile(self, architecture) -> float:
        """The fraction of distinct architectures strictly less accurate than `architecture`."""
        return float(np.searchsorted(self._sorted, self.accuracy(architecture), side="left") / len(self._sorted))

    def sample(self, n: int, seed: int = 0, distinct: bool = True) -> list:
        """`n` architectures drawn uniformly without replacement (over distinct networks by default)."""
        pool = self.architectures(distinct)
        if not 0 <= n <= len(pool):
            raise ValueError(f"n must be between 0 and {len(pool)}, got {n}")
        order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]
        return [pool[int(i)] for i in order]

    def summary(self) -> dict:
        acc = self._sorted
        return {"name": self.name, "data": self.data, "architectures": len(self._records),
                "distinct": len(self._distinct), "min": float(acc[0]), "median": float(np.median(acc)),
                "max": float(acc[-1])}

    def __repr__(self):
        s = self.summary()
        return (f"Benchmark({self.name!r}: {s['architectures']:,} architectures ({s['distinct']:,} distinct) of "
                f"{self.space.title} on {self.data}, test accuracy {s['min']:.4f} to {s['max']:.4f}, "
                f"median {s['median']:.4f})")


# ---------------------------------------------------------------------------
# The tables that ship with nasedu
# ---------------------------------------------------------------------------

def _nas_bench_macro() -> Benchmark:
    space = get_space("macro")
    with resources.files("nasedu.tables").joinpath("nas-bench-macro_cifar10.json.gz").open("rb") as f:
        raw = json.loads(gzip.decompress(f.read()))
    records = {}
    for code, r in raw.items():
        arch = space.validate(code)
        records[arch] = Record(arch, r["mean_acc"] / 100, tuple(a / 100 for a in r["test_acc"]), int(r["params"]),
                               int(r["flops"]))
    return Benchmark("nas-bench-macro", space, "cifar10", records,
                     description="every NAS-Bench-Macro code trained from scratch on CIFAR-10 three times; "
                                 "test accuracy only",
                     source="Su et al., CVPR 2021; github.com/xiusu/NAS-Bench-Macro@61a2bfc (Apache-2.0)")


def _nb201_digits() -> Benchmark:
    """Built in this repository by `nasedu.bench_builder` (see its protocol)."""
    with resources.files("nasedu.tables").joinpath("nb201-digits.json.gz").open("rb") as f:
        raw = json.loads(gzip.decompress(f.read()))
    protocol = raw["protocol"]
    space = get_space(protocol["space"])  # the space's config() as saved
    classes = {}
    for text, r in raw["records"].items():
        arch = space.validate(text)
        tests, vals = tuple(c[-1] for c in r["test_acc"]), tuple(c[-1] for c in r["val_acc"])
        curve = {"epochs": list(protocol["eval_epochs"]), "val_acc": r["val_acc"], "test_acc": r["test_acc"]}
        classes[arch] = Record(arch, float(np.mean(tests)), tests, int(r["params"]), int(r["flops"]),
                               val_acc=float(np.mean(vals)), val_accs=vals, curve=curve, seconds=tuple(r["seconds"]))
    # every cell of the space, each pointing at the training of its class
    records = {arch: classes[space.canonical(arch)] for arch in space.all()}
    return Benchmark("nb201-digits", space, "digits", records,
                     description=f"every NAS-Bench-201 cell trained from scratch on digits, "
                                 f"{len(protocol['seeds'])} seeds, {protocol['epochs']} epochs "
                                 f"(C={protocol['space']['C']}, N={protocol['space']['N']}); one training per class "
                                 f"of cells computing the same function",
                     source="built by nasedu.bench_builder in this repository",
                     meta={k: v for k, v in raw.items() if k != "records"})


BENCHMARKS = {"nas-bench-macro": _nas_bench_macro, "nb201-digits": _nb201_digits}
# (space, data) of each table, known without loading it
_COVERS = {"nas-bench-macro": ("macro", "cifar10"), "nb201-digits": ("nb201", "digits")}


@lru_cache(maxsize=None)
def _load(key: str) -> Benchmark:
    return BENCHMARKS[key]()


def load(name: str = "nas-bench-macro") -> Benchmark:
    """The table called `name` (see `BENCHMARKS`), read once per process."""
    key = str(name).lower().replace("_", "-")
    if key not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    return _load(key)


def for_space(space: SearchSpace, data: str) -> Benchmark | None:
    """The table of true accuracies for architectures of `space` trained on
    `data`, if nasedu has one (e.g. the macro space on CIFAR-10), else None."""
    for key, (space_name, data_name) in _COVERS.items():
        if getattr(space, "name", None) == space_name and str(getattr(data, "name", data)).lower() == data_name:
            return load(key)
    return None

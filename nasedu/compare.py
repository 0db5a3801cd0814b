"""Several strategies over several seeds, judged the same way.

One search says little: what it finds depends on the seed. A comparison runs
every (strategy, seed) pair as an independent search, in the local process
pool of `nasedu.parallel` (or on a Ray cluster given its address), and
reports, per strategy, the found architectures' true accuracy (when the
space has a ground-truth table) and the search cost, as ratios to the first
strategy from the same run (this machine's absolute speed varies).

    >>> from nasedu.compare import compare
    >>> c = compare({"first order": ("darts", {}), "second order": ("darts", {"unrolled": True})},
    ...             seeds=[0, 1, 2], space="nb201", budget="quick")
    >>> print(c.summary())

Each search's cost is the time its epochs took (`History`), so the pool's
start-up is not charged to any strategy. With `out`, every search
checkpoints into its own folder and running the comparison again resumes
(a finished search returns at once).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .parallel import run_tasks
from .search import SearchResult, search

__all__ = ["compare", "Comparison", "search_seconds"]


def _run_one(task) -> SearchResult:
    """One search of a comparison (module level, so that spawned workers can import it)."""
    label, seed, strategy, options = task
    result = search(strategy, seed=seed, progress=False, **options)
    result.strategy = None  # the supernet and optimisers stay in the worker: only the record travels back
    return result


def search_seconds(result: SearchResult) -> float:
    """A search's own time: the sum of its epochs' (not the pool's start-up)."""
    return sum(e.get("seconds", 0.0) for e in result.history.epochs)


@dataclass
class Comparison:
    """``results[label][seed]``: the `SearchResult` (without its strategy) of each search."""

    results: dict = field(default_factory=dict)

    @property
    def labels(self) -> list:
        return list(self.results)

    def seconds(self, label) -> list:
        """Each seed's search time in seconds (the sum of its epochs)."""
        return [search_seconds(r) for r in self.results[label].values()]

    def true_accuracies(self, label) -> list | None:
        """Each seed's true accuracy of the found architecture, or None without a table."""
        accs = [r.true_acc for r in self.results[label].values()]
        return None if any(a is None for a in accs) else accs

    def rows(self) -> list[dict]:
        """Per strategy: mean and standard deviation of the true accuracy over
        seeds, mean seconds, and the cost as a ratio to the first strategy's."""
        base = np.mean(self.seconds(self.labels[0]))
        rows = []
        for label in self.labels:
            accs, secs = self.true_accuracies(label), self.seconds(label)
            rows.append({"strategy": label, "seeds": len(secs),
                         "true_acc_mean": None if accs is None else float(np.mean(accs)),
                         "true_acc_std": None if accs is None else float(np.std(accs)),
                         "seconds": float(np.mean(secs)), "cost_ratio": float(np.mean(secs) / base)})
        return rows

    def summary(self) -> str:
        lines = []
        for row in self.rows():
            accs = self.true_accuracies(row["strategy"])
            judged = ("" if accs is None else f"true accuracy {row['true_acc_mean']:.1%} +- {row['true_acc_std']:.1%} "
                      f"({', '.join(f'{a:.1%}' for a in accs)}), ")
            lines.append(f"{row['strategy']:>14}: {judged}{row['seconds']:.0f} s per search, "
                         f"cost x{row['cost_ratio']:.2f}")
        return "\n".join(lines)


def compare(strategies: dict, seeds=(0, 1, 2), *, workers=None, address=None, progress=True, out=None,
            **common) -> Comparison:
    """Run ``nasedu.search(strategy, seed=seed, **common, **options)`` for every
    ``label: (strategy, options)`` of `strategies` and every seed, in parallel
    (`workers` local processes, default one per core; `address`: a Ray
    cluster). With `out`, each search checkpoints in ``out/<label>_seed<seed>``."""
    if not strategies:
        raise ValueError("compare needs at least one strategy: {label: (name, {options})}")
    tasks = []
    for label, spec in strategies.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], dict)):
            raise ValueError(f"strategy {label!r}: give (name, {{options}}), e.g. ('darts', {{'unrolled': True}}); "
                             f"got {spec!r}")
        name, options = spec
        for seed in seeds:
            run_out = None if out is None else f"{out}/{label.replace(' ', '_')}_seed{seed}"
            tasks.append((label, int(seed), name, {**common, **options, "out": run_out}))
    comparison = Comparison({label: {} for label in strategies})
    for (label, seed, *_), result in run_tasks(_run_one, tasks, workers=workers, address=address,
                                               progress="searches" if progress is True else progress):
        comparison.results[label][seed] = result
    for label in comparison.results:  # seed order, whatever order the searches finished in
        comparison.results[label] = dict(sorted(comparison.results[label].items()))
    return comparison

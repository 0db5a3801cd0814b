"""What the quick budget's DARTS finds, over seeds, judged against the truth.

- NAS-Bench-201 cell on digits: the true accuracy (from the nb201-digits
  table) of the cell each seed derives, next to the space's best and median
  and to the cell a random draw gives.
- DARTS cell space on digits enlarged to 16x16 (no table exists): how much
  the seeds' derived cells agree (edge and operation, and edges alone),
  against as many uniformly drawn cells. Search options after `--options` as
  JSON, e.g. ``--options '{"epochs": 12, "warmup_epochs": 6}'``, to try
  another budget; ``'{"data": "digits", "layers": 5}'`` is the quick budget
  before it enlarged the digits (README, "A first search").

    python benchmarks/quick_darts.py [--seeds 0 1 2] [--spaces nb201 darts] [--options JSON] [--workers N]

The seeds run side by side in the local process pool (`nasedu.compare`; on a
Ray cluster with ``--address``). A few minutes on a 2-core CPU: one
DARTS-space search is about a minute there, one NB201 search about 20 s.
"""
from __future__ import annotations

import argparse
import itertools
import json

import numpy as np

import nasedu
from nasedu.architecture import agreement, chance_agreement
from nasedu.budgets import budget_settings
from nasedu.compare import compare, search_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spaces", nargs="+", default=["nb201", "darts"])
    parser.add_argument("--options", type=json.loads, default={},
                        help="search options as JSON, over the quick budget's")
    parser.add_argument("--workers", type=int, default=None, help="local processes (default: one per core)")
    parser.add_argument("--address", default=None, help="a Ray cluster's address, instead of local processes")
    args = parser.parse_args()
    for name in args.spaces:
        settings = budget_settings("quick", "darts", name)
        print(f"\n== DARTS on the {name} space, quick budget: {settings['data']}, {settings['epochs']} epochs, "
              f"space {settings['space']}, options {settings['strategy']}, changed {args.options}")
        comparison = compare({"DARTS": ("darts", args.options)}, seeds=args.seeds, space=name, budget="quick",
                             workers=args.workers, address=args.address, progress=False)
        results = list(comparison.results["DARTS"].values())
        for seed, result in zip(args.seeds, results):
            true = f", true accuracy {result.true_acc:.3f}" if result.true_acc is not None else ""
            print(f"seed {seed}: {search_seconds(result):.0f} s, {result.architecture}{true}")
        space = results[0].space
        canonical = [space.canonical(r.architecture) for r in results]
        for operations, what in ((True, "edge and operation"), (False, "edges alone")):
            pairs = [agreement(a, b, operations) for a, b in itertools.combinations(canonical, 2)]
            mean, p99 = chance_agreement(space, operations=operations, cells=len(results))
            print(f"agreement between seeds ({what}): {np.mean(pairs):.2f} "
                  f"(pairs {', '.join(f'{p:.2f}' for p in pairs)}); {len(results)} random cells: {mean:.2f} "
                  f"on average, {p99:.2f} at the 99th percentile")
        if name == "darts":  # where the agreement is, and which kinds of operation the seeds prefer
            convs = [p for p in nasedu.PRIMITIVES if "conv" in p]
            for part in ("normal", "reduce"):
                pairs = [agreement(a, b, part=part) for a, b in itertools.combinations(canonical, 2)]
                shares = [np.mean([op in convs for op, _ in getattr(r.architecture, part)]) for r in results]
                print(f"{part} cell: agreement between seeds {np.mean(pairs):.2f}; convolutions among its 8 "
                      f"operations: {', '.join(f'{x:.0%}' for x in shares)} "
                      f"(a random cell: {len(convs) / (len(nasedu.PRIMITIVES) - 1):.0%})")
        if name == "nb201":
            table = nasedu.bench.load("nb201-digits")
            acc = table.accuracies()
            found = [r.true_acc for r in results]
            print(f"true accuracy: found {np.mean(found):.3f} on average ({', '.join(f'{a:.3f}' for a in found)}); "
                  f"best {acc.max():.3f}, median {np.median(acc):.3f}, random cell {acc.mean():.3f} on average; "
                  f"ranks {', '.join(str(table.rank(r.architecture)) for r in results)} of {len(acc):,}")


if __name__ == "__main__":
    main()

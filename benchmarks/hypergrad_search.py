"""First order, second order and SGE on the NAS-Bench-201 cell, over seeds, judged against the truth.

Every (estimator, seed) search runs at the quick budget on digits, in the
local process pool (`nasedu.compare`); the found cells are judged by their
true accuracy in the nb201-digits table, next to the space's best and a
random cell, and the search costs are printed as ratios to first order from
the same run.

    python benchmarks/hypergrad_search.py [--seeds 0 1 2 3 4] [--workers 2] [--epochs N]

About 2.5 CPU-minutes per seed on a 2-core CPU (SGE is most of it).
"""
from __future__ import annotations

import argparse

import numpy as np

import nasedu
from nasedu.compare import compare

ESTIMATORS = {"first order": ("darts", {}), "second order": ("darts", {"unrolled": True}), "SGE": ("sge", {})}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    result = compare(ESTIMATORS, args.seeds, workers=args.workers, space="nb201", budget="quick", data="digits",
                     epochs=args.epochs)
    print(result.summary())
    for label in result.labels:
        for seed, r in result.results[label].items():
            print(f"  {label}, seed {seed}: {r.architecture}")
    acc = nasedu.bench.load("nb201-digits").accuracies()
    print(f"the space: best {acc.max():.1%}, median {np.median(acc):.1%}, a random cell {acc.mean():.1%} on average")


if __name__ == "__main__":
    main()

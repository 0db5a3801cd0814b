"""Does the ground-truth table's cheap protocol rank cells like a longer one?

Trains a random sample of distinct NAS-Bench-201 cells, seeds 0 and 1, under
the protocol of `nasedu.bench_builder.PROTOCOL` (C=4, 4 epochs) and under a
longer one (twice the width, 4x the epochs, the same skeleton), and prints
the accuracy spread of each, Kendall's tau between their rankings (mean of
the two seeds), and each protocol's tau between its own two seeds: how far
noise alone moves a ranking, the ceiling for the tau between protocols.

    python benchmarks/bench_protocol.py [--sample 30] [--workers 2]

About 10 minutes on a 2-core CPU (the long protocol costs ~8x the cheap one).
"""
from __future__ import annotations

import argparse
import functools
import random
import time

import numpy as np
from scipy.stats import kendalltau

from nasedu.bench_builder import PROTOCOL, tasks, train_one
from nasedu.parallel import run_tasks

LONG = dict(PROTOCOL, space=dict(PROTOCOL["space"], C=8), epochs=16, eval_epochs=[16])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=30)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    archs = sorted({a for a, _ in tasks()})
    sample = random.Random(args.seed).sample(archs, args.sample)
    results = {}
    started = time.perf_counter()
    for name, protocol in (("cheap", PROTOCOL), ("long", LONG)):
        fn = functools.partial(train_one, protocol=protocol)
        jobs = [(a, s) for a in sample for s in (0, 1)]
        for (a, s), r in run_tasks(fn, jobs, workers=args.workers, progress=name):
            results[name, a, s] = r
    wall = time.perf_counter() - started

    def final(name, seed):
        return np.array([results[name, a, seed]["test_acc"][-1] for a in sample])

    print(f"{args.sample} distinct cells (sample seed {args.seed}), {wall:.0f} s wall")
    mean = {}
    for name, protocol in (("cheap", PROTOCOL), ("long", LONG)):
        mean[name] = (final(name, 0) + final(name, 1)) / 2
        seconds = np.mean([r["seconds"] for (m, _, _), r in results.items() if m == name])
        q = np.percentile(mean[name], [0, 25, 50, 75, 100])
        print(f"{name:>5}: C={protocol['space']['C']}, {protocol['epochs']:2} epochs, {seconds:.2f} s per training; "
              f"test accuracy min/25%/median/75%/max {' / '.join(f'{v:.3f}' for v in q)}; "
              f"tau seed 0 vs seed 1 {kendalltau(final(name, 0), final(name, 1))[0]:.3f}")
    print(f"Kendall tau, cheap vs long (mean of 2 seeds each): {kendalltau(mean['cheap'], mean['long'])[0]:.3f}")


if __name__ == "__main__":
    main()

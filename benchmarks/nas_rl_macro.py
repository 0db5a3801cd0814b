"""NAS-RL's controller on the NAS-Bench-Macro table against random search with as many queries.

For each seed, the controller (`nasedu.strategies.nas_rl`) searches the
NAS-Bench-Macro table (rewards: the table's CIFAR-10 accuracy, no training)
for a number of table queries (children); random search samples as many
codes. Printed per seed: the rank among the 3,969 distinct networks of
NAS-RL's best child (its answer), of the controller's greedy decode at the
end, and of random search's best; then the means, medians and how often
NAS-RL's answer ranks better. Ranks: 1 is the table's best network.

    python benchmarks/nas_rl_macro.py [--seeds 0 1 ... 9] [--queries 400] [-o controller_lr=0.01]

One search of 400 queries takes a few seconds on a CPU (one thread).
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

import nasedu


def _value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def compare(seeds, queries: int, **options) -> dict:
    """``{"nas_rl": [rank per seed], "greedy": [...], "random": [...], "rising": [...]}`` (see the module docstring)."""
    bench = nasedu.bench.load("nas-bench-macro")
    m = options.get("children_per_update", 8)
    if queries % m:
        raise ValueError(f"queries ({queries}) must be a multiple of the children per update ({m})")
    out = {"nas_rl": [], "greedy": [], "random": [], "rising": []}
    for seed in seeds:
        r = nasedu.search("nas_rl", space="macro", benchmark="nas-bench-macro", epochs=1,
                          updates_per_epoch=queries // m, seed=seed, progress=False, **options)
        strategy = r.strategy
        assert strategy.children == queries
        out["nas_rl"].append(bench.rank(r.architecture))
        out["greedy"].append(bench.rank(strategy.greedy()))
        rewards = [s["reward"] for s in r.history.steps]
        quarter = max(1, len(rewards) // 4)
        out["rising"].append(float(np.mean(rewards[-quarter:]) - np.mean(rewards[:quarter])))
        rs = nasedu.search("random", space="macro", benchmark="nas-bench-macro", epochs=1, samples_per_epoch=queries,
                           seed=seed, progress=False)
        out["random"].append(bench.rank(rs.architecture))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="NAME=VALUE",
                        help="an option of the nas_rl strategy, e.g. -o controller_lr=0.01")
    args = parser.parse_args()
    options = {k: _value(v) for k, v in (o.split("=", 1) for o in args.options)}
    torch.set_num_threads(1)
    out = compare(args.seeds, args.queries, **options)
    print(f"NAS-Bench-Macro, {args.queries} queries per search, options {options or 'the budget defaults'}")
    print("rank among 3,969 distinct networks (1 = best)")
    print(f"{'seed':>4} {'NAS-RL best child':>18} {'greedy decode':>14} {'random best':>12} {'reward rise':>12}")
    for k, seed in enumerate(args.seeds):
        print(f"{seed:>4} {out['nas_rl'][k]:>18} {out['greedy'][k]:>14} {out['random'][k]:>12} "
              f"{out['rising'][k]:>12.4f}")
    for key in ("nas_rl", "greedy", "random"):
        print(f"{key:>8}: mean rank {np.mean(out[key]):.1f}, median {np.median(out[key]):.0f}")
    wins = sum(a < b for a, b in zip(out["nas_rl"], out["random"]))
    ties = sum(a == b for a, b in zip(out["nas_rl"], out["random"]))
    print(f"NAS-RL's best child ranks better than random search's best on {wins} of {len(args.seeds)} seeds "
          f"({ties} ties); mean reward rose (last quarter minus first) by {np.mean(out['rising']):.4f} on average")


if __name__ == "__main__":
    main()

"""Do different seeds' supernets push alpha the same way? The measurement
behind the quick budget's 16x16 digits for the DARTS cell (README, "A first
search").

For each seed, a quick first-order DARTS search on the DARTS cell space. At
the end of every epoch a callback takes grad_alpha L_val (Eq. 6 with xi = 0)
on `--batches` batches of the architecture half, then puts the batch streams,
the random state and BatchNorm's running statistics back, so the search runs
as it would without it. Per
epoch and cell type it prints:

- rho: the share of one batch's gradient that every batch shares,
  mean_{i != j} <g_i, g_j> / mean_i |g_i|^2 (1: no batch noise; 0: noise alone);
- cosine: between the seeds' gradients averaged over the batches, mean over
  pairs of seeds. Near 0, each seed's alpha follows its own supernet, and the
  derived cells agree no more than chance.

    python benchmarks/alpha_gradient_seeds.py [--seeds 0 1 2 3] [--batches 24] [--options JSON]

``--options '{"data": "digits", "layers": 5}'`` measures the quick budget as
it was before it enlarged the digits. The seeds run in the local process pool
(`nasedu.parallel`): about 4 minutes for 4 seeds on a 2-core CPU.
"""
from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import torch

import nasedu
from nasedu.budgets import budget_settings
from nasedu.parallel import run_tasks


class AlphaGradientProbe(nasedu.Callback):
    """At each epoch's end: the alpha gradient of `batches` architecture batches, per table."""

    def __init__(self, batches):
        self.batches, self.epochs = batches, []

    def on_epoch_end(self, run, record):
        strategy, streams = run.strategy, run.strategy.context.streams
        saved, rng = streams.state_dict(), torch.get_rng_state()
        buffers = {name: b.clone() for name, b in strategy.supernet.named_buffers()}
        grads = {name: [] for name in strategy.alpha}
        for _ in range(self.batches):
            x, y = next(streams.arch)
            for name, g in zip(strategy.alpha, strategy.alpha_gradient(x, y)[0]):
                grads[name].append(g.flatten().numpy())
        streams.load_state_dict(saved)
        torch.set_rng_state(rng)
        strategy.supernet.load_state_dict(buffers, strict=False)
        self.epochs.append({name: np.array(g) for name, g in grads.items()})


def probe_search(task):
    seed, batches, options = task
    probe = AlphaGradientProbe(batches)
    nasedu.search("darts", space="darts", budget="quick", seed=seed, progress=False, callbacks=[probe], **options)
    return probe.epochs


def signal_share(g: np.ndarray) -> float:
    """rho: mean over pairs i != j of <g_i, g_j>, over the mean of |g_i|^2."""
    total, squares = g.sum(0), (g * g).sum()
    cross = (total @ total - squares) / (len(g) * (len(g) - 1))
    return float(cross / (squares / len(g)))


def cosine(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--options", type=json.loads, default={}, help="search options as JSON")
    args = parser.parse_args()
    tasks = [(seed, args.batches, args.options) for seed in args.seeds]
    runs = [epochs for _, epochs in sorted(run_tasks(probe_search, tasks), key=lambda pair: pair[0][0])]
    settings = budget_settings("quick", "darts", "darts")
    print(f"quick DARTS on the DARTS cell: {settings['data']}, {settings['space']}, changed {args.options}; "
          f"seeds {args.seeds}, {args.batches} batches per measurement")
    for epoch in range(len(runs[0])):
        cells = []
        for name in runs[0][epoch]:
            rho = np.mean([signal_share(run[epoch][name]) for run in runs])
            means = [run[epoch][name].mean(0) for run in runs]
            cos = np.mean([cosine(a, b) for a, b in itertools.combinations(means, 2)])
            cells.append(f"{name}: rho {rho:.2f}, cosine between seeds {cos:+.2f}")
        print(f"epoch {epoch + 1}: " + "; ".join(cells))


if __name__ == "__main__":
    main()

"""How much does the live dashboard slow a search down?

Runs the same small DARTS search (digits data, a full 4-node cell, fixed seed)
with and without a `Dashboard(backend="widget")`, alternating the order so
that a machine getting busier or quieter affects both alike, and prints a
table and, last, the ratio of the median wall times:

    dashboard on/off wall-time ratio: 1.012

The dashboard is built without a front end: its FigureWidget still takes
every throttled update and serialises it into a widget message, and graphviz
still draws every new cell; only the sending over the kernel's socket is
skipped. That is the cost the search pays. The target is a ratio under 1.05.

    python benchmarks/dashboard_overhead.py [--repeats 3] [--epochs 2] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import nasedu
from nasedu.viz import Dashboard

SEARCH = dict(data="digits", C=4, layers=3, steps=4, multiplier=4, batch_size=32, seed=0, progress=False,
              alpha_lr=3e-2)  # the quick budget's alpha learning rate, so cells change while we watch


def run_once(with_dashboard: bool, epochs: int):
    callbacks = [Dashboard(backend="widget")] if with_dashboard else []
    start = time.perf_counter()
    result = nasedu.search("darts", epochs=epochs, callbacks=callbacks, **SEARCH)
    seconds = time.perf_counter() - start
    dash = callbacks[0] if callbacks else None
    return seconds, len(result.history.steps), dash


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs with and runs without (default 3 each)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; search: darts, epochs={args.epochs}, "
          + ", ".join(f"{k}={v}" for k, v in SEARCH.items() if k != "progress"))
    # Warm-up (not counted): imports, the digits data, plotly, graphviz.
    nasedu.search("darts", data="digits", C=2, layers=1, steps=1, multiplier=1, epochs=1, batch_size=256,
                  progress=False, callbacks=[Dashboard(backend="widget")])

    times = {True: [], False: []}
    print(f"{'run':>3}  {'dashboard':>9}  {'steps':>5}  {'seconds':>8}  {'steps/s':>7}  {'draws':>5}  {'cells drawn':>11}")
    for i in range(args.repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        for on in order:
            seconds, steps, dash = run_once(on, args.epochs)
            times[on].append(seconds)
            draws = dash.draws if dash else "-"
            cells = dash.cell_draws if dash else "-"
            print(f"{i + 1:>3}  {'on' if on else 'off':>9}  {steps:>5}  {seconds:>8.2f}  {steps / seconds:>7.2f}  "
                  f"{draws:>5}  {cells:>11}", flush=True)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"median wall time: on {on:.2f} s, off {off:.2f} s")
    print(f"dashboard on/off wall-time ratio: {on / off:.3f}")


if __name__ == "__main__":
    main()

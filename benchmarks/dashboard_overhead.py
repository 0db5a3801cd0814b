"""How much does the live dashboard slow a search down?

Runs the quick budget's DARTS search on the DARTS cell (`nasedu.budgets`:
digits enlarged to 16x16, C=4, 3 cells, batch 64, fixed seed) with and without a `Dashboard(backend="widget")`,
alternating the order so that a machine getting busier or quieter affects
both alike, and prints a table and, last, the ratio of the median wall times:

    dashboard on/off wall-time ratio: X.XXX

The dashboard is built without a front end: its FigureWidget still takes
every throttled update and serialises it into a widget message, and graphviz
still draws every new cell; only the sending over the kernel's socket is
skipped. That is the cost the search pays. The target is a ratio under 1.05.

A busy machine slows a run by far more than 5% (we have seen 40% between
two runs a minute apart), and such noise only ever adds time, so the last
line compares the fastest run of each kind, as `timeit` does; the medians
and each pair's ratio are printed above it. So is what the dashboard itself
spent, which noise does not blur: the time inside its callbacks on the
training thread, and the CPU time of the `dot` processes drawing cells.
`--tiny` runs a much smaller supernet (0.3 s steps instead of ~1 s), where
the dashboard's fixed costs weigh most.

    python benchmarks/dashboard_overhead.py [--repeats 5] [--epochs 3] [--tiny] [--threads N]
"""
from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

import nasedu
from nasedu.viz import Dashboard

QUICK = dict(budget="quick", seed=0, progress=False)
TINY = dict(budget="quick", C=4, layers=3, batch_size=32, seed=0, progress=False)


class TimedDashboard(Dashboard):
    """A Dashboard that adds up the time spent in its callbacks."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.callback_seconds = 0.0

    def _timed(name):
        def method(self, *args):
            start = time.perf_counter()
            getattr(Dashboard, name)(self, *args)
            self.callback_seconds += time.perf_counter() - start
        method.__name__ = name
        return method

    on_search_start = _timed("on_search_start")
    on_step_end = _timed("on_step_end")
    on_epoch_end = _timed("on_epoch_end")
    on_search_end = _timed("on_search_end")
    del _timed


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(settings: dict, with_dashboard: bool, epochs: int):
    dash = TimedDashboard(backend="widget") if with_dashboard else None
    cpu, start = children_cpu(), time.perf_counter()
    result = nasedu.search("darts", epochs=epochs, callbacks=[dash] if dash else [], **settings)
    if dash is not None and dash._pending and dash._pending[0] is not None:
        dash._pending[0].result()  # a drawing still running counts too
    seconds = time.perf_counter() - start
    return seconds, len(result.history.steps), dash, children_cpu() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs with and runs without (default 5 each)")
    parser.add_argument("--epochs", type=int, default=3, help="(default 3, the quick budget's)")
    parser.add_argument("--tiny", action="store_true", help="a C=4, 3-cell supernet at batch 32")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: nasedu's, see nasedu.device.default_threads)")
    args = parser.parse_args(argv)

    settings = dict(TINY if args.tiny else QUICK, threads=args.threads or "auto")
    threads = args.threads or nasedu.device.default_threads(nasedu.choose_device()) or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads; search: darts, epochs={args.epochs}, "
          + ", ".join(f"{k}={v}" for k, v in settings.items() if k != "progress"))
    # Warm-up (not counted): imports, the digits data, plotly, graphviz.
    nasedu.search("darts", data="digits", C=2, layers=1, steps=1, multiplier=1, epochs=1, batch_size=256,
                  progress=False, callbacks=[Dashboard(backend="widget")])

    times = {True: [], False: []}
    own = []  # (callback seconds, dot cpu seconds) of each run with the dashboard
    print(f"{'run':>3}  {'dashboard':>9}  {'steps':>5}  {'seconds':>8}  {'steps/s':>7}  {'draws':>5}  "
          f"{'cells drawn':>11}  {'callbacks s':>11}  {'dot cpu s':>9}")
    for i in range(args.repeats):
        order = (False, True) if i % 2 == 0 else (True, False)
        for on in order:
            seconds, steps, dash, dot_cpu = run_once(settings, on, args.epochs)
            times[on].append(seconds)
            if dash:
                own.append((dash.callback_seconds, dot_cpu))
                extra = f"{dash.draws:>5}  {dash.cell_draws:>11}  {dash.callback_seconds:>11.2f}  {dot_cpu:>9.2f}"
            else:
                extra = f"{'-':>5}  {'-':>11}  {'-':>11}  {'-':>9}"
            print(f"{i + 1:>3}  {'on' if on else 'off':>9}  {steps:>5}  {seconds:>8.2f}  {steps / seconds:>7.2f}  {extra}",
                  flush=True)
    pairs = [on / off for on, off in zip(times[True], times[False])]
    print("each pair's on/off ratio: " + ", ".join(f"{r:.3f}" for r in pairs))
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"median wall time: on {on:.2f} s, off {off:.2f} s (ratio {on / off:.3f})")
    callbacks, dot = (statistics.median(x) for x in zip(*own))
    fastest_off = min(times[False])
    print(f"the dashboard's own time per run (median): callbacks {callbacks:.2f} s + dot {dot:.2f} s CPU "
          f"= {100 * (callbacks + dot) / fastest_off:.1f}% of the fastest run without it")
    print(f"fastest run: on {min(times[True]):.2f} s, off {fastest_off:.2f} s")
    print(f"dashboard on/off wall-time ratio: {min(times[True]) / fastest_off:.3f}")

if __name__ == "__main__":
    main()

"""How many CPU threads should a small search use? One, against torch's
default, on an idle machine and with another process keeping one core busy
(a browser beside the kernel, Binder's shared CPU).

Runs the quick budget's DARTS search on the DARTS cell (`nasedu.budgets`:
digits enlarged to 16x16, C=4, 3 cells, batch 64; one epoch of 8 steps) with ``threads=1`` and with ``threads=None`` (torch's
default: one per core), alternating, first on an idle machine, then while a
busy-loop process runs beside it, and prints the median seconds per step
and, last, the ratios measured in this run:

    idle: default/1-thread step-time ratio: X.XX
    busy: default/1-thread step-time ratio: X.XX

A ratio below 1 means torch's default is faster. nasedu's default
(`nasedu.device.default_threads`) is chosen from these two figures.

    python benchmarks/threads.py [--repeats 3] [--steps 8]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import torch

import nasedu


class StepTimer(nasedu.Callback):
    """Seconds of each search step (the loop's own bookkeeping included)."""

    def on_search_start(self, run):
        self.seconds, self.last = [], time.perf_counter()

    def on_step_end(self, run, record):
        now = time.perf_counter()
        self.seconds.append(now - self.last)
        self.last = now


def seconds_per_step(threads, steps):
    timer = StepTimer()
    nasedu.search("darts", budget="quick", seed=0, epochs=1, progress=False, threads=threads, callbacks=[timer])
    return statistics.median(timer.seconds[1:steps])  # the first step allocates and picks kernels


def measure(label, repeats, steps):
    times = {1: [], None: []}
    for i in range(repeats):
        for threads in ((1, None) if i % 2 == 0 else (None, 1)):
            times[threads].append(seconds_per_step(threads, steps))
            name = "1 thread" if threads == 1 else f"default ({torch.get_num_threads()})"
            print(f"{label:>5}  {name:>12}  {times[threads][-1]:8.2f} s/step", flush=True)
    return statistics.median(times[1]), statistics.median(times[None])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting per condition (default 3)")
    parser.add_argument("--steps", type=int, default=8, help="steps timed per run, at most 8 (default 8)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, default {torch.get_num_threads()} threads; quick DARTS search on digits")
    nasedu.search("darts", data="digits", C=2, layers=1, steps=1, multiplier=1, epochs=1, progress=False)  # warm-up
    idle = measure("idle", args.repeats, args.steps)
    busy_loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        busy = measure("busy", args.repeats, args.steps)
    finally:
        busy_loop.kill()
        busy_loop.wait()
    for label, (one, default) in (("idle", idle), ("busy", busy)):
        print(f"{label}: median s/step: 1 thread {one:.2f}, default {default:.2f}")
    for label, (one, default) in (("idle", idle), ("busy", busy)):
        print(f"{label}: default/1-thread step-time ratio: {default / one:.2f}")


if __name__ == "__main__":
    main()

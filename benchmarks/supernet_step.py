"""Time per search step on the CPU: the mixed operation (every op on every
edge, DARTS) against the hard path (one op per edge, as ENAS and ASNG-NAS
sample), at a few supernet sizes. Both are measured in the same run and
reported as a ratio, because this machine's absolute speed varies.

    .venv/bin/python benchmarks/supernet_step.py [--repeats 5]

A "step" is one forward and backward pass on a batch of 8x8 digits-sized
inputs, with gradients for the weights w (and for alpha in the mixed case).
"""
import argparse
import statistics
import time

import torch

from nasedu.genotypes import DARTS_V2
from nasedu.spaces import DartsCellSpace

SIZES = [  # (C, layers, batch)
    (4, 3, 32),
    (8, 5, 64),
    (16, 5, 64),
]


def time_step(net, x, y, make_arch, repeats):
    def step():
        loss = torch.nn.functional.cross_entropy(net(x, make_arch()), y)
        loss.backward()
    step()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, nasedu's default on a CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"{'C':>3} {'layers':>6} {'batch':>5} {'mixed (s)':>10} {'hard (s)':>9} {'mixed/hard':>10}")
    ratios = []
    for C, layers, batch in SIZES:
        space = DartsCellSpace(C=C, layers=layers)
        net = space.supernet(num_classes=10, in_channels=1)
        x, y = torch.randn(batch, 1, 8, 8), torch.randint(0, 10, (batch,))
        alpha = {k: (1e-3 * torch.randn(shape)).requires_grad_() for k, shape in space.shapes().items()}
        hard = space.encode(DARTS_V2)
        # Interleave the two so drifts in machine load hit both alike.
        t_mixed, t_hard = [], []
        for _ in range(2):
            t_mixed.append(time_step(net, x, y, lambda: {k: a.softmax(-1) for k, a in alpha.items()}, args.repeats))
            t_hard.append(time_step(net, x, y, lambda: hard, args.repeats))
        m, h = min(t_mixed), min(t_hard)
        ratios.append(m / h)
        print(f"{C:>3} {layers:>6} {batch:>5} {m:>10.3f} {h:>9.3f} {m / h:>10.1f}")
    print(f"mixed/hard step-time ratio (geometric mean): {statistics.geometric_mean(ratios):.1f}")


if __name__ == "__main__":
    main()

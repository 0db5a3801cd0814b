"""Time per supernet search step on the CPU: the fast path (`FastSearchCell`,
`nasedu.grouped`) against the readable one (`SearchCell`, as fast as the
DARTS authors' `model_search.Network`), for a mixture (every operation on
every edge, DARTS) and for hard paths (one operation per edge, as ENAS and
ASNG-NAS sample), at the quick budget's configuration and at the paper's.
All variants of one configuration are timed interleaved in one run and
reported as ratios, because this machine's absolute speed drifts.

    .venv/bin/python benchmarks/supernet_step.py [--repeats 5] [--configs quick,digits8,paper] [--cells]

A step is one forward and backward pass with gradients for w (and for alpha
under a mixture). `--cells` also times each cell alone three ways (readable,
readable on channels_last tensors, grouped): the measurement behind
`nasedu.grouped.GROUPED_MAX_PIXELS`.
"""
import argparse
import statistics
import time

import torch

from nasedu.genotypes import DARTS_V2
from nasedu.spaces import DartsCellSpace
from nasedu.supernet import SearchCell

CONFIGS = {  # name: (C, layers, batch, image size, channels)
    "quick": (4, 3, 64, 16, 1),      # the quick budget: digits enlarged to 16x16
    "digits8": (4, 5, 64, 8, 1),     # the quick budget until it enlarged the digits
    "paper": (16, 8, 64, 32, 3),     # DARTS Section 3.1.1: CIFAR-10 search
}


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step(net, x, y, make_arch):
    torch.nn.functional.cross_entropy(net(x, make_arch()), y).backward()


def compare_paths(name, repeats):
    C, layers, batch, size, channels = CONFIGS[name]
    space = DartsCellSpace(C=C, layers=layers)
    torch.manual_seed(0)
    fast = space.supernet(10, channels, fast=True)
    readable = space.supernet(10, channels, fast=False)
    readable.load_state_dict(fast.state_dict())
    x, y = torch.randn(batch, channels, size, size), torch.randint(0, 10, (batch,))
    alpha = {k: (1e-3 * torch.randn(shape)).requires_grad_() for k, shape in space.shapes().items()}
    archs = {"mixture": lambda: {k: a.softmax(-1) for k, a in alpha.items()},
             "hard path": lambda: space.encode(DARTS_V2)}
    variants = {(arch, path): (net, make) for arch, make in archs.items()
                for path, net in (("readable", readable), ("fast", fast))}
    for net, make in variants.values():  # warm-up: first calls allocate and pick kernels
        step(net, x, y, make)
    times = {key: [] for key in variants}
    for _ in range(repeats):  # interleaved, so drifts in load hit every variant alike
        for key, (net, make) in variants.items():
            times[key].append(timed(lambda: step(net, x, y, make)))
    med = {key: statistics.median(t) for key, t in times.items()}
    print(f"\n{name}: C={C}, {layers} cells, batch {batch}, {size}x{size}x{channels} ({repeats} interleaved repeats, "
          f"median seconds per step)")
    print(f"{'architecture':>12} {'readable':>9} {'fast':>8} {'fast/readable':>14}")
    ratios = {}
    for arch in archs:
        r, f = med[(arch, "readable")], med[(arch, "fast")]
        ratios[arch] = f / r
        print(f"{arch:>12} {r:>9.3f} {f:>8.3f} {f / r:>14.2f}")
    print(f"hard path / mixture: readable {med[('hard path', 'readable')] / med[('mixture', 'readable')]:.2f}, "
          f"fast {med[('hard path', 'fast')] / med[('mixture', 'fast')]:.2f}")
    return ratios


def compare_cells(name, repeats):
    """Each distinct cell of the supernet alone, under a mixture, three ways."""
    C, layers, batch, size, channels = CONFIGS[name]
    space = DartsCellSpace(C=C, layers=layers)
    torch.manual_seed(0)
    net = space.supernet(10, channels, fast=True)
    weights = {k: (1e-3 * torch.randn(shape)).softmax(-1) for k, shape in space.shapes().items()}
    with torch.no_grad():
        s0 = s1 = net.stem(torch.randn(batch, channels, size, size))
        inputs = []
        for cell in net.cells:
            inputs.append((s0, s1))
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
    print(f"\n{name}, each cell alone (median seconds, forward and backward):")
    print(f"{'cell':>6} {'input':>16} {'readable':>9} {'channels_last':>14} {'grouped':>8}")
    seen = set()
    for cell, (a, b) in zip(net.cells, inputs):
        key = (cell.reduction, tuple(a.shape), tuple(b.shape))
        if key in seen:
            continue
        seen.add(key)
        w = weights["reduce" if cell.reduction else "normal"]
        nchw = [t.clone().requires_grad_() for t in (a, b)]
        last = [t.contiguous(memory_format=torch.channels_last).requires_grad_() for t in (a, b)]
        ways = {"readable": lambda: SearchCell.forward(cell, *nchw, w).sum().backward(),
                "channels_last": lambda: SearchCell.forward(cell, *last, w).sum().backward(),
                "grouped": lambda: cell._plan.run([cell.preprocess0(nchw[0]), cell.preprocess1(nchw[1])], w,
                                                  None)[-1].sum().backward()}
        for fn in ways.values():
            fn()
        times = {k: [] for k in ways}
        for _ in range(repeats):
            for k, fn in ways.items():
                times[k].append(timed(fn))
        med = {k: statistics.median(t) for k, t in times.items()}
        kind = "reduce" if cell.reduction else "normal"
        print(f"{kind:>6} {str(tuple(b.shape[1:])):>16} {med['readable']:>9.3f} {med['channels_last']:>14.3f} "
              f"{med['grouped']:>8.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--configs", default="quick,paper", help="comma-separated: " + ", ".join(CONFIGS))
    parser.add_argument("--cells", action="store_true", help="also time each cell alone three ways")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, nasedu's default on a CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    for name in args.configs.split(","):
        ratios = compare_paths(name, args.repeats)
        goal = 0.8 if name == "paper" else 0.5
        print(f"goal for {name}: fast/readable <= {goal}: mixture {'met' if ratios['mixture'] <= goal else 'NOT met'}, "
              f"hard path {'met' if ratios['hard path'] <= goal else 'NOT met'}")
        if args.cells:
            compare_cells(name, args.repeats)


if __name__ == "__main__":
    main()

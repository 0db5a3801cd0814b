"""Build a ground-truth table: train every architecture of a space
stand-alone with one fixed protocol and record what it reached.

    $ nasedu bench build out/nb201-digits            # resumable; local processes
    $ nasedu bench build out/nb201-digits --address auto   # on a Ray cluster
    $ nasedu bench finish out/nb201-digits nasedu/tables/nb201-digits.json.gz

The NAS-Bench-201 cell space on digits (`PROTOCOL`): every one of the 15,625
cells, de-duplicated to the 5,425 that compute different functions
(`nasedu.spaces.nb201.function_form`: dead edges dropped, `skip_connect` as
the identity, sums in any order; one training stands for every cell of its
class), trained twice (seeds 0 and 1). The network is the NAS-Bench-201
skeleton shrunk for 8x8 digits: C = 4, N = 1 (one cell per stage; the paper
has 16 and 5), and the residual blocks between stages reduced to their
shortcut (2x2 average pooling and a 1x1 convolution, `Shortcut`). Training:
4 epochs of batch 128, Nesterov SGD 0.1 with weight decay 5e-4 and a cosine
schedule to 0 (the paper's optimiser; 4 epochs instead of 200), no
augmentation, no gradient clipping. Validation and test accuracy are
recorded after every epoch (learning curves), with the parameter and FLOP
counts and the training time. The data split is digits' fixed split (seed
0): 1,077 training, 360 validation and 360 test images.

Why this protocol, measured (`benchmarks/bench_protocol.py`, README): with
the paper's residual blocks, or trained for long, almost every cell reaches
97-99% on digits, and the ranking is mostly noise (Kendall's tau between two
seeds of a 16-epoch training is about 0.25). The blocks' convolutions learn
digits whatever the cell; without them, and with a short training, the cell
decides what the network learns: accuracies spread from chance to 95.6%
(median 69.6%) and two seeds rank cells alike (tau 0.60 on a sample of 30,
0.53 over the whole table). The whole table built in 90 minutes on a 2-core
laptop-class CPU (3.0 CPU-hours).

Each result is saved the moment it exists, in shards rewritten atomically,
so killing the build loses only the trainings in flight; running it again
resumes. `finish` writes the compressed table that `nasedu.bench.load`
reads, with the protocol and the versions that made it.
"""
from __future__ import annotations

import functools
import glob
import gzip
import json
import os
import platform
import time

import torch

from .checkpoint import atomic_write
from .cost import count_flops, count_parameters
from .parallel import run_tasks

__all__ = ["PROTOCOL", "build", "finish", "train_one", "tasks", "load_results", "ProtocolMismatchError"]

PROTOCOL = {
    "name": "nb201-digits",
    "space": {"name": "nb201", "C": 4, "N": 1, "blocks": "shortcut"},
    "data": "digits",
    "split_seed": 0,
    "seeds": [0, 1],
    "epochs": 4,
    "eval_epochs": [1, 2, 3, 4],
    "batch_size": 128,
    "lr": 0.1,
    "lr_min": 0.0,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "grad_clip": None,
    "threads": 1,
}
SHARD_SIZE = 200


class ProtocolMismatchError(ValueError):
    """The output folder holds results of another protocol."""


def tasks(protocol: dict = PROTOCOL, archs=None) -> list:
    """Every (arch string, seed) pair to train: one cell per class of cells
    that compute the same function, each seed, seeds outermost (so a partial
    build has one complete seed first)."""
    from .spaces import get_space

    space = get_space(protocol["space"]["name"])
    if archs is None:
        archs = sorted({space.canonical(a) for a in space.all()}, key=lambda a: a.index)
    else:
        archs = list(dict.fromkeys(space.validate(a) for a in archs))
    return [(str(a), seed) for seed in protocol["seeds"] for a in archs]


@functools.lru_cache(maxsize=1)
def _bundle(data: str, split_seed: int):
    from .data import load_dataset

    return load_dataset(data, seed=split_seed)


def train_one(task, protocol: dict = PROTOCOL) -> dict:
    """Train one architecture with one seed under `protocol`; the record of
    its learning curve. Runs in a worker process (module-level, picklable)."""
    from .spaces import get_space
    from .training import seed_everything, train_network

    arch, seed = task
    space = get_space(protocol["space"])
    bundle = _bundle(protocol["data"], protocol["split_seed"])
    started = time.perf_counter()
    seed_everything(seed)
    model = space.network(arch, bundle.num_classes, bundle.in_channels)
    history, _ = train_network(model, bundle, epochs=protocol["epochs"], batch_size=protocol["batch_size"],
                               lr=protocol["lr"], lr_min=protocol["lr_min"], momentum=protocol["momentum"],
                               nesterov=protocol["nesterov"], weight_decay=protocol["weight_decay"],
                               grad_clip=protocol["grad_clip"], seed=seed, device="cpu", progress=False,
                               num_threads=protocol["threads"], eval_epochs=tuple(protocol["eval_epochs"]))
    evaluated = [r for r in history if "test_acc" in r]
    return {"arch": str(arch), "seed": seed, "epochs": [r["epoch"] + 1 for r in evaluated],
            "val_acc": [round(r["val_acc"], 6) for r in evaluated],
            "test_acc": [round(r["test_acc"], 6) for r in evaluated],
            "train_loss": round(history[-1]["train_loss"], 6), "seconds": round(time.perf_counter() - started, 3)}


# ---------------------------------------------------------------------------
# Shards: each result saved at once, atomically
# ---------------------------------------------------------------------------

def load_results(out) -> dict:
    """Every saved result in `out`, keyed by (arch, seed)."""
    results = {}
    for path in sorted(glob.glob(os.path.join(out, "shards", "shard-*.json"))):
        with open(path) as f:
            for record in json.load(f):
                results[(record["arch"], record["seed"])] = record
    return results


class _Shards:
    """Results appended to the newest shard, which is rewritten atomically
    after every result (a shard holds at most `SHARD_SIZE`)."""

    def __init__(self, out):
        self.folder = os.path.join(out, "shards")
        os.makedirs(self.folder, exist_ok=True)
        self.index = len(glob.glob(os.path.join(self.folder, "shard-*.json")))
        self.current = []

    def add(self, record: dict) -> None:
        if len(self.current) >= SHARD_SIZE:
            self.index, self.current = self.index + 1, []
        self.current.append(record)
        data = json.dumps(self.current, separators=(",", ":")).encode()
        atomic_write(os.path.join(self.folder, f"shard-{self.index:05d}.json"), lambda f: f.write(data))


def _check_protocol(out, protocol):
    path = os.path.join(out, "protocol.json")
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        asked = json.loads(json.dumps(protocol))  # as JSON has it: tuples are lists
        if saved != asked:
            changed = sorted(k for k in set(saved) | set(asked) if saved.get(k) != asked.get(k))
            raise ProtocolMismatchError(f"{out} holds results of another protocol (differs in: {', '.join(changed)}); "
                                        f"use another folder, or the protocol saved in {path}")
    else:
        os.makedirs(out, exist_ok=True)
        data = json.dumps(protocol, indent=1).encode()
        atomic_write(path, lambda f: f.write(data))


def build(out, *, protocol: dict = PROTOCOL, archs=None, workers: int | None = None, address: str | None = None,
          progress: bool = True, limit: int | None = None) -> dict:
    """Train every task of `protocol` not yet saved in `out`, in parallel
    (local processes, or Ray at `address`); returns every result so far.
    `archs` restricts the build to some architectures, `limit` to that many
    new trainings (both for trying it out)."""
    _check_protocol(out, protocol)
    done = load_results(out)
    todo = [t for t in tasks(protocol, archs) if t not in done]
    if limit is not None:
        todo = todo[:limit]
    shards = _Shards(out)
    fn = functools.partial(train_one, protocol=protocol)
    for task, record in run_tasks(fn, todo, workers=workers, address=address,
                                  progress="train" if progress is True else progress):
        shards.add(record)
        done[task] = record
    return done


# ---------------------------------------------------------------------------
# The finished table
# ---------------------------------------------------------------------------

def _versions() -> dict:
    import numpy
    import sklearn

    from . import __version__

    return {"nasedu": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}


def finish(out, path, *, protocol: dict = PROTOCOL, where: str | None = None) -> dict:
    """Collect a complete build into the gzipped JSON table at `path`: per
    class representative, each seed's learning curve, parameters, FLOPs and
    training seconds; the protocol, the versions and the build's cost."""
    from .spaces import get_space

    _check_protocol(out, protocol)
    results = load_results(out)
    missing = [t for t in tasks(protocol) if t not in results]
    if missing:
        raise RuntimeError(f"{len(missing):,} trainings are missing in {out} (e.g. {missing[0]}); "
                           f"run the build on {out} again to finish them")
    space = get_space(protocol["space"])
    bundle = _bundle(protocol["data"], protocol["split_seed"])
    probe = torch.zeros(1, bundle.in_channels, bundle.image_size, bundle.image_size)
    records = {}
    for (arch, seed), r in sorted(results.items()):
        entry = records.get(arch)
        if entry is None:
            model = space.network(arch, bundle.num_classes, bundle.in_channels)
            entry = records[arch] = {"params": count_parameters(model), "flops": count_flops(model, probe),
                                     "val_acc": [], "test_acc": [], "seconds": []}
        entry["val_acc"].append(r["val_acc"])
        entry["test_acc"].append(r["test_acc"])
        entry["seconds"].append(r["seconds"])
    seconds = sum(r["seconds"] for r in results.values())
    table = {"protocol": protocol, "versions": _versions(),
             "build": {"trainings": len(results), "cpu_seconds": round(seconds, 1),
                       "where": where or f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}"},
             "records": records}
    data = gzip.compress(json.dumps(table, separators=(",", ":")).encode(), mtime=0)
    atomic_write(path, lambda f: f.write(data))
    os.chmod(path, 0o644)  # a file to ship, readable by all (the temporary file was private)
    return table

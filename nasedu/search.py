"""One search loop for every strategy.

``search("darts", data="digits", epochs=4)`` builds the supernet, splits the
training data in two halves (DARTS Section 3.1.1), alternates the strategy's
steps over them, evaluates on the validation split every epoch, calls the
callbacks (progress bar, log, dashboard), checkpoints into `out` and returns
a `SearchResult` with the derived genotype and the recorded history.

A run stopped by an interrupt (Ctrl-C, JupyterLab's stop button) writes a
checkpoint and returns what it has; the same call with the same `out` resumes
and ends exactly where an uninterrupted run would (on the CPU; GPU kernels
need not be bit-for-bit deterministic).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset

from .budgets import budget_settings
from .data import load_dataset, search_split
from .genotypes import PRIMITIVES, Genotype, genotype_from_json, genotype_to_json, save_genotype
from .strategies import get_strategy
from .supernet import Supernet

__all__ = ["search", "SearchResult", "SearchRun", "Callback", "History", "choose_device", "CheckpointMismatchError"]


class CheckpointMismatchError(ValueError):
    """`out` holds a checkpoint of a different search; ``differences`` lists
    the settings that differ (``"seed: 0 -> 1"``), ``problem`` says so in a
    sentence without the advice, for callers (the CLI) that advise otherwise."""

    def __init__(self, out, differences):
        self.out, self.differences = out, list(differences)
        self.problem = f"{out} holds a checkpoint of a different search ({'; '.join(self.differences)})."
        super().__init__(f"{self.problem} Pass another out= folder, or resume=False to start over there.")


def choose_device(device=None) -> torch.device:
    """`device`, else ``$NASEDU_DEVICE``, else cuda, then mps, then cpu."""
    device = device or os.environ.get("NASEDU_DEVICE")
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ---------------------------------------------------------------------------
# What a run records
# ---------------------------------------------------------------------------

@dataclass
class History:
    """Per-step metrics, per-epoch summaries, and snapshots of the strategy's
    per-edge probabilities (every `record_every` steps), all JSON-friendly."""

    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def series(self, key, where="steps"):
        """``(x, y)`` lists of metric `key` over `where` ("steps" or "epochs")."""
        rows = [r for r in getattr(self, where) if r.get(key) is not None]
        return [r["step"] for r in rows], [r[key] for r in rows]

    def genotypes(self):
        """The genotype derived at the end of each epoch."""
        return [genotype_from_json(json.dumps(r["genotype"])) for r in self.epochs]

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: d.get(k, [] if k != "meta" else {}) for k in ("steps", "epochs", "snapshots", "meta")})

    def save(self, path):
        _atomic_write(path, lambda f: f.write(json.dumps(self.to_dict()).encode()))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_dict(json.load(f))


@dataclass
class SearchResult:
    genotype: Genotype
    history: History
    strategy: object = None
    supernet: object = None
    interrupted: bool = False
    out: str | None = None

    @property
    def val_acc(self):
        return self.history.epochs[-1]["val_acc"] if self.history.epochs else None


class Callback:
    """Hooks the loop calls; override the ones you need."""

    def on_search_start(self, run): ...
    def on_step_end(self, run, record): ...
    def on_epoch_end(self, run, record): ...
    def on_search_end(self, run, result): ...


@dataclass
class SearchRun:
    """The live state callbacks see."""

    config: dict
    strategy: object
    supernet: object
    device: torch.device
    history: History
    steps_per_epoch: int
    total_steps: int
    epoch: int = 0
    global_step: int = 0
    started: float = field(default_factory=time.perf_counter)
    steps_this_session: int = 0
    interrupted: bool = False

    @property
    def steps_per_second(self):
        elapsed = time.perf_counter() - self.started
        return self.steps_this_session / elapsed if elapsed > 0 else 0.0

    @property
    def seconds_left(self):
        rate = self.steps_per_second
        return (self.total_steps - self.global_step) / rate if rate > 0 else None


# ---------------------------------------------------------------------------
# Batches: a permutation per epoch, so a run can resume mid-epoch exactly
# ---------------------------------------------------------------------------

def _as_tensors(ds):
    """(x, y) tensors if `ds` is (a subset of) a TensorDataset, else None."""
    index = None
    while isinstance(ds, Subset):
        idx = torch.as_tensor(ds.indices, dtype=torch.long)
        index = idx if index is None else idx[index]
        ds = ds.dataset
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        x, y = ds.tensors
        return (x, y) if index is None else (x[index], y[index])
    return None


class _Batches:
    """Batches of one split in the order of a seeded permutation per epoch."""

    def __init__(self, dataset, batch_size, seed, device, num_workers=0):
        self.dataset, self.batch_size, self.seed, self.device = dataset, batch_size, seed, device
        self.tensors = _as_tensors(dataset)
        self.num_workers = num_workers
        self.n = len(dataset)
        self.num_batches = max(1, self.n // batch_size)  # drop the last partial batch, as the papers' loaders do

    def order(self, epoch):
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))

    def epoch(self, epoch, start=0):
        perm = self.order(epoch)
        batches = [perm[b * self.batch_size:(b + 1) * self.batch_size] for b in range(start, self.num_batches)]
        if self.tensors is not None:
            x, y = self.tensors
            for idx in batches:
                yield x[idx].to(self.device), y[idx].to(self.device)
            return
        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches], num_workers=self.num_workers,
                            pin_memory=self.device.type == "cuda")
        for xb, yb in loader:
            yield xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)


def evaluate(supernet, arch, dataset, device, batch_size=256, autocast=None):
    """Loss and accuracy of the supernet running `arch` on `dataset`."""
    batches = _Batches(dataset, batch_size, 0, device)
    batches.num_batches = -(-batches.n // batch_size)  # keep every sample
    was_training = supernet.training
    supernet.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with torch.no_grad():
        for x, y in batches.epoch(0):
            with autocast() if autocast else torch.autocast("cpu", enabled=False):
                logits = supernet(x, arch).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    supernet.train(was_training)
    return loss_sum / total, correct / total


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------

def _atomic_write(path, write):
    """Write through a temporary file and rename it, so a crash never leaves a
    half-written file where a good one was."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _rng_state():
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(out, run, position, running):
    state = {"config": run.config, "epoch": run.epoch, "batch": position, "global_step": run.global_step,
             "running": running, "supernet": run.supernet.state_dict(), "strategy": run.strategy.state_dict(),
             "rng": _rng_state(), "history": run.history.to_dict()}
    _atomic_write(os.path.join(out, "checkpoint.pt"), lambda f: torch.save(state, f))
    run.history.save(os.path.join(out, "history.json"))


class _StopRequested(Exception):
    pass


class _StopAtStepBoundary:
    """Turn Ctrl-C (or JupyterLab's stop button) into a request that the loop
    honours between steps, so a checkpoint never holds half a step (alpha
    updated, w not). A second Ctrl-C stops at once."""

    requested = False

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _config_difference(saved, wanted):
    keys = sorted(set(saved) | set(wanted))
    return [f"{k}: {saved.get(k)!r} -> {wanted.get(k)!r}" for k in keys if saved.get(k) != wanted.get(k)]


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

def _record_epoch(run, running, val_loss, val_acc, seconds):
    probs = run.strategy.probabilities()
    n = max(running["count"], 1)
    record = {"epoch": run.epoch, "step": run.global_step, "val_loss": val_loss, "val_acc": val_acc,
              "seconds": seconds, "genotype": json.loads(genotype_to_json(run.strategy.genotype())),
              "probabilities": {k: v.tolist() for k, v in probs.items()}}
    for key in ("train_loss", "train_acc", "arch_loss", "arch_acc"):
        record[key] = running[key] / n if key in running else None
    return record


def search(strategy="darts", data=None, *, budget=None, epochs=None, batch_size=None, C=None, layers=None,
           steps=4, multiplier=4, primitives=PRIMITIVES, seed=0, device=None, amp=None, out=None, resume=True,
           callbacks=(), progress=True, record_every=None, num_workers=0, **strategy_options) -> SearchResult:
    """Run a weight-sharing architecture search and return a `SearchResult`.

    `budget` ("quick" or "full", default from `nasedu.budget()`) fills in
    `epochs`, `batch_size`, `C`, `layers` and strategy settings not given.
    With `out`, the run checkpoints there every epoch (and when interrupted),
    writes `genotype.json` and `history.json`, and resumes from `out` if a
    checkpoint of the same search is there.
    """
    settings = budget_settings(budget, strategy if isinstance(strategy, str) else strategy.name)
    data = data or settings["data"]
    epochs = epochs or settings["epochs"]
    batch_size = batch_size or settings["batch_size"]
    C, layers = C or settings["C"], layers or settings["layers"]
    strategy_options = {**settings.get("strategy", {}), **strategy_options}
    device = choose_device(device)
    amp = (device.type == "cuda") if amp is None else amp

    bundle = load_dataset(data, seed=seed)
    w_split, arch_split = search_split(bundle.train, seed)
    w_batches = _Batches(w_split, batch_size, seed, device, num_workers)
    arch_batches = _Batches(arch_split, batch_size, seed + 1, device, num_workers)
    steps_per_epoch = min(w_batches.num_batches, arch_batches.num_batches)

    random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
    supernet = Supernet(C, bundle.num_classes, layers, steps, multiplier, in_channels=bundle.in_channels,
                        primitives=primitives).to(device)
    if device.type == "cuda":
        supernet = supernet.to(memory_format=torch.channels_last)
    cls = get_strategy(strategy)
    strat = cls(supernet, epochs=epochs, steps_per_epoch=steps_per_epoch, device=device, amp=amp, **strategy_options)

    config = {"strategy": cls.name, "data": bundle.name, "epochs": epochs, "batch_size": batch_size, "C": C,
              "layers": layers, "steps": steps, "multiplier": multiplier, "primitives": list(primitives),
              "seed": seed, "hyperparameters": strat.hyperparameters()}
    total_steps = epochs * steps_per_epoch
    record_every = record_every or max(1, total_steps // 300)
    history = History(meta={"config": config, "device": str(device), "primitives": list(primitives),
                            "steps": steps, "multiplier": multiplier, "strategy": cls.name, "paper": cls.paper})
    run = SearchRun(config, strat, supernet, device, history, steps_per_epoch, total_steps)
    start_epoch, start_batch = 0, 0
    running = {"count": 0}

    if out:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "checkpoint.pt")
        if resume and os.path.exists(path):
            ckpt = torch.load(path, map_location=device, weights_only=False)
            diff = _config_difference(ckpt["config"], config)
            if diff:
                raise CheckpointMismatchError(out, diff)
            supernet.load_state_dict(ckpt["supernet"])
            strat.load_state_dict(ckpt["strategy"])
            _set_rng_state(ckpt["rng"])
            run.history = history = History.from_dict(ckpt["history"])
            run.epoch, run.global_step = ckpt["epoch"], ckpt["global_step"]
            start_epoch, start_batch, running = ckpt["epoch"], ckpt["batch"], ckpt["running"]

    callbacks = list(callbacks)
    if progress:
        from .callbacks import ProgressBar
        callbacks.insert(0, ProgressBar())
    for cb in callbacks:
        cb.on_search_start(run)

    position = start_batch
    stop = _StopAtStepBoundary()
    try:
        with stop:
            for epoch in range(start_epoch, epochs):
                run.epoch = epoch
                epoch_start = time.perf_counter()
                supernet.train()
                pairs = zip(w_batches.epoch(epoch, position), arch_batches.epoch(epoch, position))
                for train_batch, arch_batch in pairs:
                    if device.type == "cuda":
                        train_batch = (train_batch[0].contiguous(memory_format=torch.channels_last), train_batch[1])
                        arch_batch = (arch_batch[0].contiguous(memory_format=torch.channels_last), arch_batch[1])
                    metrics = strat.step(train_batch, arch_batch)
                    position += 1
                    run.global_step += 1
                    run.steps_this_session += 1
                    running["count"] += 1
                    for k, v in metrics.items():
                        if k != "lr" and v is not None:
                            running[k] = running.get(k, 0.0) + float(v)
                    record = {"step": run.global_step, "epoch": epoch, **metrics}
                    history.steps.append(record)
                    if run.global_step % record_every == 0:
                        history.snapshots.append({"step": run.global_step, "epoch": epoch, "probabilities":
                                                  {k: v.tolist() for k, v in strat.probabilities().items()}})
                    for cb in callbacks:
                        cb.on_step_end(run, record)
                    if stop.requested:
                        raise _StopRequested
                    if position >= steps_per_epoch:
                        break
                with warnings.catch_warnings():
                    if run.steps_this_session == 0:
                        # Resumed after an epoch's last step: the schedule steps before this process has
                        # stepped an optimizer. That order is right here; torch's check cannot know.
                        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                    strat.end_epoch(epoch)
                val_loss, val_acc = evaluate(supernet, strat.eval_architecture(), bundle.val, device,
                                             autocast=strat.autocast)
                record = _record_epoch(run, running, val_loss, val_acc, time.perf_counter() - epoch_start)
                history.epochs.append(record)
                run.epoch, position, running = epoch + 1, 0, {"count": 0}
                if out:
                    _save_checkpoint(out, run, position, running)
                    save_genotype(strat.genotype(), os.path.join(out, "genotype.json"))
                for cb in callbacks:
                    cb.on_epoch_end(run, record)
    except _StopRequested:
        run.interrupted = True
        if out:  # between steps: the state is whole, so resuming continues exactly here
            _save_checkpoint(out, run, position, running)
    except KeyboardInterrupt:
        # A second Ctrl-C mid-step: the state may hold half a step, so keep the last good checkpoint.
        run.interrupted = True

    result = SearchResult(strat.genotype(), history, strat, supernet, run.interrupted, out)
    if out:
        save_genotype(result.genotype, os.path.join(out, "genotype.json"))
        history.save(os.path.join(out, "history.json"))
    for cb in callbacks:
        cb.on_search_end(run, result)
    return result

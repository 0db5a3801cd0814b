"""One search loop for every strategy on every search space.

``search("darts", data="digits", epochs=4)`` builds the search space and a
`SearchContext` (data streams over the two halves of the training split, as
DARTS does, and over the whole of it), lets the strategy set itself up from
it, runs its steps epoch by epoch, asks it to validate at the end of each
epoch, calls the callbacks (progress bar, log, dashboard), checkpoints into
`out` and returns a `SearchResult` with the derived architecture and the
recorded history. The loop knows nothing of any particular strategy or space.

A run stopped by an interrupt (Ctrl-C, JupyterLab's stop button) writes a
checkpoint and returns what it has; the same call with the same `out` resumes
and ends exactly where an uninterrupted run would (on the CPU; GPU kernels
need not be bit-for-bit deterministic). A loss or a distribution that turns
NaN or infinite stops the search with a `SearchDiverged` error that says
where, and the last good checkpoint stays.
"""
from __future__ import annotations

import difflib
import inspect
import json
import math
import numbers
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .bench import for_space, load as load_benchmark
from .budgets import budget_settings
from .callbacks import Callback, ProgressBar
from .checkpoint import (CheckpointMismatchError, atomic_write, config_difference, rng_state, set_rng_state)
from .context import SearchContext
from .data import Streams, load_dataset
from .device import Precision, choose_device, default_threads, threads as torch_threads
from .history import History
from .spaces import ARCHITECTURE_FILE, get_space, save_architecture, space_name, space_options
from .strategies import get_strategy
from .training import seed_everything

__all__ = ["search", "SearchResult", "SearchRun", "Callback", "History", "choose_device", "CheckpointMismatchError",
           "SearchDiverged", "search_options"]


class SearchDiverged(RuntimeError):
    """A loss, metric or distribution became NaN or infinite; the message says
    where, and the last good checkpoint (if any) is kept."""


# ---------------------------------------------------------------------------
# What a run returns and what callbacks see
# ---------------------------------------------------------------------------

@dataclass
class SearchResult:
    """The architecture a search derived, its recorded history, the strategy
    (its state: alpha, the supernet...), the space, and whether it was stopped."""

    architecture: object
    history: History
    strategy: object = None
    space: object = None
    interrupted: bool = False
    out: str | None = None
    error: str | None = None  # why it stopped, if it diverged

    @property
    def metrics(self) -> dict:
        """The last finished epoch's record (empty before the first)."""
        return self.history.epochs[-1] if self.history.epochs else {}

    @property
    def supernet_val_acc(self):
        """Validation accuracy of the shared weights under the strategy's mixture (not a retrained network's)."""
        return self.metrics.get("supernet_val_acc")

    @property
    def oneshot_val_acc(self):
        """Validation accuracy of the derived architecture run alone on the shared weights (not retrained)."""
        return self.metrics.get("oneshot_val_acc")

    @property
    def true_acc(self):
        """The derived architecture's accuracy in the benchmark table, if the search had one."""
        return self.metrics.get("true_acc")

    def __repr__(self):
        meta = self.history.meta
        config = meta.get("config", {})
        steps = self.history.steps[-1]["step"] if self.history.steps else 0
        seconds = sum(r.get("seconds", 0.0) for r in self.history.epochs)
        where = config.get("data") or config.get("benchmark")
        head = (f"SearchResult({config.get('strategy')} on {where}, {meta.get('space_title', config.get('space'))}, "
                f"{len(self.history.epochs)}/{config.get('epochs')} epochs, {steps} steps, {seconds:.0f} s"
                f"{', stopped' if self.interrupted else ''})")
        lines = [head, f"  architecture: {self.architecture}"]
        r = self.metrics
        names = {"supernet_val_acc": "supernet val acc (mixture, shared weights)",
                 "oneshot_val_acc": "one-shot val acc (derived architecture, shared weights)",
                 "true_acc": f"true accuracy ({meta.get('benchmark', {}).get('name', 'table')})"}
        shown = [f"{names.get(k, k)}: {r[k]:.4f}" for k in (self.history.meta.get("headline"), *names)
                 if k and isinstance(r.get(k), float)]
        lines += [f"  {s}" for s in dict.fromkeys(shown)]
        if self.out:
            lines.append(f"  saved in {self.out}")
        return "\n".join(lines)


@dataclass
class SearchRun:
    """The live state callbacks see."""

    config: dict
    strategy: object
    context: SearchContext
    history: History
    steps_per_epoch: int
    total_steps: int
    epoch: int = 0
    global_step: int = 0
    started: float = field(default_factory=time.perf_counter)
    steps_this_session: int = 0
    interrupted: bool = False

    @property
    def device(self):
        return self.context.device

    @property
    def steps_per_second(self):
        elapsed = time.perf_counter() - self.started
        return self.steps_this_session / elapsed if elapsed > 0 else 0.0

    @property
    def seconds_left(self):
        rate = self.steps_per_second
        return (self.total_steps - self.global_step) / rate if rate > 0 else None


# ---------------------------------------------------------------------------
# Options: which belong to the space, which to the strategy
# ---------------------------------------------------------------------------

def search_options(strategy="darts", space="darts") -> dict:
    """Every option `search` takes for `strategy` on `space`, grouped:
    ``{"search": [...], "space": {name: default}, "strategy": {name: default}}``."""
    return {"search": _loop_options(), "space": space_options(space), "strategy": get_strategy(strategy).options()}


def _loop_options() -> list:
    """The search's own keyword arguments, read from its signature so the list cannot drift."""
    return [p.name for p in inspect.signature(search).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "strategy"]


def _split_options(cls, space_key, options, space_given):
    known_space = space_options(space_key) if not space_given else {}
    known_strategy = cls.options()
    space_opts = {k: v for k, v in options.items() if k in known_space}
    strategy_opts = {k: v for k, v in options.items() if k in known_strategy}
    unknown = [k for k in options if k not in known_space and k not in known_strategy]
    if unknown:
        everything = _loop_options() + list(known_space) + list(known_strategy)
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, everything, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        where = "" if not space_given else " (the space was given as an object: set its options there)"
        raise TypeError(
            f"search() got unknown option(s) {', '.join(hints)}{where}. Options: search {_loop_options()}; "
            f"space {space_key!r} {list(known_space) if known_space else '(given)'}; "
            f"strategy {cls.name!r} {list(known_strategy)}")
    return space_opts, strategy_opts


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------
# Checkpoints, stopping, divergence
# ---------------------------------------------------------------------------

# Checkpoints of other formats (older nasedu versions) are refused with a clear message.
CHECKPOINT_FORMAT = 2


def _save_checkpoint(out, run, position, running, streams):
    state = {"format": CHECKPOINT_FORMAT, "config": run.config, "epoch": run.epoch, "batch": position,
             "global_step": run.global_step, "running": running, "strategy": run.strategy.state_dict(),
             "rng": rng_state(), "streams": streams.state_dict() if streams is not None else None,
             "history": run.history.to_dict()}
    atomic_write(os.path.join(out, "checkpoint.pt"), lambda f: torch.save(state, f))
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


def _check_finite(where, values: dict):
    bad = [k for k, v in values.items() if isinstance(v, numbers.Real) and not math.isfinite(v)]
    if bad:
        raise SearchDiverged(f"{where}: {', '.join(f'{k} = {values[k]}' for k in bad)}.")


def _tables(strategy, where):
    tables = strategy.distributions()
    for name, t in tables.items():
        P = t.probabilities
        if not np.all(np.isfinite(P)):
            _check_finite(where, {f"distribution {name!r}": float(P[~np.isfinite(P)][0])})
    return tables


def _diverged(error, out, history):
    """`error` with what was kept and what to do."""
    if out and os.path.exists(os.path.join(out, "checkpoint.pt")):
        kept = (f"The last good checkpoint (after epoch {len(history.epochs)}) is kept in {out}; running the search "
                "again resumes from it.")
    elif out:
        kept = f"No epoch had finished, so {out} holds no checkpoint."
    else:
        kept = "Pass out= to keep a checkpoint of every finished epoch."
    return SearchDiverged(f"{error} The search stopped. {kept} A smaller learning rate usually helps.")


def _snapshot(run, tables, record_layouts):
    snap = {"step": run.global_step, "epoch": run.epoch,
            "distributions": {k: t.probabilities.tolist() for k, t in tables.items()},
            "architecture": run.strategy.architecture().to_data()}
    layout = {k: t.layout() for k, t in tables.items()}
    if layout != record_layouts[-1]:  # a controller whose decisions grew: the dashboard re-reads the labels
        snap["layout"] = layout
        record_layouts.append(layout)
    return snap


def _epoch_record(run, running, validation, tables, seconds):
    n = max(running["count"], 1)
    record = {"epoch": run.epoch, "step": run.global_step, "seconds": seconds}
    record.update({k: v / n for k, v in running.items() if k != "count"})
    record.update(validation)
    architecture = run.strategy.architecture()
    true_acc = run.context.true_accuracy(architecture)
    if true_acc is not None:
        record["true_acc"] = true_acc
    record["architecture"] = architecture.to_data()
    record["distributions"] = {k: t.probabilities.tolist() for k, t in tables.items()}
    return record


# ---------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------

def search(strategy="darts", data=None, *, space="darts", budget=None, epochs=None, batch_size=None, seed=0,
           device=None, amp=None, out=None, resume=True, callbacks=(), progress=True, record_every=None,
           num_workers=0, threads="auto", benchmark=None, fast=True, **options) -> SearchResult:
    """Run an architecture search and return a `SearchResult`.

    - `strategy`: a name (``"darts"``, ``"random"``) or a `Strategy` subclass;
    - `space`: ``"darts"`` (the DARTS cell), ``"nb201"``, ``"macro"``, or a `SearchSpace`;
    - `data`: a data set name (``"digits"``, ``"cifar10"``, ...); `benchmark`: a
      table name (``"nas-bench-macro"``) for strategies that need only rewards,
      searched without data;
    - `budget` ("quick" or "full", see `nasedu.budget`) fills in `data`,
      `epochs`, `batch_size` and the space's and strategy's options that were
      not given, never overriding what was;
    - other keyword `options` go to the space (e.g. ``C``, ``layers``, ``steps``)
      or to the strategy (e.g. ``alpha_lr``); `search_options` lists them;
    - `threads`: torch's CPU threads while searching ("auto": see
      `nasedu.device.default_threads`; None leaves torch's setting alone);
    - `fast`: run the supernet on its fast path (False: the readable cells of
      notebook 04; the same parameters, so a checkpoint resumes under either).

    With `out`, the run checkpoints there every epoch (and when interrupted),
    writes ``architecture.json`` and ``history.json``, and resumes from `out` if
    a checkpoint of the same search is there.
    """
    cls = get_strategy(strategy)
    space_given = not isinstance(space, (str, dict))
    key = space.name if space_given else space_name(space.get("name", "darts") if isinstance(space, dict) else space)
    space_opts, strategy_opts = _split_options(cls, key, options, space_given)
    if benchmark is not None and data is not None:
        raise ValueError("give data= (train networks on a data set) or benchmark= (look rewards up in a table), "
                         "not both")
    settings = budget_settings(budget, cls.name, key, data, epochs=epochs)
    epochs = epochs or settings["epochs"]
    batch_size = batch_size or settings["batch_size"]
    space = get_space(space, **({} if space_given else {**settings["space"], **space_opts}))
    strategy_opts = {**settings["strategy"], **strategy_opts}
    device = choose_device(device)
    precision = Precision(device, amp)

    bundle, streams, table = None, None, None
    if benchmark is not None:
        table = load_benchmark(benchmark)
        if type(table.space) is not type(space):
            raise ValueError(f"the {table.name} table holds architectures of the {table.space.name!r} space, "
                             f"not {space.name!r}: pass space={table.space.name!r}")
        data_name = None
    else:
        bundle = load_dataset(data or settings["data"])  # one fixed split: a table's test set stays unseen
        streams = Streams(bundle, batch_size, seed, device, num_workers)
        table = for_space(space, bundle.name)
        data_name = bundle.name

    n_threads = default_threads(device) if threads == "auto" else threads
    with torch_threads(n_threads):
        seed_everything(seed)
        context = SearchContext(space=space, device=device, epochs=epochs, seed=seed, data=bundle, streams=streams,
                                batch_size=batch_size, precision=precision, benchmark=table, num_workers=num_workers,
                                fast=fast)
        strat = cls(context, **strategy_opts)
        steps_per_epoch = strat.steps_per_epoch()
        hyperparameters = _jsonable({**cls.options(), **strategy_opts})
        config = {"strategy": cls.name, "space": space.config(), "data": data_name,
                  "benchmark": table.name if benchmark is not None else None, "epochs": epochs,
                  "batch_size": batch_size, "seed": seed, "hyperparameters": hyperparameters}
        return _run(config, strat, context, streams, steps_per_epoch, out, resume, callbacks, progress, record_every)


def _run(config, strat, context, streams, steps_per_epoch, out, resume, callbacks, progress, record_every):
    epochs = config["epochs"]
    total_steps = epochs * steps_per_epoch
    record_every = record_every or max(1, total_steps // 300)
    tables = _tables(strat, "at the start")
    layouts = [{k: t.layout() for k, t in tables.items()}]
    meta = {"config": config, "device": str(context.device), "space": context.space.config(),
            "space_title": context.space.title, "strategy": strat.name, "paper": strat.paper, "tables": layouts[0],
            "plots": strat.plots, "headline": strat.headline, "threads": torch.get_num_threads()}
    if context.benchmark is not None:
        meta["benchmark"] = {"name": context.benchmark.name, "description": context.benchmark.description}
    history = History(meta=meta)
    run = SearchRun(config, strat, context, history, steps_per_epoch, total_steps)
    start_epoch, position, running = 0, 0, {"count": 0}

    if out:
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "checkpoint.pt")
        if resume and os.path.exists(path):
            ckpt = torch.load(path, map_location=context.device, weights_only=False)
            if ckpt.get("format") != CHECKPOINT_FORMAT:
                raise CheckpointMismatchError(out, [
                    f"it was written by another version of nasedu (checkpoint format {ckpt.get('format', 1)}, "
                    f"this version reads {CHECKPOINT_FORMAT})"])
            diff = config_difference(ckpt["config"], config,
                                     defaults={"hyperparameters": _jsonable(type(strat).options())})
            if diff:
                raise CheckpointMismatchError(out, diff)
            strat.load_state_dict(ckpt["strategy"])
            if streams is not None:
                streams.load_state_dict(ckpt["streams"])
            set_rng_state(ckpt["rng"])
            run.history = history = History.from_dict(ckpt["history"])
            run.epoch, run.global_step = ckpt["epoch"], ckpt["global_step"]
            start_epoch, position, running = ckpt["epoch"], ckpt["batch"], ckpt["running"]
            layouts = [history.meta["tables"]] + [s["layout"] for s in history.snapshots if "layout" in s]

    callbacks = list(callbacks)
    if progress:
        callbacks.insert(0, ProgressBar())
    for cb in callbacks:
        cb.on_search_start(run)

    stop, diverged = _StopAtStepBoundary(), None
    try:
        with stop:
            for epoch in range(start_epoch, epochs):
                run.epoch = epoch
                epoch_start = time.perf_counter()
                while position < steps_per_epoch:
                    metrics = strat.step()
                    position += 1
                    run.global_step += 1
                    run.steps_this_session += 1
                    where = f"step {run.global_step} (epoch {epoch + 1})"
                    _check_finite(where, metrics)
                    running["count"] += 1
                    for k, v in metrics.items():
                        if k != "lr" and isinstance(v, numbers.Real) and not isinstance(v, bool):
                            running[k] = running.get(k, 0.0) + float(v)
                    record = {"step": run.global_step, "epoch": epoch, **metrics}
                    history.steps.append(record)
                    if run.global_step % record_every == 0:
                        history.snapshots.append(_snapshot(run, _tables(strat, where), layouts))
                    for cb in callbacks:
                        cb.on_step_end(run, record)
                    if stop.requested:
                        raise _StopRequested
                with warnings.catch_warnings():
                    if run.steps_this_session == 0:
                        # Resumed after an epoch's last step: the schedule steps before this process has
                        # stepped an optimizer. That order is right here; torch's check cannot know.
                        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
                    strat.end_epoch(epoch)
                validation = strat.validate()
                where = f"the end of epoch {epoch + 1}"
                _check_finite(where, validation)
                record = _epoch_record(run, running, validation, _tables(strat, where),
                                       time.perf_counter() - epoch_start)
                history.epochs.append(record)
                run.epoch, position, running = epoch + 1, 0, {"count": 0}
                if out:
                    _save_checkpoint(out, run, position, running, streams)
                    save_architecture(context.space, context.space.from_data(record["architecture"]),
                                      os.path.join(out, ARCHITECTURE_FILE))
                for cb in callbacks:
                    cb.on_epoch_end(run, record)
    except _StopRequested:
        run.interrupted = True
        if out:  # between steps: the state is whole, so resuming continues exactly here
            _save_checkpoint(out, run, position, running, streams)
    except KeyboardInterrupt:
        # A second Ctrl-C mid-step: the state may hold half a step, so keep the last good checkpoint.
        run.interrupted = True
    except SearchDiverged as error:
        run.interrupted, diverged = True, _diverged(error, out, history)

    if diverged is None:
        result = SearchResult(strat.architecture(), history, strat, context.space, run.interrupted, out)
        if out:
            save_architecture(context.space, result.architecture, os.path.join(out, ARCHITECTURE_FILE))
            history.save(os.path.join(out, "history.json"))
    else:  # the state holds NaNs: keep the files of the last good epoch as they are
        last = history.epochs[-1]["architecture"] if history.epochs else None
        result = SearchResult(None if last is None else context.space.from_data(last), history, strat,
                              context.space, True, out, error=str(diverged))
    for cb in callbacks:
        cb.on_search_end(run, result)
    if diverged is not None:
        raise diverged
    return result

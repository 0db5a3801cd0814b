"""Many independent trainings at once: a local process pool by default, a Ray
cluster when given its address.

A ground-truth table, NAS-RL's children and a grid of seeds are many small
trainings that share nothing. `run_tasks(fn, tasks)` runs ``fn(task)`` for
every task and yields ``(task, result)`` as each finishes, in completion
order, so a caller can save each result the moment it exists (and lose at
most the tasks in flight when it is killed). Each worker pins torch to one
thread: tiny networks run fastest that way and two threads per worker on a
busy machine slow everything down (see `benchmarks/threads.py`).

    >>> for task, result in run_tasks(train_one, tasks, workers=2): ...
    >>> run_tasks(train_one, tasks, address="ray://head:10001")   # or "auto", or "local"

Local workers are started with ``spawn`` (a forked torch process can hang
on locks its parent's threads held), so `fn` must be importable: a function
of a module, not one defined in a notebook, and a script that calls
`run_tasks` needs the usual ``if __name__ == "__main__":`` guard.

Ray (``pip install "nasedu[ray]"``) is the distributed engine for training
many independent networks; `address` is passed to ``ray.init`` (``"local"``
starts a Ray instance on this machine, which the tests use).

Both stay up between calls: starting a pool of spawned workers (each imports
torch) or a Ray instance takes seconds, and NAS-RL calls `run_tasks` once per
controller update. One pool per worker count is kept, and the Ray that
`run_tasks` started, until `shutdown()` or the end of the process. A pool whose
worker died is replaced at the next call.
"""
from __future__ import annotations

import atexit
import concurrent.futures as cf
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterable, Iterator

__all__ = ["run_tasks", "default_workers", "shutdown", "RayUnavailableError"]


class RayUnavailableError(ImportError):
    """A Ray address was given but Ray is not installed."""


def default_workers() -> int:
    """One worker per core (``$NASEDU_WORKERS`` overrides)."""
    return int(os.environ.get("NASEDU_WORKERS") or os.cpu_count() or 1)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _init_pool_worker() -> None:
    # Ctrl-C (or a kernel's shutdown, which signals the whole process group) is for the caller, which
    # cancels what is pending; a worker that took it would die mid-task and print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker()


def _call(fn, task):
    _init_worker()
    return fn(task)


def _call_here(fn, task):
    from .device import threads

    with threads(1):  # this process: one thread while it runs, then the caller's setting again
        return fn(task)


def run_tasks(fn: Callable, tasks: Iterable, *, workers: int | None = None, address: str | None = None,
              progress: bool | str = True, total: int | None = None) -> Iterator[tuple]:
    """Run ``fn(task)`` for every task in parallel; yield ``(task, result)``
    as each finishes. `fn` and the tasks must pickle (a module-level function
    and plain data). ``workers=1`` runs in this process, in order. `progress`
    shows a tqdm bar with the time left (a string names it)."""
    tasks = list(tasks)
    if address is not None:
        _require_ray(address)  # now, not at the first result
    return _results(fn, tasks, workers, address, progress, total)


def _require_ray(address):
    try:
        import ray  # noqa: F401
    except ImportError as error:
        raise RayUnavailableError(f"address={address!r} asks for Ray, which is not installed here; "
                                  f"pip install 'nasedu[ray]' (or leave address out to use local processes)") \
            from error


def _results(fn, tasks, workers, address, progress, total):
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or len(tasks), desc=progress if isinstance(progress, str) else "tasks",
                   unit="task", dynamic_ncols=True, smoothing=0.05)
    try:
        if address is not None:
            results = _ray(fn, tasks, address, workers)
        elif (workers or default_workers()) <= 1 or len(tasks) <= 1:
            results = ((t, _call_here(fn, t)) for t in tasks)
        else:
            results = _pool(fn, tasks, workers or default_workers())
        for pair in results:
            if bar is not None:
                bar.update(1)
            yield pair
    finally:
        if bar is not None:
            bar.close()


_POOLS: dict[int, cf.ProcessPoolExecutor] = {}  # worker count -> the pool kept for the next call
_RAY_STARTED_HERE = False


def _executor(workers: int) -> cf.ProcessPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None or getattr(pool, "_broken", False):
        # spawn, not fork: a forked torch process can hang on locks held by the parent's threads.
        # Spawned workers start on demand, so a small call does not start them all.
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_pool_worker)
        _POOLS[workers] = pool
    return pool


def shutdown() -> None:
    """Stop the worker processes kept between calls, and the Ray instance `run_tasks` started."""
    global _RAY_STARTED_HERE
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=True, cancel_futures=True)
    if _RAY_STARTED_HERE:
        import ray

        ray.shutdown()
        _RAY_STARTED_HERE = False


atexit.register(shutdown)


def _pool(fn, tasks, workers) -> Iterator[tuple]:
    pool = _executor(workers)  # the kept pool, or a fresh one if a worker of the kept one died
    pending = {pool.submit(fn, t): t for t in tasks}
    try:
        for future in cf.as_completed(pending):
            yield pending[future], future.result()
    finally:
        for future in pending:
            future.cancel()  # a caller that stops early leaves the pool free for the next call


def _ray(fn, tasks, address, workers) -> Iterator[tuple]:
    import ray

    global _RAY_STARTED_HERE
    if not ray.is_initialized():
        kwargs = {"num_cpus": workers} if address == "local" and workers else {}
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, **kwargs)
        _RAY_STARTED_HERE = True  # kept for the next call; `shutdown()` or the end of the process stops it
    remote = ray.remote(num_cpus=1)(_call)
    fn_ref = ray.put(fn)
    pending = {remote.remote(fn_ref, t): t for t in tasks}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)

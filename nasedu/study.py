"""The study of issue 13: does the optimiser of alpha matter, with DARTS and
with its regularised variants, for collapse and for what is found?

DARTS fixes SGD for the weights and Adam for alpha. `collapse_study` runs a
grid, variant (``"darts"``, ``"sdarts_rs"``, ``"sdarts_adv"``,
``"darts_minus"``, ``"beta_darts"``) x alpha optimiser (``"adam"``,
``"momentum"``, ``"rmsprop"``, ``"sgd"``: `nasedu.strategies.darts`, one
setting each for every variant) x seeds, as independent searches through
`nasedu.compare.compare` (local processes, or Ray given an address), each
with the collapse diagnostics on (`nasedu.diagnostics`), and returns one
plain record per search:

    {"variant", "alpha_optimizer", "seed", "architecture", "skip_count",
     "param_free_count", "hessian_eigenvalue", "discretisation_gap",
     "supernet_val_acc", "oneshot_val_acc", "true_acc", "seconds"}

read off the last epoch (``true_acc`` from the space's table: NAS-Bench-201
on digits at the quick budget; None without one); with ``histories=True``
each record also holds the search's whole `History` under ``"history"``
(every epoch's softmax(alpha) and metrics, every step's schedules: the
curves behind the last epoch's numbers). `summarise` groups them
per (variant, optimiser) with means and standard deviations over seeds.
With `out`, every search checkpoints in its own folder and calling the study
again resumes (a finished search returns at once).

    >>> from nasedu.study import collapse_study, summarise
    >>> records = collapse_study(["darts", "darts_minus"], ["adam", "sgd"], seeds=[0, 1], out="study")
    >>> for row in summarise(records): print(row)
"""
from __future__ import annotations

import numpy as np

from .compare import compare, search_seconds

__all__ = ["collapse_study", "summarise", "VARIANTS", "METRICS"]

VARIANTS = ("darts", "sdarts_rs", "sdarts_adv", "darts_minus", "beta_darts")
METRICS = ("skip_count", "param_free_count", "hessian_eigenvalue", "discretisation_gap", "supernet_val_acc",
           "oneshot_val_acc", "true_acc")


def collapse_study(variants=("darts", "sdarts_rs", "darts_minus"), optimizers=("adam", "momentum", "rmsprop", "sgd"),
                   seeds=(0, 1, 2), *, space="nb201", data="digits", budget="quick", eigenvalue_every=2,
                   workers=None, address=None, out=None, progress=True, histories=False, **options) -> list[dict]:
    """Search every (variant, alpha optimiser, seed) with the collapse
    diagnostics on, the eigenvalue every `eigenvalue_every` epochs and at the
    last; other `options` go to every search (e.g. ``epochs=4``). Returns the
    records described in the module docstring, in grid order (with each
    search's `History` under ``"history"`` if `histories`)."""
    grid = {f"{variant} {optimizer}": (variant, {"alpha_optimizer": optimizer, "diagnostics": True,
                                                 "eigenvalue_every": eigenvalue_every})
            for variant in variants for optimizer in optimizers}
    comparison = compare(grid, seeds, workers=workers, address=address, progress=progress, out=out, space=space,
                         data=data, budget=budget, **options)
    records = []
    for label, (variant, settings) in grid.items():
        for seed, result in comparison.results[label].items():
            last = result.metrics
            records.append({"variant": variant, "alpha_optimizer": settings["alpha_optimizer"], "seed": seed,
                            "architecture": None if result.architecture is None else result.architecture.to_data(),
                            **{key: last.get(key) for key in METRICS},
                            "seconds": search_seconds(result)})
            if histories:
                records[-1]["history"] = result.history
    return records


def summarise(records: list[dict]) -> list[dict]:
    """Per (variant, alpha optimiser): the number of seeds, and the mean and
    standard deviation over seeds of every metric that all its seeds have."""
    groups = {}
    for r in records:
        groups.setdefault((r["variant"], r["alpha_optimizer"]), []).append(r)
    rows = []
    for (variant, optimizer), group in groups.items():
        row = {"variant": variant, "alpha_optimizer": optimizer, "seeds": len(group)}
        for key in (*METRICS, "seconds"):
            values = [r[key] for r in group]
            if all(v is not None for v in values):
                row[f"{key}_mean"], row[f"{key}_std"] = float(np.mean(values)), float(np.std(values))
        rows.append(row)
    return rows

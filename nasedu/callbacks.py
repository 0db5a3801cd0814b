"""Callbacks of `nasedu.search`: the hooks, a progress bar and a per-epoch log
line. (The live dashboard is `nasedu.viz.Dashboard`, a callback too.)"""
from __future__ import annotations

import numbers

__all__ = ["Callback", "ProgressBar", "PrintLog", "format_metrics"]


class Callback:
    """Hooks the search loop calls; override the ones you need. `run` is the
    live `nasedu.search.SearchRun`; `record` a step's or an epoch's dict."""

    def on_search_start(self, run): ...
    def on_step_end(self, run, record): ...
    def on_epoch_end(self, run, record): ...
    def on_search_end(self, run, result): ...


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


SKIP = {"epoch", "step", "seconds"}


def format_metrics(record: dict) -> str:
    """The numeric entries of `record`, ``X_loss`` and ``X_acc`` pairs grouped
    under X: ``"train loss 0.812 acc 0.734  arch loss 0.9 acc 0.70  lr 0.025"``."""
    numeric = {k: v for k, v in record.items()
               if k not in SKIP and isinstance(v, numbers.Real) and not isinstance(v, bool)}
    parts, done = [], set()
    for key in numeric:
        if key in done:
            continue
        stem = key.rsplit("_", 1)[0] if key.endswith(("_loss", "_acc")) else None
        if stem:
            pair = [f"{suffix} {_fmt(numeric[f'{stem}_{suffix}'])}" for suffix in ("loss", "acc")
                    if f"{stem}_{suffix}" in numeric]
            done.update(f"{stem}_{suffix}" for suffix in ("loss", "acc"))
            parts.append(f"{stem.replace('_', ' ')} {' '.join(pair)}")
        else:
            done.add(key)
            parts.append(f"{key} {_fmt(numeric[key], '.4g')}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """A tqdm bar over all steps (a widget in notebooks, text in a terminal)."""

    def on_search_start(self, run):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.total_steps, initial=run.global_step, desc=run.config["strategy"],
                        unit="step", dynamic_ncols=True, leave=True)

    def on_step_end(self, run, record):
        self.bar.update(1)
        if run.global_step % 5 == 0:
            first = next((k for k in record if k not in SKIP and isinstance(record[k], float)), None)
            if first is not None:
                self.bar.set_postfix({first: _fmt(record[first]), "epoch": record["epoch"]}, refresh=False)

    def on_epoch_end(self, run, record):
        key = run.strategy.headline
        self.bar.set_postfix({key: _fmt(record.get(key)), "epoch": record["epoch"]})

    def on_search_end(self, run, result):
        if run.interrupted:
            self.bar.set_description(f"{run.config['strategy']} (stopped)")
        self.bar.close()


class PrintLog(Callback):
    """One line per epoch, and the final architecture (what the CLI prints)."""

    def __init__(self, print=print):
        self.print = print

    def on_search_start(self, run):
        if run.global_step:
            self.print(f"resuming at epoch {run.epoch}, step {run.global_step} of {run.total_steps}")

    def on_epoch_end(self, run, r):
        self.print(f"epoch {r['epoch'] + 1}/{run.config['epochs']}  {format_metrics(r)}  ({r['seconds']:.1f} s)")

    def on_search_end(self, run, result):
        if result.interrupted:
            self.print("stopped: the checkpoint is saved; run the same command again to resume")
        self.print(f"architecture: {result.architecture}")

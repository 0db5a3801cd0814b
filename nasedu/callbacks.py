"""Callbacks for `nasedu.search`: a progress bar and a per-epoch log line.
(The live dashboard is `nasedu.viz.Dashboard`.)"""
from __future__ import annotations

from .search import Callback

__all__ = ["ProgressBar", "PrintLog"]


def _fmt(x, spec=".3f"):
    return "-" if x is None else format(x, spec)


class ProgressBar(Callback):
    """A tqdm bar over all steps (a widget in notebooks, text in a terminal)."""

    def on_search_start(self, run):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=run.total_steps, initial=run.global_step, desc=run.config["strategy"],
                        unit="step", dynamic_ncols=True, leave=True)

    def on_step_end(self, run, record):
        self.bar.update(1)
        if run.global_step % 5 == 0:
            self.bar.set_postfix(loss=_fmt(record.get("train_loss")), epoch=record["epoch"], refresh=False)

    def on_epoch_end(self, run, record):
        self.bar.set_postfix(val_acc=_fmt(record["val_acc"]), epoch=record["epoch"])

    def on_search_end(self, run, result):
        if run.interrupted:
            self.bar.set_description(f"{run.config['strategy']} (stopped)")
        self.bar.close()


class PrintLog(Callback):
    """One line per epoch, and the final genotype (what the CLI prints)."""

    def __init__(self, print=print):
        self.print = print

    def on_search_start(self, run):
        if run.global_step:
            self.print(f"resuming at epoch {run.epoch}, step {run.global_step} of {run.total_steps}")

    def on_epoch_end(self, run, r):
        self.print(f"epoch {r['epoch'] + 1}/{run.config['epochs']}  train loss {_fmt(r['train_loss'])} "
                   f"acc {_fmt(r['train_acc'])}  arch loss {_fmt(r['arch_loss'])}  "
                   f"val loss {_fmt(r['val_loss'])} acc {_fmt(r['val_acc'])}  ({r['seconds']:.1f} s)")

    def on_search_end(self, run, result):
        if result.interrupted:
            self.print("stopped: the checkpoint is saved; run the same command again to resume")
        self.print(f"genotype: {result.genotype}")

"""Helpers shared by several test modules (pytest puts tests/ on sys.path)."""
from __future__ import annotations

import os
import signal

import torch

from nasedu.search import Callback


class InterruptAt(Callback):
    """Presses Ctrl-C (a real SIGINT) after global step `step`."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, run, record):
        if run.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def _alphas(result):
    return {k: a.detach().clone() for k, a in result.strategy.alpha.items()}


def assert_same_run(a, b):
    """Two results of the same search: equal architecture parameters, weights,
    architecture and recorded numbers."""
    for k, v in _alphas(a).items():
        assert torch.equal(v, _alphas(b)[k]), k
    assert a.architecture == b.architecture
    assert [r["train_loss"] for r in a.history.steps] == [r["train_loss"] for r in b.history.steps]
    for key in ("supernet_val_acc", "oneshot_val_acc"):
        assert [r[key] for r in a.history.epochs] == [r[key] for r in b.history.epochs]
    w_a, w_b = a.strategy.supernet.state_dict(), b.strategy.supernet.state_dict()
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)


def process_id(_task):
    """The process a task ran in (module level, so a spawned worker can unpickle it)."""
    return os.getpid()

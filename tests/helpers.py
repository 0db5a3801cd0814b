"""Helpers shared by several test modules (pytest puts tests/ on sys.path)."""
from __future__ import annotations

import os
import signal

from nasedu.search import Callback


class InterruptAt(Callback):
    """Presses Ctrl-C (a real SIGINT) after global step `step`."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, run, record):
        if run.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)

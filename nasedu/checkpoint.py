"""Saving a search so that it can resume exactly: atomic files, random
number generator states, and refusing to resume a different search."""
from __future__ import annotations

import os
import random
import tempfile

import numpy as np
import torch

__all__ = ["atomic_write", "rng_state", "set_rng_state", "config_difference", "CheckpointMismatchError"]


class CheckpointMismatchError(ValueError):
    """`out` holds a checkpoint of a different search; ``differences`` lists
    the settings that differ (``"seed: 0 -> 1"``), ``problem`` says so in a
    sentence without the advice, for callers (the CLI) that advise otherwise."""

    def __init__(self, out, differences):
        self.out, self.differences = out, list(differences)
        self.problem = f"{out} holds a checkpoint of a different search ({'; '.join(self.differences)})."
        super().__init__(f"{self.problem} Pass another out= folder, or resume=False to start over there.")


def atomic_write(path, write):
    """Write through a temporary file and rename it, so a crash never leaves a
    half-written file where a good one was. `write(f)` gets a binary file."""
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


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def config_difference(saved: dict, wanted: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """The settings that differ, one ``"key: saved -> wanted"`` line each
    (nested dicts by dotted key, so a changed hyper-parameter is named).
    A key missing from `saved` whose wanted value is its entry in `defaults`
    (same nesting) is no difference: the checkpoint predates that option, and
    an option added later defaults to the behaviour before it."""
    lines, defaults = [], defaults or {}
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += config_difference(a, b, f"{prefix}{key}.", defaults.get(key))
        elif key not in saved and key in defaults and defaults[key] == b:
            continue
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines

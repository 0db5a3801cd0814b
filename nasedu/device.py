"""Where and how a search computes: the device, the precision, the threads.

- `choose_device`: cuda, then mps, then cpu (or what ``$NASEDU_DEVICE`` says).
- `Precision`: bfloat16 autocast on CUDA (no loss scaling needed, so one code
  path serves every optimizer), and a way back to float32 for the few places
  that need it (finite differences of a hypergradient).
- `channels_last`: the memory format CUDA convolutions prefer.
- `threads`: how many CPU threads torch uses while nasedu works. Small
  networks gain nothing from a second thread and lose a lot when the other
  core is busy (`benchmarks/threads.py` measures it); see `default_threads`.
"""
from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["choose_device", "Precision", "channels_last", "default_threads", "threads"]


def choose_device(device=None) -> torch.device:
    """`device`, else ``$NASEDU_DEVICE``, else cuda, then mps, then cpu."""
    device = device or os.environ.get("NASEDU_DEVICE")
    if device:
        try:
            return torch.device(device)
        except RuntimeError:
            raise ValueError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:1' or 'mps'") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class Precision:
    """Automatic mixed precision: bfloat16 autocast on CUDA when `amp`, else
    float32 everywhere. ``with precision.autocast():`` wraps a forward pass;
    ``with precision.float32():`` turns autocast off inside it."""

    def __init__(self, device, amp: bool | None = None):
        self.device = torch.device(device)
        self.amp = (self.device.type == "cuda") if amp is None else bool(amp) and self.device.type == "cuda"

    def autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def float32(self):
        """Finite differences and other small-difference arithmetic need full precision."""
        if self.amp:
            return torch.autocast("cuda", enabled=False)
        return contextlib.nullcontext()

    def __repr__(self):
        return f"Precision({'bfloat16 autocast' if self.amp else 'float32'} on {self.device})"


def channels_last(x, device):
    """`x` (a module or a 4-d tensor) in channels_last memory format on CUDA, unchanged elsewhere."""
    if torch.device(device).type != "cuda":
        return x
    if isinstance(x, torch.Tensor):
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    return x.to(memory_format=torch.channels_last)


def default_threads(device) -> int | None:
    """Threads for nasedu's work on `device`: ``$NASEDU_THREADS`` if set, else
    1 on the CPU, else None (leave torch's setting alone).

    Why 1 on the CPU: the quick budget's networks are small enough that a
    second thread saves little on an idle machine, and on a busy one (a
    browser beside the kernel, Binder's shared CPU) torch's threads wait for
    each other and a step can take ten times longer or more.
    `benchmarks/threads.py` measures both; the README gives the figures."""
    value = os.environ.get("NASEDU_THREADS", "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            raise ValueError(f"NASEDU_THREADS must be a whole number, got {value!r}") from None
        return n if n > 0 else None
    return 1 if torch.device(device).type == "cpu" else None


@contextlib.contextmanager
def threads(n: int | None):
    """Run the body with torch using `n` intra-op threads (None: unchanged),
    and restore the previous setting afterwards."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""What every search strategy provides to the search loop and the dashboard.

A strategy owns the architecture parameters of one paper (alpha, theta, a
controller) and that paper's update rule; the supernet it is given holds the
shared weights `w` and runs whatever architecture the strategy passes it.
"""
from __future__ import annotations

import contextlib

import torch

from ..genotypes import Genotype

__all__ = ["Strategy", "accuracy"]


def accuracy(logits, y) -> float:
    return (logits.argmax(dim=1) == y).float().mean().item()


class Strategy:
    """Base class: one search step, the architecture to evaluate, the per-edge
    probabilities to display, the derived genotype, and saving/restoring state.

    Subclasses set `name` and `paper`, and implement `step`,
    `eval_architecture`, `probabilities`, `genotype`, `state_dict` and
    `load_state_dict`.
    """

    name = "strategy"
    paper = ""

    def __init__(self, supernet, *, epochs: int, steps_per_epoch: int, device="cpu", amp: bool = False):
        self.supernet = supernet
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.device = torch.device(device)
        # bfloat16 needs no loss scaling, so one code path serves every optimizer here.
        self.amp = bool(amp) and self.device.type == "cuda"

    def autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, train_batch, arch_batch) -> dict:
        """One search step on a batch for `w` and a batch for the architecture.
        Returns metrics (e.g. ``train_loss``, ``train_acc``, ``arch_loss``)."""
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch (learning-rate schedules step here)."""

    def eval_architecture(self) -> dict:
        """The architecture the supernet is evaluated with on validation data."""
        raise NotImplementedError

    def probabilities(self) -> dict:
        """Per-edge operation probabilities ``{"normal": [E, O], "reduce": [E, O]}``."""
        raise NotImplementedError

    def genotype(self) -> Genotype:
        raise NotImplementedError

    def hyperparameters(self) -> dict:
        """The settings that define the run (compared when a search resumes)."""
        return {}

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

"""The two budgets every notebook and the CLI choose between.

- quick: the offline digits data, a small supernet, minutes on a laptop CPU.
- full: CIFAR-10 at the papers' search settings (DARTS Section 3.1.1: 8 cells,
  16 initial channels, batch 64, 50 epochs), for a GPU.

`budget()` picks one: ``$NASEDU_BUDGET`` ("quick"/"full"), else quick when
``$NASEDU_QUICK=1`` (CI sets it) or when there is no CUDA GPU.
"""
from __future__ import annotations

import os

import torch

__all__ = ["BUDGETS", "budget", "budget_settings"]

BUDGETS = {
    "quick": {
        "data": "digits", "C": 8, "layers": 5, "batch_size": 64, "epochs": 3,
        # Per-strategy changes from the paper's defaults that the quick budget
        # needs: with ~50 steps instead of ~20,000, alpha at the paper's
        # learning rate (3e-4) would barely leave its initial value.
        "strategies": {"darts": {"alpha_lr": 3e-2}},
    },
    "full": {
        "data": "cifar10", "C": 16, "layers": 8, "batch_size": 64, "epochs": 50,
        "strategies": {},
    },
}


def budget(name=None) -> str:
    """The budget to run: `name` if given, else chosen from the environment."""
    name = name or os.environ.get("NASEDU_BUDGET")
    if not name:
        if os.environ.get("NASEDU_QUICK", "").strip() not in ("", "0"):
            return "quick"
        return "full" if torch.cuda.is_available() else "quick"
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose 'quick' or 'full'")
    return name


def budget_settings(name=None, strategy=None) -> dict:
    """Settings of budget `name` (see `budget`), with the changes for `strategy`."""
    b = BUDGETS[budget(name)]
    out = {k: v for k, v in b.items() if k != "strategies"}
    out["strategy"] = dict(b["strategies"].get(strategy, {})) if strategy else {}
    return out

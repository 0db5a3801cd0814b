"""The two budgets every notebook and the command line choose between.

- quick: the offline digits data (enlarged to 16x16 for the DARTS cell), small
  networks, minutes on a laptop CPU.
- full: CIFAR-10 at the papers' search settings (DARTS Section 3.1.1: 8 cells,
  16 initial channels, batch 64, 50 epochs; NAS-Bench-201's C = 16, N = 5), for a GPU.

`budget()` picks one: the name given, else ``$NASEDU_BUDGET``, else quick
when ``$NASEDU_QUICK=1`` (CI sets it), else the budget whose data set is the
one asked for (``data="cifar10"`` gets the full budget's network, not the
quick one's, so it is never silently shrunk), else full with a CUDA GPU and
quick without. A budget fills in only the settings that were not given.
"""
from __future__ import annotations

import os

import torch

__all__ = ["BUDGETS", "budget", "budget_settings"]

# DARTS and the strategies that subclass it: one quick budget for them all.
DARTS_FAMILY = ("darts", "sge", "sdarts_rs", "sdarts_adv", "darts_minus", "beta_darts")

BUDGETS = {
    "quick": {
        "data": "digits", "batch_size": 64, "epochs": 3,
        # Skeletons scaled down for 8x8 digits on a CPU; the papers' sizes are under "full".
        # The NB201 supernet joins its stages as the nb201-digits table's networks do
        # (`Shortcut`), so that the cells, not the blocks, decide what it learns.
        # The DARTS cell searches digits enlarged to 16x16 ("space_data") in its smallest skeleton with
        # both cell types (normal, reduction, reduction: maps of 16, 8 and 4 pixels). On 8x8 digits its
        # cells saw maps of 4 and 2 pixels, where the candidate operations compute nearly the same thing,
        # and seeds derived cells no more alike than random ones (README, "A first search").
        "space_data": {"darts": "digits-16x16"},
        "spaces": {"darts": {"C": 4, "layers": 3}, "nb201": {"C": 8, "N": 1, "blocks": "shortcut"},
                   "macro": {"C": 8, "head": 64},
                   # NAS-RL's chain: 4 layers (the paper: 6, growing to 15) and half its numbers of filters.
                   "chain": {"layers": 4, "filters": [12, 18, 24, 32]}},
        # Epochs per space where they differ from "epochs": a NAS-Bench-201
        # supernet step costs about a tenth of a DARTS-cell one.
        "space_epochs": {"darts": 6, "nb201": 12, "chain": 1},
        # Per-strategy changes from the paper's defaults that the quick budget
        # needs: with ~100 steps instead of ~20,000, alpha at the paper's
        # learning rate (3e-4) would barely leave its initial value; a third
        # of the epochs train w alone first, as PC-DARTS and P-DARTS do.
        # SNAS moves alpha by plain SGD, 3e-4 over 117,300 steps of its 150-epoch
        # search: its rate is scaled by 117,300 / this search's steps, so alpha
        # can travel as far (`paper_steps`; ~0.18 at 12 epochs of digits). NASP's
        # Adam moves each entry of alpha about alpha_lr per step, so at 3e-4 its
        # alpha would move ~0.03 in ~100 steps and never meet the box [0, 1]
        # that its second proximal step enforces (the full search moves it ~6).
        # The variants of DARTS (SDARTS, DARTS-, beta-DARTS) get DARTS's changes, so that a comparison
        # changes one thing; their own schedules (epsilon, beta, lambda) are per epoch and need none.
        # ENAS: an epoch here is ~9 w-steps, not the paper's ~280, so its 30 controller steps of 10 children
        # (300 supernet evaluations, ~90% of the work) become 10 steps of 5; with 60 to 120 controller
        # steps instead of 4,500, Adam's learning rate x 10 (it moves each weight about lr per step).
        # Random search with weight sharing ranks 100 candidates on 2 minibatches (the code's 1,000 on 10:
        # 10,000 evaluations, more than the whole search's training here) and rescores the best 10 on the
        # whole architecture half, as the code does.
        "strategies": {"snas": {"paper_steps": 150 * 782}, "nasp": {"alpha_lr": 3e-2},
                       **{name: {"alpha_lr": 3e-2} for name in DARTS_FAMILY},
                       "enas": {"controller_steps": 10, "controller_aggregate": 5, "controller_lr": 3.5e-2},
                       "random_ws": {"candidates": 100, "eval_batches": 2},
                       # NAS-RL on the chain: 10 updates of m = 8 children (1 epoch of 10), each child trained 2
                       # epochs (not 50; ~1.4 CPU-seconds each), instead of the paper's 12,800 children from 100
                       # asynchronous replicas; so Adam's learning rate 0.01, not 6e-4 (at 6e-4 nothing moves in
                       # 25 updates; at 0.01 the chain's mean child accuracy rises from ~0.65 to ~0.85 in 10 updates
                       # and ~0.9 in 20, and on NAS-Bench-Macro it beats random search: benchmarks/nas_rl_macro.py).
                       "nas_rl": {"controller_lr": 1e-2, "train_epochs": 2}},
        "space_strategies": {key: value for name in DARTS_FAMILY for key, value in
                             {(name, "darts"): {"warmup_epochs": 2}, (name, "nb201"): {"warmup_epochs": 4}}.items()},
    },
    "full": {
        "data": "cifar10", "batch_size": 64, "epochs": 50,
        "spaces": {"darts": {"C": 16, "layers": 8}, "nb201": {"C": 16, "N": 5}, "macro": {"C": 32, "head": 1280},
                   "chain": {"layers": 15}},
        "strategies": {},
    },
}


def _data_key(data) -> str:
    return str(getattr(data, "name", data)).lower().replace("-", "_")


def budget(name=None, data=None) -> str:
    """The budget to run (see the module docstring for the order of the rules)."""
    name = name or os.environ.get("NASEDU_BUDGET")
    if name:
        if name not in BUDGETS:
            raise ValueError(f"unknown budget {name!r}; choose 'quick' or 'full'")
        return name
    if os.environ.get("NASEDU_QUICK", "").strip() not in ("", "0"):
        return "quick"
    if data is not None:
        for key, settings in BUDGETS.items():
            if _data_key(data) in map(_data_key, [settings["data"], *settings.get("space_data", {}).values()]):
                return key
    return "full" if torch.cuda.is_available() else "quick"


def budget_settings(name=None, strategy=None, space="darts", data=None, epochs=None) -> dict:
    """Settings of budget `name` (see `budget`): ``{"budget", "data", "epochs",
    "batch_size", "space": {options of `space`}, "strategy": {changes for `strategy`}}``.
    A warm-up is a share of the budget's epochs: given other `epochs`, it keeps its share."""
    key = budget(name, data)
    b = BUDGETS[key]
    space_name = str(space if isinstance(space, str) else getattr(space, "name", "darts")).lower()
    strategy_options = {**b["strategies"].get(strategy, {}),
                        **b.get("space_strategies", {}).get((strategy, space_name), {})} if strategy else {}
    budget_epochs = b.get("space_epochs", {}).get(space_name, b["epochs"])
    if epochs and "warmup_epochs" in strategy_options:
        strategy_options["warmup_epochs"] = strategy_options["warmup_epochs"] * epochs // budget_epochs
    return {"budget": key, "data": b.get("space_data", {}).get(space_name, b["data"]), "epochs": budget_epochs,
            "batch_size": b["batch_size"], "space": dict(b["spaces"].get(space_name, {})),
            "strategy": strategy_options}

"""Random search with weight sharing.

Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture
Search", UAI 2019 (arXiv:1902.07638): its algorithm "random search with
weight-sharing". The authors' code: liamcli/randomNAS_release@6513a0a
(``searchers/random_weight_share.py``,
``benchmarks/cnn/darts/darts_wrapper_discrete.py``); it has no licence, so it
was read and compared with, and nothing of it is copied.

The search has two stages.

1. **Train the shared weights w.** For each of the B minibatches of the
   search (B = epochs x minibatches in a pass over the `w` half), sample an
   architecture uniformly at random and take one SGD step on
   grad_w L_train(a; w) along its path only (a hard path of the supernet: the
   code runs the DARTS supernet with one-hot alpha and computes only the chosen
   operations).
2. **Rank.** Sample `candidates` architectures uniformly, score each with the
   shared weights on `eval_batches` minibatches of the architecture half, score
   the best `finalists` again on the whole architecture half, and return the
   best of those. The code's ``get_eval_arch`` runs max(1, B / 10,000) such
   rounds (`rounds=None`) and keeps the best of their winners.

**BatchNorm.** The code scores a candidate under ``model.eval()``: every
BatchNorm normalises with its running statistics, gathered while training
over all the paths sampled (``bn="running"``, the default). A path then sees
statistics that are not its own; ``bn="batch"`` normalises each minibatch with
its own statistics instead (what ENAS does, a per-architecture recalibration).
`nasedu.ranking.rank_correlation` measures what the choice does to the ranking.

**Defaults (the code's CIFAR-10 settings):** the DARTS weight recipe (SGD,
learning rate 0.025 annealed by a cosine schedule to 0.001, momentum 0.9,
weight decay 3e-4, gradient clipping at 5); 1,000 candidates scored on 10
minibatches each, the best 10 rescored on the whole split.

**Where nasedu differs, on purpose:**

- the sampler is the space's uniform one (`SearchSpace.sample`): on the DARTS
  cell two distinct inputs per node and an operation other than `none` on each
  (the code draws among all 8 operations, `none` included, so that a node may
  keep fewer than two inputs, which a DARTS genotype cannot write; DARTS- and
  SDARTS copy that sampler); on NAS-Bench-201 one of the 5 operations per
  edge, `none` included;
- each round's candidates are scored on the same minibatches (the code draws
  each candidate its own next ones from a single iterator), so that their
  differences are not the batches';
- the ranking runs at the end of the search, as the code's, and with
  ``select_every=k`` also at every k-th epoch, so that the dashboard can follow
  it; before the first ranking, `architecture()` is the last architecture a
  step trained: a uniform sample.
"""
from __future__ import annotations

import torch

from ..architecture import Table
from ..spaces.darts import DartsCellSpace
from ..training import evaluate_model
from .base import SupernetStrategy

__all__ = ["RandomWS"]


class RandomWS(SupernetStrategy):
    """Random search with weight sharing on any search space whose supernet runs hard paths (module docstring)."""

    name = "random_ws"
    paper = "Li & Talwalkar, Random Search and Reproducibility for Neural Architecture Search, UAI 2019"
    plots = {"loss": ["train_loss", "oneshot_val_loss"], "accuracy": ["train_acc", "selected_acc", "oneshot_val_acc"]}
    headline = "oneshot_val_acc"

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 candidates=1000, eval_batches=10, finalists=10, rounds=None, bn="running", select_every=0):
        super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum,
                         w_weight_decay=w_weight_decay, grad_clip=grad_clip)
        for key, value in (("candidates", candidates), ("eval_batches", eval_batches), ("finalists", finalists)):
            if int(value) != value or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value}")
        if rounds is not None and (int(rounds) != rounds or rounds < 1):
            raise ValueError(f"rounds must be a positive integer or None (the code's max(1, B / 10000)), got {rounds}")
        if int(select_every) != select_every or select_every < 0:
            raise ValueError(f"select_every must be 0 (rank once, at the end) or a positive number of epochs, "
                             f"got {select_every}")
        if bn not in ("running", "batch"):
            raise ValueError(f"bn must be 'running' (the code's model.eval()) or 'batch' (each batch's own "
                             f"statistics), got {bn!r}")
        self.candidates, self.eval_batches, self.finalists = int(candidates), int(eval_batches), int(finalists)
        self.rounds, self.bn, self.select_every = None if rounds is None else int(rounds), bn, int(select_every)
        self.generator = torch.Generator().manual_seed(context.seed)
        self.last, self.best, self.best_acc = None, None, None

    # -- stage 1: the weights, one uniform architecture per minibatch -------------------------------
    def step(self):
        self.last = self.space.sample(self.generator)
        return {**self.w_step(next(self.context.streams.w), self.hard_path(self.last)), "lr": self.w_optimizer.lr}

    # -- stage 2: the ranking --------------------------------------------------------------------------
    def split_accuracy(self, architecture) -> float:
        """Shared-weight accuracy of `architecture` on the whole architecture half (BatchNorm as `bn`)."""
        return evaluate_model(self.supernet, self.context.streams.arch.dataset, self.context.device,
                              arch=self.hard_path(architecture), precision=self.context.precision,
                              batch_size=self.context.batch_size, bn=self.bn)[1]

    def select(self) -> None:
        """The code's ``get_eval_arch``: per round, `candidates` uniform samples scored on `eval_batches`
        minibatches (the same for all), the best `finalists` rescored on the whole architecture half; the best
        of every round's finalists is the answer."""
        B = self.context.epochs * self.steps_per_epoch()
        winners = []
        for _ in range(self.rounds or max(1, B // 10000)):
            batches = [next(self.context.streams.arch) for _ in range(self.eval_batches)]
            sampled = [self.space.sample(self.generator) for _ in range(self.candidates)]
            accs = self.path_accuracies([self.hard_path(a) for a in sampled], [batches] * len(sampled), self.bn)
            order = sorted(range(len(sampled)), key=lambda i: -accs[i])  # stable: ties keep their order
            winners += [(self.split_accuracy(sampled[i]), sampled[i]) for i in order[:self.finalists]]
        self.best_acc, self.best = max(winners, key=lambda w: w[0])  # the first of equals

    def validate(self):
        done = self.epoch  # epochs finished
        if done >= self.context.epochs or (self.select_every and done % self.select_every == 0):
            self.select()
        record = self.oneshot_validate()
        if self.best_acc is not None:
            record["selected_acc"] = self.best_acc
        return record

    # -- what it shows ---------------------------------------------------------------------------------
    def distributions(self):
        """What it samples from, which never changes: the uniform sampler's marginal per row. The NAS-Bench-201
        and NAS-Bench-Macro samplers draw every row uniformly and independently (the space's uniform tables);
        on the DARTS cell a node keeps 2 of its i + 2 inputs, so an edge into node i carries each of the K
        operations but `none` with probability 2 / ((i + 2) K), and `none` (left out) with 1 - 2 / (i + 2)."""
        out = {}
        for table, t in self.space.tables().items():
            P = t.probabilities
            if isinstance(self.space, DartsCellSpace):
                kept = torch.tensor([2 / (j + 2) for j in range(self.space.steps) for _ in range(j + 2)],
                                    dtype=torch.float64)[:, None]
                is_none = torch.tensor([p == "none" for p in self.space.primitives])
                P = torch.where(is_none, 1 - kept, kept / int((~is_none).sum()))
            out[table] = Table(P, t.rows, t.columns, t.mask, f"{t.title}: the uniform sampler's marginals")
        return out

    def architecture(self):
        """The ranking's answer; before it, the architecture the last step trained (a uniform sample)."""
        if self.best is not None:
            return self.best
        if self.last is not None:
            return self.last
        return self.space.sample(torch.Generator().manual_seed(self.context.seed))

    # -- saving and resuming ---------------------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), "generator": self.generator.get_state(),
                "last": None if self.last is None else self.last.to_data(),
                "best": None if self.best is None else self.best.to_data(), "best_acc": self.best_acc}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])
        self.last = None if state["last"] is None else self.space.from_data(state["last"])
        self.best = None if state["best"] is None else self.space.from_data(state["best"])
        self.best_acc = state["best_acc"]

"""NAS-RL: a recurrent controller trained by REINFORCE to write architectures.

Zoph & Le, "Neural Architecture Search with Reinforcement Learning", ICLR
2017 (arXiv:1611.01578). No official code exists; this follows the paper.

**The controller** (Section 3.1, Figure 2) is a two-layer LSTM (35 units,
parameters theta_c initialised uniformly in [-0.08, 0.08], Section 4.1) that
writes an architecture as a sequence of tokens a_1..a_T: at each step a
softmax classifier over the current decision's options (filter height,
filter width, number of filters of a layer; or a table row's options in
another space) draws a_t, and a_t's embedding is the next step's input.

**Anchor points** (Section 3.3, Figure 4): after its filters token, layer i
has an anchor point whose hidden state h_i decides which earlier layers j
feed it, each independently with

    P(layer j is an input to layer i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)).

The paper does not say what the step after an anchor point reads; here it
is the mean of the chosen layers' anchor states, sum_j s_j h_j / (1 + sum_j s_j),
and after layer 1's (which has nothing to choose) the first step's input
again (ENAS's macro controller, by the same group, does both).

**REINFORCE** (Section 3.2, equation 2): the controller maximises the
expected reward J(theta_c) = E_{P(a_1:T; theta_c)}[R] with the estimate

    grad J ~ (1/m) sum_{k=1..m} sum_{t=1..T} grad log P(a_t | a_(t-1):1; theta_c) (R_k - b)

over m sampled children (m = 8 in the paper), b an exponential moving average
of past rewards (`nasedu.reinforce`). The paper gives no decay for b; 0.99
here, per child reward, as ENAS's code uses. The paper's optimiser is Adam
with learning rate 0.0006 (Section 4.1); the paper ran 100 controller
replicas asynchronously on 800 GPUs, here one controller takes one
synchronous step per m children.

**The reward** of a child is its validation accuracy after training from
scratch (the paper: 50 epochs, Nesterov SGD, learning rate 0.1, weight decay
1e-4, momentum 0.9; on CIFAR-10 the maximum validation accuracy of the last
5 epochs, cubed). Here each child is built by its space and trained by
`nasedu.evaluate.train_architecture` (the shared stand-alone training loop,
cosine schedule, no clipping), the m children of an update in parallel by
`nasedu.parallel.run_tasks`: a local process pool by default, a Ray cluster
given ``address``. For many updates on Ray, call ``ray.init(address=...)``
once first, so that each update does not start Ray again.

**On a benchmark table** (``search("nas_rl", space="macro", benchmark="nas-bench-macro")``)
the reward is looked up instead of trained: the table's validation accuracy
where it has one (nb201-digits), else its test accuracy (NAS-Bench-Macro
records only test accuracy, so that search selects on test data). The same
controller then writes one token per row of the space's tables (a layer's
block, an edge's operation).

**The chain space** (`nasedu.spaces.ChainSpace`): the paper starts at 6
layers and adds 2 every 1,600 children (Section 4.1); ``start_layers``,
``grow_every`` and ``grow_by`` are that schedule, capped by the space's
depth.

**What it shows.** `architecture()` is the best child so far by reward (the
paper reports its best child), or the controller's greedy decode (argmax of
every token) before any child. `distributions()` gives the controller's
*marginal* probability of every option of every row, estimated from
`MARGINAL_SAMPLES` sampled sequences (the mean of the conditional
probabilities along them, with a fixed generator so the estimate moves only
when theta_c does): for an autoregressive controller the exact marginals
would need every sequence. The chain's tables always have the space's full
depth; rows below the current depth show what the controller would write
there. The cost is counted: children trained and their CPU-seconds
(`cost()` extrapolates to the paper's 12,800 children).
"""
from __future__ import annotations

import functools
import math
import os
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..architecture import ArchitectureError, Table
from ..reinforce import MovingBaseline, reinforce_loss
from ..spaces.chain import ChainSpace
from .base import Strategy

__all__ = ["Controller", "Decision", "Rollout", "NASRL", "train_child", "PAPER_CHILDREN", "MARGINAL_SAMPLES"]

PAPER_CHILDREN = 12_800  # networks the paper's CIFAR-10 search trained (Section 4.1), on 800 GPUs
MARGINAL_SAMPLES = 256  # sequences `distributions` averages over
_MARGINAL_SEED = 12345  # its fixed generator: the estimate changes only when theta_c does


class Decision(NamedTuple):
    """One step of the controller: a token of kind `name` (its softmax head and
    embedding) with the options `allowed` (None: all), or the anchor point of
    layer `layer` (``name == "anchor"``: one sigmoid per earlier layer).
    `layer` also numbers a token's layer (the chain) or its table row."""

    name: str
    allowed: tuple | None = None
    layer: int = 0


class Rollout(NamedTuple):
    """m sequences: `actions` [m, T] (a token's option index, or a skip's 0/1),
    `log_prob` [m] = sum_t log P(a_t | a_<t; theta_c), and each token's
    conditional probabilities (`probabilities`, one [m, options] per token,
    one [m, earlier layers] of sigmoids per anchor point)."""

    actions: torch.Tensor
    log_prob: torch.Tensor
    probabilities: list


class Controller(nn.Module):
    """The two-layer LSTM controller (Section 3.1) with anchor-point attention (Section 3.3).

    `vocabularies` maps each kind of token to its number of options (e.g.
    ``{"filter_height": 4, "filter_width": 4, "filters": 4}``); each kind has
    its own softmax head and embedding, shared by every layer (as ENAS's
    controllers share theirs; the paper does not say), so a chain may grow
    and only the LSTM's state tells the layers apart. ``rollout(program, m)`` samples m sequences; ``rollout(program,
    actions=...)`` scores given ones (their log-probability with its graph)."""

    def __init__(self, vocabularies: dict, *, hidden: int = 35, num_layers: int = 2, init_range: float = 0.08,
                 anchors: bool = False):
        super().__init__()
        empty = [k for k, n in vocabularies.items() if int(n) < 1]
        if not vocabularies or empty:
            raise ValueError(f"every decision needs at least one option; got {dict(vocabularies)}"
                             + (f" ({', '.join(map(repr, empty))} with none)" if empty else " (no decisions)"))
        if hidden < 1 or num_layers < 1 or not init_range > 0:
            raise ValueError(f"need hidden >= 1, num_layers >= 1, init_range > 0; got {hidden=}, {num_layers=}, "
                             f"{init_range=}")
        self.hidden = int(hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers)
        self.go = nn.Parameter(torch.empty(hidden))  # the first step's input
        self.embeddings = nn.ModuleDict({k: nn.Embedding(int(n), hidden) for k, n in vocabularies.items()})
        self.heads = nn.ModuleDict({k: nn.Linear(hidden, int(n)) for k, n in vocabularies.items()})
        if anchors:
            self.W_prev = nn.Linear(hidden, hidden, bias=False)
            self.W_curr = nn.Linear(hidden, hidden, bias=False)
            self.v = nn.Linear(hidden, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)

    def rollout(self, program: list, m: int | None = None, *, actions: torch.Tensor | None = None,
                generator: torch.Generator | None = None, greedy: bool = False) -> Rollout:
        """Run the controller over `program` (a list of `Decision`s): sample m
        sequences (with `generator`), take the most probable token at every
        step (`greedy`), or score the given `actions`."""
        B = len(actions) if actions is not None else int(m)
        x = self.go.expand(B, self.hidden)
        state, anchors, keys = None, [], []
        taken, log_prob, probabilities, t = [], x.new_zeros(B), [], 0
        for decision in program:
            out, state = self.lstm(x[None], state)
            h = out[0]
            if decision.name != "anchor":
                logits = self.heads[decision.name](h)
                if decision.allowed is not None:
                    allowed = torch.zeros(logits.shape[1], dtype=torch.bool)
                    allowed[list(decision.allowed)] = True
                    logits = logits.masked_fill(~allowed, -math.inf)
                log_p = F.log_softmax(logits, dim=1)
                if actions is not None:
                    a = actions[:, t]
                elif greedy:
                    a = log_p.argmax(dim=1)
                else:
                    a = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
                log_prob = log_prob + log_p.gather(1, a[:, None]).squeeze(1)
                probabilities.append(log_p.exp())
                taken.append(a[:, None])
                x, t = self.embeddings[decision.name](a), t + 1
                continue
            # An anchor point: P(j -> i) = sigmoid(v^T tanh(W_prev h_j + W_curr h_i)) for every earlier layer j.
            if anchors:
                z = self.v(torch.tanh(torch.stack(keys, dim=1) + self.W_curr(h)[:, None])).squeeze(2)  # [B, i-1]
                p = torch.sigmoid(z)
                if actions is not None:
                    s = actions[:, t:t + len(anchors)]
                elif greedy:
                    s = (p > 0.5).long()
                else:
                    s = torch.bernoulli(p.detach(), generator=generator).long()
                # log P(s) = s log sigmoid(z) + (1 - s) log sigmoid(-z), stable for large |z|.
                log_prob = log_prob + torch.where(s.bool(), F.logsigmoid(z), F.logsigmoid(-z)).sum(1)
                probabilities.append(p)
                taken.append(s)
                x = (s.to(h.dtype)[:, :, None] * torch.stack(anchors, dim=1)).sum(1) / (1 + s.sum(1, keepdim=True))
                t += len(anchors)
            else:  # layer 1 reads the image: nothing to choose; the next step reads the first step's input again
                x = self.go.expand(B, self.hidden)
                probabilities.append(h.new_zeros(B, 0))
            anchors.append(h)
            keys.append(self.W_prev(h))
        actions_out = torch.cat(taken, dim=1) if taken else torch.zeros(B, 0, dtype=torch.long)
        return Rollout(actions_out, log_prob, probabilities)


# ---------------------------------------------------------------------------
# A child: trained from scratch in a worker
# ---------------------------------------------------------------------------

def train_child(task, *, space: dict, data: str, epochs: int, reward_epochs: int, device: str, **training) -> dict:
    """Train child ``task = (index, architecture text, seed)`` from scratch
    (`nasedu.evaluate.train_architecture`) and return its accuracy: the best
    validation accuracy of its last `reward_epochs` epochs (the paper: last 5
    of 50). Module-level, so that worker processes can run it."""
    from ..bench_builder import _bundle  # the data, loaded once per worker process
    from ..evaluate import train_architecture

    index, architecture, seed = task
    bundle = _bundle(data, 0)
    started = time.process_time()  # the training alone: not the worker's start-up, imports or data loading
    result = train_architecture(architecture, bundle, space=space, epochs=epochs, seed=seed, device=device,
                                progress=False, **training)
    accuracy = max(r["val_acc"] for r in result.history[-reward_epochs:])
    return {"accuracy": accuracy, "test_acc": result.test_acc, "params": result.params, "seconds": result.seconds,
            "cpu_seconds": time.process_time() - started, "worker": os.getpid()}


# ---------------------------------------------------------------------------
# The strategy
# ---------------------------------------------------------------------------

class NASRL(Strategy):
    """NAS-RL on the chain space (children trained from scratch) or on any
    space whose table rows are independent choices (NAS-Bench-Macro's layers,
    NAS-Bench-201's edges), searched on data or on a benchmark table.

    One step is one controller update: m children sampled, their rewards R_k
    (trained in parallel, or looked up), advantages R_k - b, one Adam step on
    the REINFORCE surrogate. Defaults are the paper's (Section 4.1); `budgets`
    scales what the quick budget needs."""

    name = "nas_rl"
    paper = "Zoph & Le, Neural Architecture Search with Reinforcement Learning, ICLR 2017"
    plots = {"reward": ["reward", "baseline", "best_reward"], "children": ["children"],
             "seconds": ["cpu_seconds", "wall_seconds"]}
    headline = "best_accuracy"

    def __init__(self, context, *, children_per_update=8, controller_lr=6e-4, hidden=35, lstm_layers=2,
                 init_range=0.08, baseline_decay=0.99, reward_power=3.0, updates_per_epoch=10, train_epochs=50,
                 reward_epochs=5, child_lr=0.1, child_momentum=0.9, child_weight_decay=1e-4, child_nesterov=True,
                 child_grad_clip=None, start_layers=6, grow_every=1600, grow_by=2, workers=None, address=None):
        super().__init__(context)
        self.table_only = context.data is None and context.benchmark is not None
        if not self.table_only:
            context.require_data("nas_rl without a benchmark table (it trains every child)")
        for name, value in (("children_per_update", children_per_update), ("updates_per_epoch", updates_per_epoch),
                            ("train_epochs", train_epochs), ("reward_epochs", reward_epochs),
                            ("start_layers", start_layers), ("grow_every", grow_every)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not controller_lr > 0 or not reward_power > 0 or int(grow_by) != grow_by or grow_by < 0:
            raise ValueError(f"need controller_lr > 0, reward_power > 0 and an integer grow_by >= 0; got "
                             f"{controller_lr=}, {reward_power=}, {grow_by=}")
        self.m, self.updates_per_epoch = int(children_per_update), int(updates_per_epoch)
        self.reward_power = float(reward_power)
        self.start_layers, self.grow_every, self.grow_by = int(start_layers), int(grow_every), int(grow_by)
        self.workers, self.address = workers, address
        self.child = {"epochs": int(train_epochs), "reward_epochs": min(int(reward_epochs), int(train_epochs)),
                      "lr": child_lr, "momentum": child_momentum, "weight_decay": child_weight_decay,
                      "nesterov": bool(child_nesterov), "grad_clip": child_grad_clip,
                      "batch_size": context.batch_size}
        self.chain = isinstance(self.space, ChainSpace)
        vocabularies = self._vocabularies()
        with torch.random.fork_rng(devices=[]):  # theta_c's initial values from the search's seed alone
            torch.manual_seed(context.seed)
            self.controller = Controller(vocabularies, hidden=hidden, num_layers=lstm_layers, init_range=init_range,
                                         anchors=self.chain)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=controller_lr)
        self.baseline = MovingBaseline(baseline_decay)
        self.generator = torch.Generator().manual_seed(context.seed)
        self.best, self.best_reward, self.best_accuracy = None, -math.inf, -math.inf
        self.children, self.cpu_seconds, self.wall_seconds, self.updates = 0, 0.0, 0.0, 0
        self.log = []  # one record per child: update, architecture, accuracy, reward, seconds

    # -- what the controller writes --------------------------------------------------------------
    def _vocabularies(self) -> dict:
        if self.chain:
            return {"filter_height": len(self.space.kernels), "filter_width": len(self.space.kernels),
                    "filters": len(self.space.filters)}
        tables = self.space.tables()
        for name, table in tables.items():
            for r, row in enumerate(np.ones(table.probabilities.shape, bool) if table.mask is None else table.mask):
                if not row.any():
                    raise ValueError(f"table {name!r}, row {table.rows[r]!r}: no option to choose")
        self._check_rows_are_independent(tables)
        return {name: t.probabilities.shape[1] for name, t in tables.items()}

    def _check_rows_are_independent(self, tables):
        """The controller writes one option per row; refuse a space where such a choice is not an architecture."""
        generator = torch.Generator().manual_seed(0)
        allowed = {k: [np.flatnonzero(row) for row in (np.ones(t.probabilities.shape, bool) if t.mask is None
                                                       else t.mask)] for k, t in tables.items()}
        try:
            for _ in range(8):  # a few draws of one allowed option per row
                self.space.decode({k: torch.tensor([int(row[torch.randint(len(row), (), generator=generator)])
                                                    for row in rows]) for k, rows in allowed.items()})
        except ArchitectureError as error:
            raise ValueError(f"nas_rl cannot search the {self.space.name!r} space: its controller writes one option "
                             f"per row of the space's tables, and there such a choice is not an architecture "
                             f"({error}). Spaces it searches: 'chain', 'macro', 'nb201'; for the DARTS cell, "
                             f"ENAS's controller ('enas') samples two inputs per node.") from None

    @property
    def depth(self) -> int:
        """The chain's depth now: `start_layers`, plus `grow_by` every `grow_every` children, at most the space's."""
        if not self.chain:
            return 0
        return min(self.space.layers, self.start_layers + self.grow_by * (self.children // self.grow_every))

    def program(self, depth: int | None = None) -> list:
        """The controller's decisions in order: per layer filter height, width, filters, anchor point (the
        chain), or one token per row of every table."""
        if self.chain:
            depth = depth or self.depth
            return [Decision(kind, layer=i) for i in range(1, depth + 1)
                    for kind in ("filter_height", "filter_width", "filters", "anchor")]
        program = []
        for name, table in self.space.tables().items():
            for r in range(len(table.rows)):
                allowed = None if table.mask is None else tuple(np.flatnonzero(table.mask[r]).tolist())
                program.append(Decision(name, allowed, r))
        return program

    def decode(self, program: list, actions: torch.Tensor):
        """The architecture of one sequence of actions."""
        indices, t = {}, 0
        for decision in program:
            if decision.name == "anchor":
                n, key = decision.layer - 1, "skips"
            else:
                n, key = 1, decision.name
            indices.setdefault(key, []).extend(actions[t:t + n].tolist())
            t += n
        return self.space.decode(indices)

    # -- rewards ---------------------------------------------------------------------------------
    def evaluate_children(self, architectures: list) -> list:
        """One dict per child (accuracy, seconds, cpu_seconds): looked up in the table, or trained in parallel."""
        if self.table_only:
            out = []
            for a in architectures:
                record = self.context.benchmark.query(a)
                accuracy = self.context.benchmark.search_accuracy(a)
                seconds = float(np.mean(record.seconds)) if record.seconds else 0.0
                out.append({"accuracy": accuracy, "seconds": seconds, "cpu_seconds": seconds})
            return out
        from ..parallel import run_tasks

        first = self.context.seed * 1_000_000 + self.children
        tasks = [(k, a.to_data(), first + k) for k, a in enumerate(architectures)]
        fn = functools.partial(train_child, space=self.space.config(), data=self.context.data.name,
                               device=str(self.context.device), **self.child)
        results = dict(run_tasks(fn, tasks, workers=self.workers, address=self.address, progress=False))
        return [results[task] for task in tasks]

    # -- one update ------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.updates_per_epoch

    def step(self):
        program = self.program()
        with torch.no_grad():
            actions = self.controller.rollout(program, self.m, generator=self.generator).actions
        architectures = [self.decode(program, a) for a in actions]
        started = time.perf_counter()
        results = self.evaluate_children(architectures)
        self.wall_seconds += time.perf_counter() - started
        rewards = [r["accuracy"] ** self.reward_power for r in results]  # R_k
        advantages = self.baseline.advantages(rewards)  # R_k - b, b before this update's rewards
        # grad of the surrogate = -(1/m) sum_k sum_t grad log P(a_t | a_<t; theta_c) (R_k - b)
        loss = reinforce_loss(self.controller.rollout(program, actions=actions).log_prob, advantages)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        for architecture, result, R in zip(architectures, results, rewards):
            self.log.append({"child": self.children, "update": self.updates, "architecture": architecture.to_data(),
                             "accuracy": result["accuracy"], "reward": R, "seconds": result["seconds"]})
            self.children += 1
            self.cpu_seconds += result["cpu_seconds"]
            if R > self.best_reward:
                self.best, self.best_reward, self.best_accuracy = architecture, R, result["accuracy"]
        self.updates += 1
        metrics = {"reward": float(np.mean(rewards)), "reward_max": max(rewards), "baseline": self.baseline.value,
                   "accuracy": float(np.mean([r["accuracy"] for r in results])), "best_reward": self.best_reward,
                   "best_accuracy": self.best_accuracy, "children": self.children, "cpu_seconds": self.cpu_seconds,
                   "wall_seconds": self.wall_seconds}
        return {**metrics, "depth": self.depth} if self.chain else metrics

    def validate(self):
        metrics = {"best_reward": self.best_reward, "best_accuracy": self.best_accuracy, "children": self.children,
                   "cpu_seconds": self.cpu_seconds, "wall_seconds": self.wall_seconds}
        return {**metrics, "depth": self.depth} if self.chain else metrics

    def cost(self, children: int = PAPER_CHILDREN) -> dict:
        """Children trained, their CPU-seconds (the sum of their trainings' CPU time, or the table's recorded
        training seconds), the wall-clock seconds spent getting their rewards (worker start-up included), and
        the CPU-hours `children` (the paper's 12,800) would take at this search's mean cost per child."""
        per_child = self.cpu_seconds / self.children if self.children else float("nan")
        return {"children": self.children, "cpu_seconds": self.cpu_seconds, "wall_seconds": self.wall_seconds,
                "cpu_seconds_per_child": per_child, "extrapolated_children": children,
                "extrapolated_cpu_hours": per_child * children / 3600}

    # -- what it shows ---------------------------------------------------------------------------
    def distributions(self):
        """The controller's marginals per row, estimated from `MARGINAL_SAMPLES` sequences (see the module
        docstring); the chain at the space's full depth."""
        program = self.program(self.space.layers if self.chain else None)
        with torch.no_grad():
            rollout = self.controller.rollout(program, MARGINAL_SAMPLES,
                                              generator=torch.Generator().manual_seed(_MARGINAL_SEED))
        rows = {}
        for decision, p in zip(program, rollout.probabilities):
            mean = p.mean(0).double()
            if decision.name == "anchor":
                rows.setdefault("skips", []).extend(torch.stack([1 - mean, mean], dim=1))
            else:
                rows.setdefault(decision.name, []).append(mean)
        note = f" (controller's marginals, {MARGINAL_SAMPLES} samples)"
        return {k: Table(torch.stack(rows[k]), t.rows, t.columns, t.mask, t.title + note)
                for k, t in self.space.tables().items()}

    def greedy(self):
        """The controller's greedy decode: the most probable token at every step, a skip where its sigmoid
        exceeds 1/2 (at the current depth)."""
        program = self.program()
        with torch.no_grad():
            actions = self.controller.rollout(program, 1, greedy=True).actions[0]
        return self.decode(program, actions)

    def architecture(self):
        """The best child so far (the paper's choice); before any, the controller's greedy decode."""
        return self.best if self.best is not None else self.greedy()

    # -- saving and resuming ---------------------------------------------------------------------
    def state_dict(self):
        return {"controller": self.controller.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.state_dict(), "generator": self.generator.get_state(),
                "best": None if self.best is None else self.best.to_data(), "best_reward": self.best_reward,
                "best_accuracy": self.best_accuracy, "children": self.children, "cpu_seconds": self.cpu_seconds,
                "wall_seconds": self.wall_seconds, "updates": self.updates, "log": [dict(r) for r in self.log]}

    def load_state_dict(self, state):
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])
        self.best = None if state["best"] is None else self.space.from_data(state["best"])
        self.best_reward, self.best_accuracy = state["best_reward"], state["best_accuracy"]
        self.children, self.cpu_seconds, self.updates = state["children"], state["cpu_seconds"], state["updates"]
        self.wall_seconds = state["wall_seconds"]
        self.log = [dict(r) for r in state["log"]]

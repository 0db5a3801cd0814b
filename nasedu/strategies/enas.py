"""ENAS: Efficient Neural Architecture Search via Parameter Sharing.

Pham, Guan, Zoph, Le & Dean, ICML 2018 (arXiv:1802.03268). The authors' code:
melodyguan/enas@4bcfd73 (Apache-2.0): ``src/cifar10/micro_controller.py``,
``micro_child.py``, ``main.py``, ``src/utils.py`` and
``scripts/cifar10_micro_search.sh``. Nothing of it is copied.

**Weight sharing (Section 2).** Every architecture the controller can emit is
a subgraph of one graph, the supernet, and all of them share its weights w:
a child m runs only its own path (`nasedu.supernet`, a hard path).

**The controller (Sections 2.3 and 2.4, the micro search space).** An LSTM
with parameters theta emits a cell decision by decision, each decision a
softmax over its options whose sample is fed back as the next input. For each
of the B nodes of a cell it samples

1. two inputs among the cell's two inputs and the nodes before it, by
   attention over their anchors h_j (the LSTM's output after each node;
   zeros for the cell's inputs), with h_t the current output:
   ``logit_j = v^T tanh(W_1 h_j + W_2 h_t)``; the chosen anchor is the next input;
2. an operation for each input: ``logits = W_soft h_t + b_soft``; the chosen
   operation's embedding is the next input;

then takes one more LSTM step whose output is the node's anchor. The normal
cell is sampled first, the reduction cell after it from where the LSTM
stopped. Every logit l is shaped as the code does: ``l / T`` when a
temperature T is set, then ``C tanh(l)`` with the tanh constant C (for the
operations ``C / op_tanh_reduce``).

**The alternation (Section 2.2).** Each epoch:

1. the shared weights w, theta fixed: one pass over the `w` half of the
   training split, one architecture m ~ pi(m; theta) per minibatch, one SGD
   step on grad_w L_train(m; w) (Eq. 1 with M = 1);
2. the controller theta, w fixed: `controller_steps` Adam steps, each on
   `controller_aggregate` sampled children with rewards
   ``R(m) = accuracy of m on one minibatch of the architecture half + entropy_weight H(pi)``
   and the REINFORCE estimate (Williams 1992, as Zoph & Le 2017, Section 3.2)
   ``grad_theta E[R] ~ (1/M) sum_k (R_k - b) grad_theta log pi(m_k; theta)``
   (`nasedu.reinforce.reinforce_loss`), b a moving average of R with decay
   `baseline_decay`, each reward folded into b before its own advantage is
   formed, in turn, as the code's ``baseline -= (1 - bl_dec)(baseline - reward)``
   then ``reward - baseline`` (`nasedu.reinforce.MovingBaseline`, ``update_first``).

**The answer (Section 2.2, "Deriving Architectures").** Sample `final_samples`
architectures from pi, compute each one's accuracy with the shared weights on
a single minibatch of the architecture half, keep the best. It is done at the
end of every epoch, so the dashboard follows the current answer; before the
first, `architecture()` is the controller's most likely decision at each step.

**Defaults (the code's micro search, ``cifar10_micro_search.sh`` and ``main.py``):**
LSTM of 64 units, 1 layer (``main.py`` overrides the class's 32 x 2), every
controller weight initialised U(-0.1, 0.1); Adam with beta_1 = 0 and epsilon =
1e-3, learning rate 0.0035, constant; tanh constant 1.1, op_tanh_reduce 2.5, no
temperature; entropy weight 1e-4 (the entropy of the whole softmax of each
decision, summed, without gradient); baseline decay 0.99 (the flag's; the
class default is 0.999); 30 controller steps per epoch, each averaging the
gradients of 10 children; the answer among 10 samples (the code prints 10
sampled architectures with their minibatch accuracy each epoch). ``b_soft``
starts at 10 on the code's two convolutions (sep3, sep5; `BIASED_OPS`) and 0
elsewhere, and the normal cell adds a fixed +0.25 to them and -0.25 to the
others: the controller starts out preferring convolutions. The weights:
Nesterov SGD, momentum 0.9, learning rate 0.05 annealed to 0.0005 by a cosine
schedule, the code's ``l2_reg`` 1e-4 (it adds 1e-4 sum w^2 to the loss: a
weight decay of 2e-4), gradient clipping at 5.

**Where nasedu differs, on purpose:**

- the code samples a node's two inputs independently, so it may pick one input
  twice; the supernet has one edge per (input, node), so the second input is
  sampled among the others (the first is masked out of its softmax) and every
  sample is a valid DARTS genotype with exactly two inputs per node;
- the operations are the space's, `none` excepted (the DARTS space: 7, the code's
  micro space: 5), and the cell's output is the space's (the DARTS cell
  concatenates its last nodes; the code concatenates every unused state);
- the NAS-Bench-201 space has no inputs to choose: the controller emits one
  operation per edge (5 options, `none` included), LSTM and shaping as above;
  no operation there is one of `BIASED_OPS`, so its logits start unbiased;
- the weights' cosine schedule has no warm restarts (the code's T_0 = 10,
  T_mul = 2), and clips the total gradient norm at 5 (the code asks to clip each
  tensor at 5, but its loop appends the unclipped gradient: it never clips);
  the child has no auxiliary head, dropout or drop-path (the supernet is the
  space's); ``grad_clip=None`` turns clipping off;
- b starts at the first reward, as `MovingBaseline` does (the code starts it
  at 0, so that the first hundreds of advantages are all positive).

`controller_conditioning` measures the finding of Adam & Lorraine,
"Understanding Neural Architecture Search Techniques" (arXiv:1904.00438):
that ENAS's controller, once trained, barely conditions on its own past
choices.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..architecture import Table
from ..reinforce import MovingBaseline, reinforce_loss
from ..spaces.darts import DartsCellSpace
from ..spaces.nb201 import NB201Space
from .base import SupernetStrategy

__all__ = ["ENAS", "Controller", "ControllerSample", "controller_program", "controller_conditioning", "BIASED_OPS"]

# The code's micro operations are sep3, sep5, avg3, max3, identity; b_soft starts at 10 on the first two.
BIASED_OPS = ("sep_conv_3x3", "sep_conv_5x5")
B_SOFT_INIT = 10.0
FIXED_BIAS = 0.25  # b_soft_no_learn: +0.25 on those, -0.25 on the others, normal cell only


class ControllerSample(NamedTuple):
    """What one run of the controller gives for m architectures: `actions` [m, T] (the decisions in the order
    sampled), `log_prob` [m] = sum_t log pi(a_t | a_<t) (the graph attached), `entropy` [m] = sum_t of the
    entropy of each decision's softmax (detached), `probabilities`: T tensors [m, K_t], each decision's
    conditional distribution (detached), and `hidden` [m, H], the LSTM's last output (detached)."""

    actions: torch.Tensor
    log_prob: torch.Tensor
    entropy: torch.Tensor
    probabilities: list
    hidden: torch.Tensor


def controller_program(space):
    """``(program, operations, columns, none)`` for `space`: the controller's cells ``[(table, kind, n)]``
    (``"nodes"``: ENAS's micro cell of n nodes; ``"edges"``: one operation per edge of n), the operations
    its softmax chooses among, their columns in the space's tables, and the column of `none` (or None).
    Raises a ValueError naming the problem for a space ENAS cannot use."""
    if isinstance(space, DartsCellSpace):
        if "none" not in space.primitives:
            raise ValueError("ENAS on the DARTS space needs 'none' among the primitives: the supernet's edges "
                             f"that a node does not use carry it; got primitives {list(space.primitives)}")
        ops = [p for p in space.primitives if p != "none"]
        if not ops:
            raise ValueError("ENAS needs at least one operation besides 'none' to choose from")
        return ([(kind, "nodes", space.steps) for kind in ("normal", "reduce")], ops,
                [space.primitives.index(p) for p in ops], space.primitives.index("none"))
    if isinstance(space, NB201Space):
        table = space.tables()["cell"]
        return [("cell", "edges", len(table.rows))], list(table.columns), list(range(len(table.columns))), None
    name = getattr(space, "name", type(space).__name__)
    raise ValueError(f"ENAS's controller samples cells: of the DARTS space (two inputs and two operations per node, "
                     f"the paper's micro search) or of the NAS-Bench-201 space (one operation per edge); it cannot "
                     f"use the {name!r} space. For the NAS-Bench-Macro chain use 'nas_rl' (its controller emits "
                     f"layers) or 'asng'.")


class Controller(nn.Module):
    """ENAS's LSTM controller (see the module docstring) over a `program` of cells ``[(table, kind, n)]``
    (`controller_program`), choosing among `num_ops` operations. `biased_ops`: the indices of the
    operations b_soft favours at the start (and the first cell's fixed bias, if any are given)."""

    def __init__(self, program, num_ops, *, lstm_size=64, lstm_layers=1, tanh_constant=1.1, op_tanh_reduce=2.5,
                 temperature=None, biased_ops=(), init_range=0.1):
        super().__init__()
        if not program or any(kind not in ("nodes", "edges") or n < 1 for _, kind, n in program):
            raise ValueError(f"a controller program is a non-empty list of (table, 'nodes' | 'edges', n >= 1), "
                             f"got {program}")
        if num_ops < 1 or lstm_size < 1 or lstm_layers < 1:
            raise ValueError(f"need num_ops, lstm_size and lstm_layers >= 1, got {num_ops}, {lstm_size}, "
                             f"{lstm_layers}")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"the temperature must be positive (or None), got {temperature}")
        if tanh_constant is not None and not tanh_constant > 0 or not op_tanh_reduce > 0:
            raise ValueError(f"need tanh_constant > 0 (or None) and op_tanh_reduce > 0, got {tanh_constant} and "
                             f"{op_tanh_reduce}")
        self.program = [tuple(c) for c in program]
        self.num_ops, self.lstm_size = int(num_ops), int(lstm_size)
        self.tanh_constant, self.op_tanh_reduce, self.temperature = tanh_constant, op_tanh_reduce, temperature
        self.lstm = nn.ModuleList(nn.LSTMCell(lstm_size, lstm_size, bias=False) for _ in range(lstm_layers))
        self.g_emb = nn.Parameter(torch.empty(1, lstm_size))    # the input of a step that follows no decision
        self.w_emb = nn.Embedding(num_ops, lstm_size)           # each operation's embedding
        self.w_soft = nn.Linear(lstm_size, num_ops)             # its bias is b_soft
        self.w_attn_1 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.w_attn_2 = nn.Linear(lstm_size, lstm_size, bias=False)
        self.v_attn = nn.Linear(lstm_size, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -init_range, init_range)
        biased = torch.zeros(num_ops, dtype=torch.bool)
        biased[list(biased_ops)] = True
        with torch.no_grad():
            self.w_soft.bias.copy_(torch.where(biased, B_SOFT_INIT, 0.0))
        fixed = torch.where(biased, FIXED_BIAS, -FIXED_BIAS) if biased.any() else torch.zeros(num_ops)
        self.register_buffer("fixed_bias", fixed)  # a constant, not learnt

    @property
    def kinds(self) -> list:
        """What each of the T decisions of one architecture chooses, in the order sampled: ``"input"``, ``"second
        input"`` (masked to differ from the node's first) or ``"operation"``."""
        out = []
        for _, kind, n in self.program:
            out += ["input", "second input", "operation", "operation"] * n if kind == "nodes" else ["operation"] * n
        return out

    @property
    def decisions(self) -> int:
        """T, the number of decisions of one architecture."""
        return len(self.kinds)

    def _shape(self, logits, constant):
        if self.temperature is not None:
            logits = logits / self.temperature
        return logits if constant is None else constant * torch.tanh(logits)

    def run(self, m=1, *, generator=None, actions=None, greedy=False) -> ControllerSample:
        """Sample m architectures (``generator`` draws them), or score given `actions` [m, T] (their log
        probability, teacher-forced), or take the most likely decision at every step (``greedy``)."""
        if actions is not None:
            actions = torch.as_tensor(actions, dtype=torch.long)
            if actions.dim() != 2 or actions.shape[1] != self.decisions:
                raise ValueError(f"actions must be [m, {self.decisions}], got {tuple(actions.shape)}")
            m = actions.shape[0]
        H = self.lstm_size
        h = [torch.zeros(m, H) for _ in self.lstm]
        c = [torch.zeros(m, H) for _ in self.lstm]
        log_prob, entropy, probabilities, taken = torch.zeros(m), torch.zeros(m), [], []
        rows = torch.arange(m)

        def step(x):
            for i, cell in enumerate(self.lstm):
                h[i], c[i] = cell(x, (h[i], c[i]))
                x = h[i]
            return x

        def decide(logits, mask=None):
            nonlocal log_prob, entropy
            if mask is not None:
                logits = logits.masked_fill(~mask, -math.inf)
            log_p = F.log_softmax(logits, dim=-1)
            p = log_p.detach().exp()
            t = len(taken)
            if actions is not None:
                a = actions[:, t]
            elif greedy:
                a = p.argmax(dim=1)
            else:
                a = torch.multinomial(p, 1, generator=generator).squeeze(1)
            log_prob = log_prob + log_p.gather(1, a[:, None]).squeeze(1)
            entropy = entropy - torch.where(p > 0, p * log_p.detach(), torch.zeros(())).sum(dim=1)
            probabilities.append(p)
            taken.append(a)
            return a

        x = self.g_emb.expand(m, H)
        op_constant = None if self.tanh_constant is None else self.tanh_constant / self.op_tanh_reduce
        for index, (_, kind, n) in enumerate(self.program):
            bias = self.fixed_bias if index == 0 else None
            if kind == "edges":
                for _ in range(n):
                    out = step(x)
                    a = decide(self._shape(self.w_soft(out), op_constant))
                    x = self.w_emb(a)
                x = self.g_emb.expand(m, H)
                continue
            # ENAS's micro cell: the two inputs' steps, then per node two inputs and two operations.
            anchors, keys = [], []
            for _ in range(2):
                out = step(x)
                anchors.append(torch.zeros(m, H))
                keys.append(self.w_attn_1(out))
            for node in range(n):
                A, K = torch.stack(anchors, 1), torch.stack(keys, 1)  # [m, node + 2, H]
                first = None
                for _ in range(2):
                    out = step(x)
                    logits = self.v_attn(torch.tanh(K + self.w_attn_2(out)[:, None])).squeeze(-1)
                    mask = None if first is None else torch.arange(node + 2)[None] != first[:, None]
                    a = decide(self._shape(logits, self.tanh_constant), mask)
                    first = a if first is None else first
                    x = A[rows, a]
                for _ in range(2):
                    out = step(x)
                    logits = self._shape(self.w_soft(out), op_constant)
                    a = decide(logits if bias is None else logits + bias)
                    x = self.w_emb(a)
                out = step(x)
                anchors.append(out)
                keys.append(self.w_attn_1(out))
                x = self.g_emb.expand(m, H)
        return ControllerSample(torch.stack(taken, 1), log_prob, entropy, probabilities, h[-1].detach())


class ENAS(SupernetStrategy):
    """ENAS's micro search on the DARTS cell space, or one operation per edge on NAS-Bench-201 (module
    docstring). A step is one step of the current phase: the epoch's first ``steps_per_epoch() -
    controller_steps`` steps train w, the last `controller_steps` train the controller."""

    name = "enas"
    paper = "Pham, Guan, Zoph, Le & Dean, Efficient Neural Architecture Search via Parameter Sharing, ICML 2018"
    plots = {"loss": ["train_loss", "oneshot_val_loss"],
             "accuracy": ["train_acc", "arch_acc", "selected_acc", "oneshot_val_acc"],
             "reward": ["reward", "baseline"], "controller entropy": ["entropy"]}
    headline = "oneshot_val_acc"

    def __init__(self, context, *, w_lr=0.05, w_lr_min=0.0005, w_momentum=0.9, w_weight_decay=2e-4, grad_clip=5.0,
                 w_nesterov=True, lstm_size=64, lstm_layers=1, init_range=0.1, controller_lr=0.0035,
                 controller_betas=(0.0, 0.999), controller_eps=1e-3, tanh_constant=1.1, op_tanh_reduce=2.5,
                 temperature=None, entropy_weight=1e-4, baseline_decay=0.99, controller_steps=30,
                 controller_aggregate=10, final_samples=10, final_batches=1, marginal_samples=1000):
        # The space first: a space ENAS cannot use is named before anything is built.
        self.program, self.ops, columns, self.none = controller_program(context.space)
        super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum,
                         w_weight_decay=w_weight_decay, grad_clip=grad_clip, w_nesterov=w_nesterov)
        for key, value in (("controller_steps", controller_steps), ("controller_aggregate", controller_aggregate),
                           ("final_samples", final_samples), ("final_batches", final_batches),
                           ("marginal_samples", marginal_samples)):
            if int(value) != value or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value}")
        self.columns = torch.tensor(columns, dtype=torch.long)
        self.controller_steps, self.controller_aggregate = int(controller_steps), int(controller_aggregate)
        self.final_samples, self.final_batches = int(final_samples), int(final_batches)
        self.marginal_samples, self.entropy_weight = int(marginal_samples), float(entropy_weight)
        self.controller = Controller(self.program, len(self.ops), lstm_size=lstm_size, lstm_layers=lstm_layers,
                                     tanh_constant=tanh_constant, op_tanh_reduce=op_tanh_reduce,
                                     temperature=temperature, init_range=init_range,
                                     biased_ops=[k for k, op in enumerate(self.ops) if op in BIASED_OPS])
        self.controller_optimizer = torch.optim.Adam(self.controller.parameters(), lr=controller_lr,
                                                     betas=tuple(controller_betas), eps=controller_eps)
        self.baseline = MovingBaseline(baseline_decay)
        self.generator = torch.Generator().manual_seed(context.seed)
        self.position = 0                    # steps taken in this epoch
        self.sums = {}                       # {metric: [sum, count]} over this epoch, per phase
        self.best, self.best_acc = None, None
        self.updates = 0                     # controller steps taken: the marginals shown change only with them
        self._marginals = None               # (updates, marginals)

    # -- the controller's samples as architectures ---------------------------------------------------
    def paths(self, actions) -> dict:
        """``{table: [m, rows]}``: the option index of every row of each table, for each row of `actions`."""
        actions = torch.as_tensor(actions, dtype=torch.long)
        m, t, out = len(actions), 0, {}
        for table, kind, n in self.program:
            if kind == "edges":
                out[table], t = self.columns[actions[:, t:t + n]], t + n
                continue
            a = torch.full((m, sum(i + 2 for i in range(n))), self.none, dtype=torch.long)
            offset = 0
            for i in range(n):
                first, second, op1, op2 = actions[:, t:t + 4].T
                a.scatter_(1, (offset + first)[:, None], self.columns[op1][:, None])
                a.scatter_(1, (offset + second)[:, None], self.columns[op2][:, None])
                offset, t = offset + i + 2, t + 4
            out[table] = a
        return out

    def path(self, paths: dict, k: int) -> dict:
        """The supernet's argument for sample `k` of `paths`, on the device."""
        return {table: a[k].to(self.context.device) for table, a in paths.items()}

    def sample(self, m: int):
        """m architectures from pi(m; theta) without gradient: ``(ControllerSample, paths)``."""
        with torch.no_grad():
            sample = self.controller.run(m, generator=self.generator)
        return sample, self.paths(sample.actions)

    # -- what it shows ------------------------------------------------------------------------------
    def marginals(self) -> dict:
        """``{table: [rows, options]}``: how often each row (edge) carries each option among
        `marginal_samples` architectures sampled by a generator of their own (seeded by the search's seed, so
        the same controller always shows the same estimate and the search's random numbers are untouched);
        for the DARTS cell, `none` is the share of samples that leave the edge out. Computed again only after
        the controller has changed."""
        if self._marginals is not None and self._marginals[0] == self.updates:
            return self._marginals[1]
        with torch.no_grad():
            sample = self.controller.run(self.marginal_samples,
                                         generator=torch.Generator().manual_seed(self.context.seed + 1))
        shapes = self.space.shapes()
        marginals = {table: F.one_hot(a, shapes[table][1]).double().mean(0)
                     for table, a in self.paths(sample.actions).items()}
        self._marginals = (self.updates, marginals)
        return marginals

    def distributions(self):
        out = {}
        for table, P in self.marginals().items():
            t = self.space.tables()[table]
            out[table] = Table(P, t.rows, t.columns, t.mask,
                               f"{t.title}: controller marginals, estimated from {self.marginal_samples} samples")
        return out

    def architecture(self):
        """The best of the samples scored at the last epoch's end; before the first, the controller's greedy
        decoding (the most likely option at every step)."""
        if self.best is not None:
            return self.best
        with torch.no_grad():
            sample = self.controller.run(1, greedy=True)
        return self.space.decode({table: a[0] for table, a in self.paths(sample.actions).items()})

    # -- one step -------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.context.streams.w.batches_per_pass + self.controller_steps

    def _record(self, metrics: dict) -> dict:
        for key, value in metrics.items():
            total = self.sums.setdefault(key, [0.0, 0])
            total[0], total[1] = total[0] + value, total[1] + 1
        return metrics

    def step(self):
        w_steps = self.context.streams.w.batches_per_pass
        metrics = self.w_phase_step() if self.position < w_steps else self.controller_step()
        self.position += 1
        return {**self._record(metrics), "lr": self.w_optimizer.lr}

    def w_phase_step(self) -> dict:
        """Phase 1: one minibatch of the w half, one architecture m ~ pi(m; theta), one SGD step on w."""
        _, paths = self.sample(1)
        return self.w_step(next(self.context.streams.w), self.path(paths, 0))

    def controller_step(self) -> dict:
        """Phase 2: `controller_aggregate` children, each rewarded by its accuracy on one minibatch of the
        architecture half (BatchNorm on the batch's statistics, as the code's ``is_training=True``) plus the
        entropy bonus; one Adam step on the REINFORCE loss."""
        M = self.controller_aggregate
        sample = self.controller.run(M, generator=self.generator)
        paths = self.paths(sample.actions)
        accs = self.path_accuracies([self.path(paths, k) for k in range(M)],
                                    [[next(self.context.streams.arch)] for _ in range(M)])
        rewards = [acc + self.entropy_weight * float(H) for acc, H in zip(accs, sample.entropy)]
        # One reward at a time, as the code's M synchronised replicas each update b before their own advantage.
        advantages = torch.cat([self.baseline.advantages([R], update_first=True) for R in rewards])
        loss = reinforce_loss(sample.log_prob, advantages)
        self.controller_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.controller_optimizer.step()
        self.updates += 1
        return {"reward": sum(rewards) / M, "arch_acc": sum(accs) / M, "baseline": self.baseline.value,
                "entropy": float(sample.entropy.mean()), "controller_loss": loss.item()}

    def end_epoch(self, epoch):
        super().end_epoch(epoch)
        self.position = 0

    def select(self) -> None:
        """The paper's answer: `final_samples` architectures from pi, each scored on `final_batches` minibatches
        of the architecture half with the shared weights (batch statistics), the best kept."""
        _, paths = self.sample(self.final_samples)
        n = self.final_samples
        accs = self.path_accuracies([self.path(paths, k) for k in range(n)],
                                    [[next(self.context.streams.arch) for _ in range(self.final_batches)]
                                     for _ in range(n)])
        k = max(range(n), key=lambda i: accs[i])  # the first of equals
        self.best_acc, self.best = accs[k], self.space.decode({table: a[k] for table, a in paths.items()})

    def validate(self):
        """Each phase's own means over the epoch (the loop divides a metric by all the epoch's steps), the
        answer's selection, and the answer alone on the validation split (`oneshot_validate`). The supernet
        under a mixture is not measured: ENAS never trains it under one."""
        means = {key: total / count for key, (total, count) in self.sums.items()}
        self.sums = {}
        self.select()
        return {**means, "selected_acc": self.best_acc, **self.oneshot_validate()}

    # -- saving and resuming ----------------------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), "controller": self.controller.state_dict(),
                "controller_optimizer": self.controller_optimizer.state_dict(),
                "baseline": self.baseline.state_dict(), "generator": self.generator.get_state(),
                "updates": self.updates, "position": self.position, "sums": {k: list(v) for k, v in self.sums.items()},
                "best": None if self.best is None else self.best.to_data(), "best_acc": self.best_acc}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.controller_optimizer.load_state_dict(state["controller_optimizer"])
        self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])
        self.updates, self._marginals = state["updates"], None
        self.position, self.sums = state["position"], {k: list(v) for k, v in state["sums"].items()}
        self.best = None if state["best"] is None else self.space.from_data(state["best"])
        self.best_acc = state["best_acc"]


# ---------------------------------------------------------------------------
# Does the controller condition on its past choices? (Adam & Lorraine 2019)
# ---------------------------------------------------------------------------

def _mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """The plug-in estimate of I(X; Y) in nats from paired samples of two discrete variables."""
    _, x = np.unique(x, return_inverse=True)
    _, y = np.unique(y, return_inverse=True)
    joint = np.zeros((x.max() + 1, y.max() + 1))
    np.add.at(joint, (x, y), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nonzero = joint > 0
    return float((joint[nonzero] * np.log(joint[nonzero] / outer[nonzero])).sum())


def controller_conditioning(controller, samples: int = 512, seed: int = 0) -> dict:
    """How much ENAS's controller conditions on its own past choices, measured on `samples` architectures
    it samples (a `Controller`, or a strategy that has one). Adam & Lorraine ("Understanding Neural
    Architecture Search Techniques", arXiv:1904.00438) found that architectures sampled from the same
    controller hidden states are no more alike than any others: the LSTM's state does not encode the
    decisions it has taken, so the policy is in effect a product of independent per-decision softmaxes.

    - ``policy_dependence``: for each decision after the first, the total variation distance between a
      sample's conditional pi(a_t | a_<t) and that decision's mean conditional over the samples, averaged
      over samples and decisions. Exactly 0 when no decision depends on the ones before (whatever the
      past, the same distribution); up to 1. ``policy_dependence_max``: the largest per-decision mean. A
      node's second input is left out: it depends on the first by construction (they must differ).
    - ``mutual_information``: the plug-in I(a_e; a_l) in nats, averaged over the pairs of an early
      decision (first half of the sequence: the normal cell) and a late one (second half: the reduction
      cell); ``mutual_information_shuffled`` is the same with the late halves permuted across samples
      (no dependence, same marginals): the estimator's bias, what independence reads as.
    - ``hidden_architecture_rho``: Spearman's rho (scipy.stats) between the distances of the LSTM's last
      outputs and the Hamming distances of the architectures, over all pairs of samples: near 0 when
      similar hidden states do not mean similar architectures.
    """
    from scipy.stats import spearmanr

    controller = getattr(controller, "controller", controller)
    if samples < 4:
        raise ValueError(f"need at least 4 samples, got {samples}")
    with torch.no_grad():
        s = controller.run(int(samples), generator=torch.Generator().manual_seed(seed))
    dependence = [float(0.5 * (P - P.mean(0)).abs().sum(1).mean())
                  for t, (P, kind) in enumerate(zip(s.probabilities, controller.kinds)) if t and kind != "second input"]
    actions = s.actions.numpy()
    T = actions.shape[1]
    early, late = range(T // 2), range(T // 2, T)
    permuted = actions[np.random.default_rng(seed).permutation(len(actions))]
    mi = [_mutual_information(actions[:, e], actions[:, t]) for e in early for t in late]
    mi_null = [_mutual_information(actions[:, e], permuted[:, t]) for e in early for t in late]
    upper = np.triu_indices(len(actions), k=1)
    hidden = torch.cdist(s.hidden, s.hidden).numpy()[upper]
    hamming = (actions[:, None, :] != actions[None, :, :]).sum(-1)[upper]
    rho = spearmanr(hidden, hamming).statistic if hidden.std() > 0 and hamming.std() > 0 else float("nan")
    return {"policy_dependence": float(np.mean(dependence)) if dependence else 0.0,
            "policy_dependence_max": float(np.max(dependence)) if dependence else 0.0,
            "mutual_information": float(np.mean(mi)), "mutual_information_shuffled": float(np.mean(mi_null)),
            "hidden_architecture_rho": float(rho), "samples": int(samples), "decisions": int(T)}

"""SNAS: Stochastic Neural Architecture Search.

Xie, Zheng, Liu & Lin, ICLR 2019 (arXiv:1812.09926); the authors' code is
SNAS-Series/SNAS-Series (``SNAS/``), whose defaults are used here.

The architecture is a random variable: on every edge (i, j) a one-hot Z_ij
drawn from a categorical distribution with unnormalised probabilities
alpha_ij, independently per edge (a fully factorised joint distribution,
Section 2.1). Node j sums its edges' operations weighted by Z (Eq. 1):

    x_j = sum_{i<j} Z_ij^T O_ij(x_i),

and the search minimises the expected loss over that distribution (Eq. 2),

    min_{alpha, w}  E_{Z ~ p_alpha(Z)} [ L(w, Z) ],

w and alpha both on the *training* batch, in the same back-propagation
(single level, unlike DARTS's bilevel problem). To take the gradient through
the sample, the one-hot Z is relaxed to the Gumbel-softmax (concrete)
distribution (Eq. 3, the paper writes lambda for the temperature tau):

    Z_ij^k = softmax_k( (log alpha_ij^k + G_ij^k) / tau ),   G = -log(-log U),  U ~ Uniform(0, 1),

so that Z is a differentiable function of alpha and of independent noise G
(the reparameterisation trick); as tau -> 0, Z becomes a one-hot sample of
the categorical distribution with probabilities softmax(log alpha). The
resulting gradient is the paper's search gradient (Section 2.3). One Z is
drawn per step and shared by every cell of a type, as the authors' code does.
Here `alpha` holds log alpha (the logits), as the code's ``log_alpha``, so
the distribution shown (theta) is softmax(alpha) per edge.

One step (the code's ``train``): draw Z, compute the loss of the supernet
under Z on one training batch (plus the resource term below), one
``backward()``, then a step on w (SGD, clipped at 5) and a step on alpha
(plain SGD, the code's optimizer on one GPU; its gradient clipped at norm 10).

Temperature (the code's ``utils.Temp_Scheduler`` with ``--temp_annealing``,
as its README runs it): linear from tau0 = 1 to tau_min = 0.03 over the
search, the scheduler stepped at the start of each epoch, so epoch e uses

    tau(e) = max(tau_min, tau_min + (1 - (e + 1) / E) (tau0 - tau_min)).

The code hard-codes E = 150 whatever ``--epochs`` says; here E is the
search's epochs (`temperature_epochs` to set it), which is the code's
schedule for its README's 150-epoch search; ``temperature_epochs=150`` is
the code's literal behaviour at any length (a short search then stays near
tau0, Z soft).

Resource constraint (Section 2.4): a locally decomposable cost C(Z) =
sum_ij C(Z_ij), linear in Z on each edge, added to the loss with a
coefficient, ``L(w, Z) + lambda_R * C(Z)``, its gradient through the same
reparameterised Z (the code's ``--method reparametrization``). The cost of
an operation on an edge comes from the space (`SearchSpace.costs`:
parameters and FLOPs of each option, summed over the cells that share the
edge; the code adds memory access cost, which nasedu does not count). With
``log_penalty`` (the code's ``--log_penalty``, as its README runs it) the
cost of edge e is the mean over cost kinds m of log(max(1, sum_k c_e^{m,k} Z_e^k)),
so that lambda_R does not depend on the units or on the network's size;
without it, each kind's Z-weighted cost divided by the cost of the most
expensive architecture. The constraint is **off by default**
(``resource_lambda=0``), as in the code, where ``--resource_efficient`` is
off unless given; its README searches with lambda_R = 1.5e-3 and the log penalty.

Defaults are the code's (``train_search.py``): w by SGD 0.025 cosine to
0.001, momentum 0.9, weight decay 3e-4, clipping at 5; alpha by SGD 3e-4,
clipped at norm 10, initialised log alpha ~ N(1, 0.01^2); tau from 1 to 0.03.

A short search (`paper_steps`): plain SGD moves alpha by alpha_lr times its
gradient per step, so a search of S steps at the paper's rate moves alpha
about S / 117,300 as far as the paper's (150 epochs of 50,000 images at
batch 64: 150 x 782 steps). Given ``paper_steps``, the rate becomes
``alpha_lr * paper_steps / S``, S this search's steps (epochs x steps per
epoch), so that alpha can travel as far in total; the quick budget sets it.

What is not copied from the code: the Gumbel noise is drawn with U kept
away from 0 (the code takes log u unguarded); the temperature period follows
the search's epochs instead of a hard-coded 150; the default resource
method of its argparse (``policy_gradient``, whose log-density hard-codes
log 7! for eight operations) is not used, only the reparameterised one its
README runs. Drop-path (0.3 in the code) is not applied: the supernet has none.
The derived architecture is the space's rule read on theta (in the DARTS cell
two edges per node, `none` excluded; in NAS-Bench-201 the most probable
operation of every edge, `none` included); the code's child networks keep
every edge of the cell (``genotype_edge_all``), which the DARTS cell's
genotypes cannot express.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SupernetStrategy, accuracy, alpha_state, load_alpha_state

__all__ = ["SNAS", "gumbel_softmax_sample", "temperature_schedule", "RESOURCE_COSTS"]

# The cost kinds a resource term can use (the code's ``--separation``: size, flops, mac, or all three).
RESOURCE_COSTS = {"all": ("params", "flops"), "params": ("params",), "flops": ("flops",)}


def gumbel_softmax_sample(alpha: torch.Tensor, temperature: float, generator: torch.Generator | None = None):
    """Z = softmax((alpha + G) / tau) over the last axis, G standard Gumbel noise
    (SNAS Eq. 3, with alpha = log alpha). The noise is drawn on the CPU from
    `generator` (so a saved generator state reproduces it on any device) and
    is a constant of the graph: the gradient reaches `alpha` only."""
    u = torch.rand(alpha.shape, generator=generator, dtype=torch.float32)
    # U = 0 would give G = -inf (the authors' code takes log u unguarded); torch.rand never returns 1.
    u = u.clamp_min(torch.finfo(u.dtype).tiny)
    G = -torch.log(-torch.log(u)).to(device=alpha.device, dtype=alpha.dtype)
    return F.softmax((alpha + G) / temperature, dim=-1)


def temperature_schedule(epoch: int, epochs: int, temperature: float = 1.0, temperature_min: float = 0.03) -> float:
    """tau of epoch `epoch` (0-based) of `epochs`: the code's linear annealing,
    stepped at the start of the epoch (so epoch e uses e + 1), floored at tau_min."""
    tau = temperature_min + (1 - (epoch + 1) / epochs) * (temperature - temperature_min)
    return max(temperature_min, tau)


class SNAS(SupernetStrategy):
    name = "snas"
    paper = "Xie, Zheng, Liu & Lin, SNAS: Stochastic Neural Architecture Search, ICLR 2019"
    plots = {"loss": ["train_loss", "supernet_val_loss", "oneshot_val_loss"],
             "accuracy": ["train_acc", "supernet_val_acc", "oneshot_val_acc"],
             "temperature": ["temperature"]}

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 alpha_lr=3e-4, alpha_grad_clip=10.0, alpha_init_mean=1.0, alpha_init_std=0.01, temperature=1.0,
                 temperature_min=0.03, temperature_epochs=None, resource_lambda=0.0, resource_cost="all",
                 log_penalty=True, paper_steps=None):
        problems = []
        if not 0 < temperature_min <= temperature:
            problems.append(f"0 < temperature_min <= temperature (got {temperature_min} and {temperature})")
        if temperature_epochs is not None and temperature_epochs < 1:
            problems.append(f"temperature_epochs >= 1 or None (got {temperature_epochs})")
        if alpha_lr <= 0 or alpha_init_std < 0 or (alpha_grad_clip is not None and alpha_grad_clip <= 0):
            problems.append(f"alpha_lr > 0, alpha_init_std >= 0 and alpha_grad_clip > 0 or None "
                            f"(got {alpha_lr}, {alpha_init_std}, {alpha_grad_clip})")
        if paper_steps is not None and paper_steps < 1:
            problems.append(f"paper_steps >= 1 or None (got {paper_steps})")
        if resource_lambda < 0:
            problems.append(f"resource_lambda >= 0 (got {resource_lambda})")
        if resource_cost not in RESOURCE_COSTS:
            problems.append(f"resource_cost one of {sorted(RESOURCE_COSTS)} (got {resource_cost!r})")
        if problems:
            raise ValueError("SNAS needs " + "; ".join(problems))
        super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum, w_weight_decay=w_weight_decay,
                         grad_clip=grad_clip)
        # alpha = log alpha of the paper: one row of logits per decision of each table of the space.
        self.alpha = {name: nn.Parameter(alpha_init_mean + alpha_init_std * torch.randn(shape, device=context.device))
                      for name, shape in self.space.shapes().items()}
        if paper_steps:  # a short search's alpha travels as far in total as the paper's (module docstring)
            alpha_lr = alpha_lr * paper_steps / (context.epochs * self.steps_per_epoch())
        self.alpha_lr = float(alpha_lr)
        self.alpha_optimizer = torch.optim.SGD(list(self.alpha.values()), lr=alpha_lr)
        self.alpha_grad_clip = alpha_grad_clip
        self.temperature0, self.temperature_min = float(temperature), float(temperature_min)
        self.temperature_epochs = int(temperature_epochs or context.epochs)
        self.resource_lambda, self.log_penalty = float(resource_lambda), bool(log_penalty)
        self.resource_kinds = RESOURCE_COSTS[resource_cost]
        self.costs = self._costs() if self.resource_lambda > 0 else None
        if self.costs is not None:
            self.plots = {**type(self).plots, "resource": ["resource"]}
            # Without the log: each kind's cost as a share of the most expensive architecture (every row's dearest).
            self._largest = {kind: max(1.0, float(sum(c.max(dim=-1).values.sum() for c in self.costs[kind].values())))
                             for kind in self.resource_kinds}
        # The Gumbel noise: its own generator, saved with the search, so a resumed search draws the same Z.
        self.generator = torch.Generator().manual_seed(context.seed)

    def _costs(self) -> dict:
        """``{kind: {table: [rows, options]}}``: each option's cost on each row (float32, on the device)."""
        data = self.context.data
        costs = self.space.costs(self.context.num_classes, self.context.in_channels, data.image_size)
        return {kind: {t: c.float().to(self.context.device) for t, c in costs[kind].items()}
                for kind in self.resource_kinds}

    # -- the distribution -----------------------------------------------------------------
    @property
    def temperature(self) -> float:
        """tau of the current epoch (a function of the epoch, so it resumes with the weight schedule)."""
        return temperature_schedule(self.epoch, self.temperature_epochs, self.temperature0, self.temperature_min)

    def theta(self) -> dict:
        """softmax(alpha) per row: the categorical distribution p_alpha of each decision."""
        return {name: F.softmax(a.detach(), dim=-1) for name, a in self.alpha.items()}

    def sample(self) -> dict:
        """One relaxed sample Z per table (Eq. 3), differentiable in alpha."""
        return {name: gumbel_softmax_sample(a, self.temperature, self.generator) for name, a in self.alpha.items()}

    def mixture(self):
        """The supernet is validated under theta = E[one-hot Z], the limit of E[Z] as tau -> 0."""
        return self.theta()

    def distributions(self):
        return {k: self.space.table(k, v) for k, v in self.theta().items()}

    def architecture(self):
        return self.space.derive({k: v.double().cpu() for k, v in self.theta().items()})

    # -- the resource term (Section 2.4) ----------------------------------------------------
    def resource(self, Z: dict) -> torch.Tensor:
        """C(Z): the sum over edges of each edge's cost under Z (see the module docstring)."""
        terms = []
        for name, z in Z.items():
            per_kind = [(self.costs[kind][name] * z.float()).sum(-1) for kind in self.resource_kinds]  # [rows] each
            if self.log_penalty:
                # The code replaces costs below 1 by 1 (log 0 = no term, no gradient), then averages the kinds' logs.
                terms.append(torch.stack([torch.log(torch.clamp(c, min=1.0)) for c in per_kind]).mean(0).sum())
            else:
                terms.append(torch.stack([c.sum() / self._largest[kind] for kind, c in
                                          zip(self.resource_kinds, per_kind)]).mean())
        return sum(terms)

    # -- one step -----------------------------------------------------------------------------
    def step(self):
        """w and alpha from the same training batch and one backward pass (single level)."""
        x, y = next(self.context.streams.train)
        tau = self.temperature
        Z = self.sample()
        self.w_optimizer.zero_grad()
        self.alpha_optimizer.zero_grad(set_to_none=True)
        loss, logits = self.loss(x, y, Z)
        total = loss
        metrics = {}
        if self.resource_lambda > 0:
            C = self.resource(Z)
            total = loss + self.resource_lambda * C
            metrics["resource"] = C.item()
        total.backward()
        alphas = list(self.alpha.values())
        for a in alphas:  # a table the network never uses (no normal cell when layers=2) gets a zero gradient
            if a.grad is None:
                a.grad = torch.zeros_like(a)
        if self.alpha_grad_clip:
            nn.utils.clip_grad_norm_(alphas, self.alpha_grad_clip)
        self.w_optimizer.step()
        self.alpha_optimizer.step()
        return {"train_loss": loss.item(), "train_acc": accuracy(logits, y), **metrics, "temperature": tau,
                "lr": self.w_optimizer.lr}

    def steps_per_epoch(self) -> int:
        """One pass over the whole training split: SNAS has no separate architecture half."""
        return self.context.streams.train.batches_per_pass

    # -- saving and resuming ----------------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), **alpha_state(self.alpha, self.alpha_optimizer),
                "generator": self.generator.get_state(),
                # tau follows from the epoch (in the weight schedule's state); kept to read a checkpoint by eye.
                "temperature": self.temperature}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        load_alpha_state(self.alpha, self.alpha_optimizer, state)
        self.generator.set_state(state["generator"])

"""DARTS: Differentiable Architecture Search, first and second order.

Liu, Simonyan & Yang, ICLR 2019 (arXiv:1806.09055).

Each edge mixes every operation with weights softmax(alpha) (Eq. 1), which
turns the choice of architecture into the bilevel problem (Eq. 3-4)

    min_alpha  L_val(w*(alpha), alpha)   s.t.  w*(alpha) = argmin_w L_train(w, alpha).

Algorithm 1 alternates two gradient steps. The first-order approximation sets
xi = 0 in Eq. 6, so the architecture gradient is simply grad_alpha L_val(w, alpha)
at the current weights:

    alpha <- alpha - eta_alpha * grad_alpha L_val(w, alpha)      (Adam)
    w     <- w     - eta_w     * grad_w     L_train(w, alpha)    (SGD, momentum)

`unrolled=True` is the second order (xi > 0, Eq. 7-8): alpha descends
grad_alpha L_val(w', alpha) with w' = w - xi (grad_w L_train + weight decay +
momentum), one step of the w optimizer unrolled as it would take it (xi its
current learning rate), the mixed second derivative by the central finite
difference of Eq. 8 (`nasedu.hypergrad.darts_unrolled`, the authors'
`Architect`), in float32 even under autocast. It replaces `alpha_gradient`
and nothing else. One difference from the authors' code: the extra forward
passes of the finite difference leave BatchNorm's running statistics alone
(`untracked_batch_norm`); the gradients are the same, since in training
BatchNorm normalises with the batch's statistics either way.

Defaults are the paper's (Section A.1.1): w by SGD, momentum 0.9, learning
rate 0.025 annealed by a cosine schedule to 0.001, weight decay 3e-4, gradient
clipping at 5; alpha by Adam, learning rate 3e-4, momentum (0.5, 0.999),
weight decay 1e-3; alpha initialised at 1e-3 * N(0, 1) (the authors' code).

`alpha_optimizer` (the study of notebook 07: is the paper's Adam the right
choice?): every choice descends the same gradient with the same weight decay
(`alpha_weight_decay`, 1e-3, added to the gradient) and takes its step size
from `alpha_lr`:

- ``"adam"`` (the paper's): Adam, betas `alpha_betas` = (0.5, 0.999), lr `alpha_lr`;
- ``"rmsprop"``: RMSProp (Tieleman & Hinton 2012; torch's, smoothing 0.99,
  eps 1e-8, no momentum), lr `alpha_lr`. Adam and RMSProp both divide the
  gradient by its running RMS, so one learning rate moves each entry of alpha
  by about that much per step whatever the gradient's scale. RMSProp has no
  bias correction: its first steps are up to 1/sqrt(1 - 0.99) = 10 times
  longer, about equal after a hundred steps;
- ``"sgd"``: plain SGD, lr `alpha_sgd_lr`;
- ``"momentum"``: SGD with momentum `alpha_momentum` (0.9) in the averaging
  form (dampening = momentum: the buffer is a running mean of gradients, as
  Adam's first moment is), so under a steady gradient its step equals SGD's.

SGD's step is lr * gradient, so its learning rate must carry the gradient's
scale: `alpha_sgd_lr` defaults to ``alpha_lr / ALPHA_GRADIENT_RMS``, the RMS per
entry of grad_alpha L_val measured over quick searches (median 0.015 on
NAS-Bench-201, 0.009 on the DARTS cell, both about 1e-2), so that every
optimizer starts with steps of about `alpha_lr`, and a budget that scales
`alpha_lr` scales them all. The same settings serve every variant of DARTS
(SDARTS, DARTS-, beta-DARTS subclass it). The Adam optimizer's state is as
before, so older checkpoints load.

Collapse, measured (`nasedu.diagnostics`, Zela et al., ICLR 2020): every
epoch's record holds the derived architecture's `skip_count` and
`param_free_count` and the `discretisation_gap` (supernet_val_acc -
oneshot_val_acc), all read off what validation computes anyway (free).
``diagnostics=True`` adds the dominant eigenvalue of the Hessian of L_val in
alpha (``hessian_eigenvalue``, every `eigenvalue_every` epochs and at the last,
by `eigenvalue_iterations` power iterations on Hessian-vector products, on the
first batch of the architecture half so that the curve follows one fixed
loss; ``hessian_seconds`` is its cost) and panels for these to the dashboard.

`warmup_epochs`: the first epochs train w alone, alpha frozen at its initial
(uniform) mixture, as PC-DARTS (15 of 50 epochs, Xu et al., ICLR 2020) and
P-DARTS (10 of 25 per stage, Chen et al., ICCV 2019) do; the paper's DARTS
has none (0), the quick budget uses it so that alpha follows trained weights
instead of the noise of freshly initialised ones.

Nothing here is specific to the DARTS cell: alpha has one row per decision of
each table of the search space (``normal`` and ``reduce`` for the DARTS cell,
``cell`` for NAS-Bench-201), and the space derives the discrete architecture.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..data import iterate
from ..diagnostics import collapse_metrics, hessian_eigenvalue
from ..hypergrad import Bilevel, darts_unrolled
from ..training import untracked_batch_norm
from .base import SupernetStrategy, accuracy, alpha_state, load_alpha_state

__all__ = ["DARTS", "ALPHA_OPTIMIZERS", "ALPHA_GRADIENT_RMS", "make_alpha_optimizer"]

ALPHA_OPTIMIZERS = ("adam", "rmsprop", "momentum", "sgd")
# The RMS per entry of grad_alpha L_val in quick DARTS searches (median over the search; module docstring):
# what converts a step size into SGD's learning rate.
ALPHA_GRADIENT_RMS = 1e-2


def make_alpha_optimizer(name, parameters, *, lr, sgd_lr, betas, momentum, weight_decay):
    """The optimizer of alpha called `name` (`ALPHA_OPTIMIZERS`), with the settings of the module docstring."""
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, alpha=0.99, eps=1e-8, weight_decay=weight_decay)
    if name == "momentum":
        return torch.optim.SGD(parameters, lr=sgd_lr, momentum=momentum, dampening=momentum,
                               weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=sgd_lr, weight_decay=weight_decay)
    raise ValueError(f"unknown alpha_optimizer {name!r}; choose one of {', '.join(ALPHA_OPTIMIZERS)}")


class DARTS(SupernetStrategy):
    name = "darts"
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019"

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 alpha_lr=3e-4, alpha_betas=(0.5, 0.999), alpha_weight_decay=1e-3, alpha_init_scale=1e-3,
                 warmup_epochs=0, unrolled=False, alpha_optimizer="adam", alpha_sgd_lr=None, alpha_momentum=0.9,
                 diagnostics=False, eigenvalue_every=1, eigenvalue_iterations=20):
        super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum, w_weight_decay=w_weight_decay,
                         grad_clip=grad_clip)
        # alpha: one logit per (row, option) of each table (alphas_normal and alphas_reduce for the DARTS cell).
        self.alpha = {name: nn.Parameter(alpha_init_scale * torch.randn(shape, device=context.device))
                      for name, shape in self.space.shapes().items()}
        if not 0 <= warmup_epochs < context.epochs:
            raise ValueError(f"warmup_epochs must be at least 0 and less than the search's {context.epochs} epochs, "
                             f"got {warmup_epochs}")
        self.warmup_epochs = int(warmup_epochs)
        self.unrolled = bool(unrolled)
        self.alpha_optimizer = make_alpha_optimizer(
            alpha_optimizer, list(self.alpha.values()), lr=alpha_lr, betas=alpha_betas, momentum=alpha_momentum,
            sgd_lr=alpha_lr / ALPHA_GRADIENT_RMS if alpha_sgd_lr is None else alpha_sgd_lr,
            weight_decay=alpha_weight_decay)
        if eigenvalue_every < 0 or eigenvalue_iterations < 1:
            raise ValueError(f"need eigenvalue_every >= 0 and eigenvalue_iterations >= 1, got {eigenvalue_every} "
                             f"and {eigenvalue_iterations}")
        self.diagnostics = bool(diagnostics)
        self.eigenvalue_every, self.eigenvalue_iterations = int(eigenvalue_every), int(eigenvalue_iterations)
        if self.diagnostics:
            self.plots = {**self.plots, "accuracy": self.plots["accuracy"] + ["true_acc", "discretisation_gap"],
                          "collapse": ["skip_count", "param_free_count"], "Hessian eigenvalue": ["hessian_eigenvalue"]}

    # -- the architecture ----------------------------------------------------
    def probabilities(self) -> dict:
        """softmax(alpha) per row (detached): what the strategy shows and derives from."""
        return {name: F.softmax(a.detach(), dim=-1) for name, a in self.alpha.items()}

    def arch_weights(self, alpha=None) -> dict:
        """The supernet's architecture argument as a function of alpha: softmax(alpha) per
        row, the mixing weights of Eq. 1 (a variant changes this, e.g. DARTS- adds its skip)."""
        return {name: F.softmax(a, dim=-1) for name, a in (alpha or self.alpha).items()}

    def mixture(self):
        return {k: v.detach() for k, v in self.arch_weights().items()}

    def distributions(self):
        return {k: self.space.table(k, v) for k, v in self.probabilities().items()}

    def architecture(self):
        return self.space.derive({k: v.double().cpu() for k, v in self.probabilities().items()})

    # -- one step of Algorithm 1 ---------------------------------------------
    def bilevel(self) -> Bilevel:
        """The search as a `nasedu.hypergrad.Bilevel` problem: the supernet's
        cross-entropy as a function of its weights `w` and of `alpha` (dicts of
        tensors), on a batch ``(x, y)``; L_train and L_val differ only in the batch."""
        def loss(w, alpha, batch):
            x, y = batch
            logits = torch.func.functional_call(self.supernet, w, (x, self.arch_weights(alpha)))
            half = logits.dtype in (torch.float16, torch.bfloat16)
            return F.cross_entropy(logits.float() if half else logits, y)
        return Bilevel(loss, loss)

    def on_bilevel(self, function):
        """``function(problem, w, alpha)`` on `bilevel()` at the current w and alpha
        (detached), BatchNorm on batch statistics and untracked (torch.func needs a
        pure function), in float32 even under autocast."""
        w = {name: p.detach() for name, p in self.supernet.named_parameters()}
        alpha = {k: a.detach() for k, a in self.alpha.items()}
        with untracked_batch_norm(self.supernet), self.context.precision.float32():
            return function(self.bilevel(), w, alpha)

    def estimated_gradient(self, x_val, y_val, estimate):
        """alpha's gradient by ``estimate(problem, w, alpha)``, a `nasedu.hypergrad`
        estimator (`on_bilevel`), and the validation loss and accuracy at w."""
        grads = self.on_bilevel(estimate)
        with torch.no_grad():
            loss, logits = self.loss(x_val, y_val, self.arch_weights())
        return [grads[k] for k in self.alpha], loss.detach(), accuracy(logits, y_val)

    def unrolled_gradient(self, x_val, y_val, train_batch):
        """Second order (Eq. 7-8) by `darts_unrolled`, unrolling the w optimizer's next step."""
        opt = self.w_optimizer
        buffers = {name: opt.momentum_buffer(p) for name, p in self.supernet.named_parameters()}
        return self.estimated_gradient(x_val, y_val, lambda problem, w, alpha: darts_unrolled(
            problem, w, alpha, train_batch, (x_val, y_val), xi=opt.lr, momentum=opt.momentum,
            weight_decay=opt.weight_decay, momentum_buffer=buffers))

    def alpha_gradient(self, x_val, y_val, train_batch=None):
        """First order: grad_alpha L_val(w, alpha) at the current w (Eq. 6, xi = 0).
        Only alpha needs a gradient, so autograd skips every weight gradient.
        Second order (`unrolled`): `unrolled_gradient` on `train_batch`."""
        if self.unrolled:
            return self.unrolled_gradient(x_val, y_val, train_batch)
        loss, logits = self.loss(x_val, y_val, self.arch_weights())
        alphas = list(self.alpha.values())
        # A table the network never uses (no normal cell when layers=2) gets a zero gradient.
        grads = torch.autograd.grad(loss, alphas, allow_unused=True)
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads)]
        return grads, loss.detach(), accuracy(logits, y_val)

    def step(self):
        streams = self.context.streams
        if self.epoch < self.warmup_epochs:  # w alone under the initial mixture
            return {**self.w_step(next(streams.w), self.mixture()), "lr": self.w_optimizer.lr}
        # 1. Update alpha by descending grad_alpha L_val(w - xi grad_w L_train(w, alpha), alpha)
        #    (xi = 0 in first order; second order unrolls on the batch the w step then takes, as the authors' code).
        x_val, y_val = next(streams.arch)
        train_batch = next(streams.w)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        grads, arch_loss, arch_acc = self.alpha_gradient(x_val, y_val, train_batch)
        for a, g in zip(self.alpha.values(), grads):
            a.grad = g
        self.alpha_optimizer.step()
        # 2. Update w by descending grad_w L_train(w, alpha), alpha held fixed.
        metrics = self.w_step(train_batch, self.mixture())
        return {**metrics, "arch_loss": arch_loss.item(), "arch_acc": arch_acc, "lr": self.w_optimizer.lr}

    # -- what collapse looks like (nasedu.diagnostics) ------------------------
    def hessian_eigenvalue(self, iterations=None) -> float:
        """The dominant eigenvalue of grad^2_alpha L_val(w, alpha) at the current w
        (Zela et al. 2020), on the first batch of the architecture half, by power
        iteration from a start seeded by the search's seed (the search's own random
        numbers are untouched)."""
        x, y = next(iterate(self.context.streams.arch.dataset, self.context.batch_size, self.context.device))
        generator = torch.Generator().manual_seed(self.context.seed)
        return self.on_bilevel(lambda problem, w, alpha: hessian_eigenvalue(
            problem.outer, w, alpha, (x, y), iterations=iterations or self.eigenvalue_iterations,
            generator=generator))

    def validate(self):
        record = super().validate()
        record.update(collapse_metrics(self.space, self.architecture(), record))
        every, done = self.eigenvalue_every, self.epoch
        if self.diagnostics and every and (done % every == 0 or done == self.context.epochs):
            start = time.perf_counter()
            record["hessian_eigenvalue"] = self.hessian_eigenvalue()
            record["hessian_seconds"] = time.perf_counter() - start
        return record

    # -- saving and resuming -------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), **alpha_state(self.alpha, self.alpha_optimizer)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        load_alpha_state(self.alpha, self.alpha_optimizer, state)

"""DARTS: Differentiable Architecture Search, first order.

Liu, Simonyan & Yang, ICLR 2019 (arXiv:1806.09055).

Each edge mixes every operation with weights softmax(alpha) (Eq. 1), which
turns the choice of architecture into the bilevel problem (Eq. 3-4)

    min_alpha  L_val(w*(alpha), alpha)   s.t.  w*(alpha) = argmin_w L_train(w, alpha).

Algorithm 1 alternates two gradient steps. The first-order approximation sets
xi = 0 in Eq. 6, so the architecture gradient is simply grad_alpha L_val(w, alpha)
at the current weights:

    alpha <- alpha - eta_alpha * grad_alpha L_val(w, alpha)      (Adam)
    w     <- w     - eta_w     * grad_w     L_train(w, alpha)    (SGD, momentum)

The second-order gradient (xi > 0, the finite-difference Hessian-vector
product of Eq. 8) belongs to the hypergradients notebook; it replaces
`alpha_gradient` and nothing else.

Defaults are the paper's (Section A.1.1): w by SGD, momentum 0.9, learning
rate 0.025 annealed by a cosine schedule to 0.001, weight decay 3e-4, gradient
clipping at 5; alpha by Adam, learning rate 3e-4, momentum (0.5, 0.999),
weight decay 1e-3; alpha initialised at 1e-3 * N(0, 1) (the authors' code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..genotypes import derive_genotype
from .base import Strategy, accuracy

__all__ = ["DARTS"]


class DARTS(Strategy):
    name = "darts"
    paper = "Liu, Simonyan & Yang, DARTS: Differentiable Architecture Search, ICLR 2019"

    def __init__(self, supernet, *, epochs, steps_per_epoch, device="cpu", amp=False,
                 w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 alpha_lr=3e-4, alpha_betas=(0.5, 0.999), alpha_weight_decay=1e-3, alpha_init_scale=1e-3):
        super().__init__(supernet, epochs=epochs, steps_per_epoch=steps_per_epoch, device=device, amp=amp)
        self._hparams = dict(w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum, w_weight_decay=w_weight_decay,
                             grad_clip=grad_clip, alpha_lr=alpha_lr, alpha_betas=list(alpha_betas),
                             alpha_weight_decay=alpha_weight_decay, alpha_init_scale=alpha_init_scale)
        shape = supernet.arch_shape
        # alpha: one logit per (edge, operation), for the normal and the reduction cell.
        self.alpha_normal = torch.nn.Parameter(alpha_init_scale * torch.randn(shape, device=self.device))
        self.alpha_reduce = torch.nn.Parameter(alpha_init_scale * torch.randn(shape, device=self.device))
        self.w_optimizer = torch.optim.SGD(supernet.parameters(), lr=w_lr, momentum=w_momentum,
                                           weight_decay=w_weight_decay)
        self.w_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optimizer, T_max=epochs, eta_min=w_lr_min)
        self.alpha_optimizer = torch.optim.Adam([self.alpha_normal, self.alpha_reduce], lr=alpha_lr,
                                                betas=tuple(alpha_betas), weight_decay=alpha_weight_decay)
        self.grad_clip = grad_clip

    # -- the architecture ----------------------------------------------------
    def arch_weights(self, alpha_normal=None, alpha_reduce=None) -> dict:
        """softmax(alpha) per edge: the mixing weights of Eq. 1."""
        a_n = self.alpha_normal if alpha_normal is None else alpha_normal
        a_r = self.alpha_reduce if alpha_reduce is None else alpha_reduce
        return {"normal": F.softmax(a_n, dim=-1), "reduce": F.softmax(a_r, dim=-1)}

    def eval_architecture(self):
        return {k: v.detach() for k, v in self.arch_weights().items()}

    def probabilities(self):
        return {k: v.detach().float().cpu() for k, v in self.arch_weights().items()}

    def genotype(self):
        sn = self.supernet
        return derive_genotype(self.alpha_normal, self.alpha_reduce, sn.steps, sn.multiplier, sn.primitives)

    # -- one step of Algorithm 1 ---------------------------------------------
    def alpha_gradient(self, x_val, y_val):
        """First order: grad_alpha L_val(w, alpha) at the current w (Eq. 6, xi = 0).
        Only alpha needs a gradient, so autograd skips every weight gradient."""
        with self.autocast():
            logits = self.supernet(x_val, self.arch_weights())
            loss = F.cross_entropy(logits.float(), y_val)
        alphas = [self.alpha_normal, self.alpha_reduce]
        # A network with no normal cell (layers=2) never uses alpha_normal: its gradient is zero.
        grads = torch.autograd.grad(loss, alphas, allow_unused=True)
        grads = tuple(torch.zeros_like(a) if g is None else g for a, g in zip(alphas, grads))
        return grads, loss.detach(), accuracy(logits, y_val)

    def step(self, train_batch, arch_batch):
        (x_train, y_train), (x_val, y_val) = train_batch, arch_batch
        # 1. Update alpha by descending grad_alpha L_val(w - xi grad_w L_train(w, alpha), alpha), xi = 0.
        self.alpha_optimizer.zero_grad(set_to_none=True)
        (g_normal, g_reduce), arch_loss, arch_acc = self.alpha_gradient(x_val, y_val)
        self.alpha_normal.grad, self.alpha_reduce.grad = g_normal, g_reduce
        self.alpha_optimizer.step()
        # 2. Update w by descending grad_w L_train(w, alpha), alpha held fixed.
        self.w_optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            logits = self.supernet(x_train, self.eval_architecture())
            loss = F.cross_entropy(logits.float(), y_train)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.supernet.parameters(), self.grad_clip)
        self.w_optimizer.step()
        return {"train_loss": loss.item(), "train_acc": accuracy(logits, y_train),
                "arch_loss": arch_loss.item(), "arch_acc": arch_acc, "lr": self.w_optimizer.param_groups[0]["lr"]}

    def end_epoch(self, epoch):
        self.w_scheduler.step()

    # -- saving and resuming -------------------------------------------------
    def hyperparameters(self):
        return dict(self._hparams)

    def state_dict(self):
        return {"alpha_normal": self.alpha_normal.detach().clone(), "alpha_reduce": self.alpha_reduce.detach().clone(),
                "w_optimizer": self.w_optimizer.state_dict(), "w_scheduler": self.w_scheduler.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.alpha_normal.copy_(state["alpha_normal"])
            self.alpha_reduce.copy_(state["alpha_reduce"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])
        self.w_scheduler.load_state_dict(state["w_scheduler"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])

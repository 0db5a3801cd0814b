"""NASP: Efficient Neural Architecture Search via Proximal Iterations.

Yao, Xu, Tu & Zhu, AAAI 2020 (arXiv:1905.13577); the authors' code is
AutoML-Research/NASP (``codes/``, no licence: read, not copied), whose
defaults are used here.

DARTS trains every operation of every edge and keeps one at the end. NASP
keeps the architecture discrete during the search: it solves DARTS's bilevel
problem with the constraint that each edge carries one operation,

    min_alpha L_val(w*(alpha), alpha)  s.t.  w* = argmin_w L_train(w, alpha),  alpha in C1 (discrete),

and handles the constraint by proximal iterations. Two sets are used: C1,
the discrete architectures (one operation per edge, a one-hot row; in the
DARTS cell also two edges kept per node), and C2 = [0, 1]^{edges x ops}, the
box around it. The continuous alpha is kept in C2; the network only ever
runs at its projection onto C1. One step (Algorithm 2; the code's
``Architect.step``, ``model.clip`` and the weight step of ``train``):

    1. alpha_bar = prox_C1(alpha)                                (the discrete architecture)
    2. alpha <- prox_C2(alpha - eps grad_{alpha_bar} L_val(w, alpha_bar))   (Adam, then clip to [0, 1])
    3. alpha_bar = prox_C1(alpha)                                (refreshed)
    4. w <- w - eta grad_w L_train(w, alpha_bar)                  (SGD on the discrete architecture)

prox_C2 is clipping to the box (the code's ``Hardtanh(0, 1)`` after the Adam
step). prox_C1 keeps the largest entry of each row; in the DARTS cell it also
keeps the two incoming edges of each node whose kept entry is largest (the
code's ``binarization``). That is exactly the space's derivation rule read on
alpha itself (`SearchSpace.derive`: the DARTS rule in the DARTS cell, argmax
per edge in NAS-Bench-201), so prox_C1(alpha) = ``space.encode(space.derive(alpha))``
and the architecture NASP reports is the one it trains. Ties (alpha starts at
0.5 everywhere and many entries sit at exactly 0 or 1 after clipping) go to
the lower index, as the code's stable sort and argmax do.

What is computed where:

- step 4 runs the supernet's hard path (one operation index per edge): only
  the chosen operation of each edge is computed, forward and backward, and
  only its weights get a gradient. This is NASP's saving over DARTS.
- step 2 needs grad L_val with respect to every entry of alpha_bar, also the
  zero ones: d L / d alpha_bar[e, k] = <dL/d x_e, o_k(x_e)> needs the output of
  every operation o_k on edge e. So it runs the supernet's mixture with
  alpha_bar's one-hot rows as weights (the same forward value as the hard
  path), as the code's ``updateType="alphas"`` does. A step therefore costs
  one mixture and one hard path, against DARTS's two mixtures.

`none` (the zero operation) gets no gradient from the loss: d L / d
alpha_bar[e, none] = <dL/d x_e, 0> = 0 whatever the data, so NASP cannot learn
whether an edge should be empty; its alpha only drifts with the weight decay.
Worse, in NAS-Bench-201 (where `none` is option 0) the initial tie at 0.5
would pick `none` on every edge, a cell whose output is zero, where every
gradient is zero and the search never moves. The authors' search spaces have
no `none`; so by default (``allow_none=False``) prox_C1 picks among the other
operations: in NAS-Bench-201 every edge carries an operation, and in the DARTS
cell, whose rule never picks `none` on a kept edge, nothing changes (the
edges left out of a node still run as `none`). ``allow_none=True`` lets
prox_C1 pick it, to see the problem.

Optional (the AAAI version's model-complexity regulariser, the code's
``--l2``, default 0): `complexity_weight` adds
``complexity_weight * sum b[e, k] alpha_bar[e, k]^2`` to L_val in step 2,
b[e, k] the share of the parameters of the row's options that option k holds
(from `SearchSpace.costs`). The code applies it to the normal cell only and
with fixed per-operation counts; here every table, with the space's counts.
The code's ``--greedy`` (a random architecture with some probability) is
left out: its default is 0.

Defaults are the code's (``train_search.py``, DARTS's): w by SGD 0.025 cosine
to 0.001, momentum 0.9, weight decay 3e-4, clipping at 5; alpha by Adam 3e-4,
betas (0.5, 0.999), weight decay 1e-3, initialised at 0.5; a fresh batch of
the architecture half for every alpha step. Validation also runs the discrete
architecture (the code binarises in ``infer``).

Not copied from the code: its weight path reads ``w.data.cpu().numpy()[0]``
of a 0-d tensor, which fails on torch >= 0.4; here the hard path is the
supernet's own. The code reports ``genotype()`` from softmax(alpha), which can
keep other edges than the ones it trained (softmax changes the order of
entries of different rows); here the reported architecture is prox_C1(alpha).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SupernetStrategy, accuracy, alpha_state, load_alpha_state

__all__ = ["NASP"]


class NASP(SupernetStrategy):
    name = "nasp"
    paper = "Yao, Xu, Tu & Zhu, Efficient Neural Architecture Search via Proximal Iterations, AAAI 2020"

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 alpha_lr=3e-4, alpha_betas=(0.5, 0.999), alpha_weight_decay=1e-3, alpha_init=0.5,
                 complexity_weight=0.0, allow_none=False):
        if not 0 <= alpha_init <= 1:
            raise ValueError(f"NASP keeps alpha in the box [0, 1]: alpha_init must lie in it, got {alpha_init}")
        if alpha_lr <= 0 or complexity_weight < 0:
            raise ValueError(f"NASP needs alpha_lr > 0 and complexity_weight >= 0, got {alpha_lr} and "
                             f"{complexity_weight}")
        super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum, w_weight_decay=w_weight_decay,
                         grad_clip=grad_clip)
        # alpha in C2 = [0, 1]: one row per decision of each table of the space, every entry 0.5 (the code's init).
        self.alpha = {name: nn.Parameter(torch.full(shape, float(alpha_init), device=context.device))
                      for name, shape in self.space.shapes().items()}
        self.alpha_optimizer = torch.optim.Adam(list(self.alpha.values()), lr=alpha_lr, betas=tuple(alpha_betas),
                                                weight_decay=alpha_weight_decay)
        self.complexity_weight = float(complexity_weight)
        self.allow_none = bool(allow_none)
        self._none = {k: t.columns.index("none") if "none" in t.columns else None
                      for k, t in self.space.tables().items()}
        self.burden = self._burden() if self.complexity_weight > 0 else None

    def _burden(self) -> dict:
        """b[e, k]: option k's share of the parameters of the options of row e."""
        params = self.space.costs(self.context.num_classes, self.context.in_channels,
                                  self.context.data.image_size)["params"]
        return {t: (p / p.sum(-1, keepdim=True).clamp_min(1)).float().to(self.context.device)
                for t, p in params.items()}

    # -- the two proximal steps --------------------------------------------------------------
    def proximal_discrete(self) -> dict:
        """prox_C1(alpha): the discrete architecture as one option index per row (the hard path)."""
        return {k: v.to(self.context.device) for k, v in self.space.encode(self.architecture()).items()}

    def proximal_box(self) -> None:
        """prox_C2: clip alpha to [0, 1]."""
        with torch.no_grad():
            for a in self.alpha.values():
                a.clamp_(0.0, 1.0)

    # -- what it shows -----------------------------------------------------------------------
    def choosable(self) -> dict:
        """alpha as prox_C1 reads it: with `none` excluded (``allow_none=False``),
        its column set to -1, below the box, so that no row picks it."""
        out = {}
        for k, a in self.alpha.items():
            a = a.detach().double().cpu().clone()
            if not self.allow_none and self._none[k] is not None:
                a[:, self._none[k]] = -1.0
            out[k] = a
        return out

    def architecture(self):
        """prox_C1(alpha) as an architecture: the space's rule read on alpha (not a probability)."""
        return self.space.derive(self.choosable())

    def mixture(self):
        """The supernet is validated at the discrete architecture, on its hard path (as the code's ``infer``)."""
        return self.proximal_discrete()

    def distributions(self):
        """NASP has no distribution: alpha scaled to sum to 1 per row, for display (a row of zeros
        shows as uniform); an excluded `none` shows as 0."""
        out = {}
        for k, a in self.choosable().items():
            a = a.clamp_min(0)
            total = a.sum(-1, keepdim=True)
            out[k] = self.space.table(k, torch.where(total > 0, a / total.clamp_min(1e-12),
                                                     torch.full_like(a, 1.0 / a.shape[-1])))
        return out

    # -- one step of Algorithm 2 -------------------------------------------------------------
    def alpha_gradient(self, x_val, y_val):
        """grad L_val(w, alpha_bar) with respect to alpha_bar = prox_C1(alpha) (one-hot rows),
        every operation computed (its gradient needs each operation's output), and the loss and accuracy."""
        indices = self.proximal_discrete()
        alpha_bar = {k: F.one_hot(i, self.alpha[k].shape[-1]).float().requires_grad_() for k, i in indices.items()}
        loss, logits = self.loss(x_val, y_val, alpha_bar)
        objective = loss
        if self.complexity_weight > 0:
            R = sum((self.burden[k] * a ** 2).sum() for k, a in alpha_bar.items())
            objective = loss + self.complexity_weight * R
        bars = list(alpha_bar.values())
        grads = torch.autograd.grad(objective, bars, allow_unused=True)  # a table no cell uses: no gradient
        grads = [torch.zeros_like(b) if g is None else g for b, g in zip(bars, grads)]
        return grads, loss.detach(), accuracy(logits, y_val)

    def step(self):
        streams = self.context.streams
        # 1-2. The gradient at the discrete point moves the continuous alpha (Adam), then back into the box.
        x_val, y_val = next(streams.arch)
        grads, arch_loss, arch_acc = self.alpha_gradient(x_val, y_val)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        for a, g in zip(self.alpha.values(), grads):
            a.grad = g.to(a.dtype)
        self.alpha_optimizer.step()
        self.proximal_box()
        # 3-4. w on the refreshed discrete architecture: only its operations run.
        metrics = self.w_step(next(streams.w), self.proximal_discrete())
        return {**metrics, "arch_loss": arch_loss.item(), "arch_acc": arch_acc, "lr": self.w_optimizer.lr}

    # -- saving and resuming -------------------------------------------------------------------
    def state_dict(self):
        return {**super().state_dict(), **alpha_state(self.alpha, self.alpha_optimizer)}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        load_alpha_state(self.alpha, self.alpha_optimizer, state)

"""SGE-NAS: DARTS with a stochastic estimate of the hypergradient.

Hou et al., "Stochastic Gradient Estimator for Differentiable NAS", OPT 2022
workshop (OpenReview rxgw3Ru0nNk). No code was published; this follows the
paper's Algorithm 1 and is labelled paper-derived, with no reference run.

DARTS's second order needs the Jacobian dw*/dalpha, and so second derivatives.
SGE-NAS estimates its product with grad_w L_val from finite differences of
whole inner trainings instead (Eq. 5-6): from the current w, N SGD steps of
size p on the same batches S_0..S_{N-1}, once at alpha and once at
alpha + mu u_j for Q Gaussian directions u_j ~ N(0, I), and on a fresh
batch D_F

    g = grad_alpha L_val(w_N, alpha)
        + (1/Q) sum_j <(w_N(alpha + mu u_j) - w_N(alpha)) / mu, grad_w L_val(w_N, alpha)> u_j

(`nasedu.hypergrad.sge`). Everything else is DARTS, with its options and
defaults: the mixed operation, the weight step, Adam on alpha, the
derivation. The paper's defaults: p = 0.01
(read here as the inner step), Q = 10. It states neither mu nor N; the
defaults below (mu = 0.01, N = 1) are this library's choice, scaled to the
quick budget's cost (N (Q + 1) extra gradients per step).
"""
from __future__ import annotations

import torch

from ..hypergrad import sge
from .darts import DARTS

__all__ = ["SGE"]


class SGE(DARTS):
    name = "sge"
    paper = ("Hou et al., Stochastic Gradient Estimator for Differentiable NAS, OPT 2022 "
             "(paper-derived, no reference code)")

    def __init__(self, context, *, Q=10, mu=0.01, inner_steps=1, p=0.01, **darts_options):
        if darts_options.get("unrolled"):
            raise ValueError("SGE replaces DARTS's unrolled hypergradient with its own estimate: drop unrolled=True")
        super().__init__(context, **darts_options)
        if Q < 1 or inner_steps < 1 or mu <= 0 or p <= 0:
            raise ValueError(f"SGE needs Q >= 1, inner_steps >= 1, mu > 0 and p > 0; got {Q=}, {inner_steps=}, "
                             f"{mu=}, {p=}")
        self.Q, self.mu, self.inner_steps, self.p = int(Q), float(mu), int(inner_steps), float(p)
        self.generator = torch.Generator().manual_seed(context.seed)  # the directions u_j; saved with the search

    def alpha_gradient(self, x_val, y_val, train_batch=None):
        """The SGE estimate on S_0 = the step's training batch (then further
        batches of the w half for N > 1) and D_F = the validation batch."""
        batches = [train_batch] + [next(self.context.streams.w) for _ in range(self.inner_steps - 1)]
        return self.estimated_gradient(x_val, y_val, lambda problem, w, alpha: sge(
            problem, w, alpha, batches, (x_val, y_val), Q=self.Q, mu=self.mu, p=self.p, generator=self.generator))

    def state_dict(self):
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])

"""beta-DARTS: DARTS with the Beta-Decay regulariser on the architecture loss.

Ye, Li, Li, Chen, Fan & Ouyang, "beta-DARTS: Beta-Decay Regularization for
Differentiable Architecture Search", CVPR 2022 (arXiv:2203.01665); the
authors' code is Sunshine-Ye/Beta-DARTS (no licence: read, not copied),
``optimizers/darts/architect.py`` (``mlc_loss``, ``_backward_step``).

The paper calls beta = softmax(alpha) the activated architecture
parameters, and regularises them through alpha with the log-sum-exp of each
row (edge), averaged over the edges (as the code's ``mlc_loss`` computes it;
the paper's equation numbers were not checked against the PDF):

    L_Beta(alpha) = (1 / |E|) sum_{edges} log sum_o exp(alpha_o),
    alpha <- alpha - eta_alpha grad_alpha [ L_val(w, alpha) + lambda L_Beta(alpha) ].

Its gradient is softmax(alpha) / |E| on every entry: a weight decay on
beta = softmax(alpha), pulling hardest on the largest weight of each edge,
which keeps the mixture from sharpening onto one operation (the paper's
argument against collapse). The weight step and everything else are DARTS's.

The weight lambda grows linearly over the search, lambda_e = lambda_max e /
E_lambda at epoch e (0-based), lambda_max = 50: the code's
``weights = 0 + 50*epoch/100``, whose 100 is hard-coded and equal to its
NAS-Bench-201 search's 100 epochs, so lambda runs from 0 to 49.5. Here
E_lambda is the search's epochs unless `lambda_epochs` is given (100 gives
the code's numbers for any search length; its DARTS-space search has 50
epochs, where the code's lambda stops at 24.5). Other settings are
DARTS's: Adam 3e-4 on alpha, betas (0.5, 0.999), weight decay 1e-3.

Where paper and code differ, or the code cannot run:

- tables: the code passes the list of alpha tensors of the DARTS cell to
  ``torch.logsumexp``, which fails (issue Sunshine-Ye/Beta-DARTS#1); only its
  NAS-Bench-201 search (one 6x5 alpha) runs. Here the term is applied per
  table and summed: NAS-Bench-201 gets the code's value, the DARTS cell the
  normal cell's mean plus the reduction cell's;
- second order: the code adds the term only in its first-order step
  (``_backward_step_unrolled`` omits it); the paper's objective has it
  always, and so does this strategy (with ``unrolled=True`` too).
"""
from __future__ import annotations

import torch

from .darts import DARTS

__all__ = ["BetaDARTS", "beta_decay"]


def beta_decay(alpha: dict) -> torch.Tensor:
    """L_Beta: per table, the mean over rows of log sum exp(alpha_row); summed over tables."""
    return sum(torch.logsumexp(a, dim=-1).mean() for a in alpha.values())


class BetaDARTS(DARTS):
    name = "beta_darts"
    paper = "Ye et al., beta-DARTS: Beta-Decay Regularization for Differentiable Architecture Search, CVPR 2022"
    plots = {**DARTS.plots, "Beta-Decay": ["beta_decay"]}

    def __init__(self, context, *, lambda_max=50.0, lambda_epochs=None, **darts_options):
        if lambda_max < 0 or (lambda_epochs is not None and lambda_epochs < 1):
            raise ValueError(f"beta-DARTS needs lambda_max >= 0 and lambda_epochs >= 1 or None, got {lambda_max} "
                             f"and {lambda_epochs}")
        super().__init__(context, **darts_options)
        self.lambda_max = float(lambda_max)
        self.lambda_epochs = int(lambda_epochs or context.epochs)

    @property
    def lam(self) -> float:
        """lambda of the current epoch (a function of the epoch, so it resumes with the weight schedule)."""
        return self.lambda_max * self.epoch / self.lambda_epochs

    def alpha_gradient(self, x_val, y_val, train_batch=None):
        """DARTS's gradient of L_val (first or second order) plus lambda grad_alpha L_Beta."""
        grads, loss, acc = super().alpha_gradient(x_val, y_val, train_batch)
        if self.lam > 0:
            alphas = list(self.alpha.values())
            regulariser = torch.autograd.grad(self.lam * beta_decay(self.alpha), alphas)
            grads = [g + r for g, r in zip(grads, regulariser)]
        return grads, loss, acc

    def step(self):
        metrics = super().step()
        with torch.no_grad():
            return {**metrics, "beta_decay": beta_decay(self.alpha).item(), "lambda": self.lam}

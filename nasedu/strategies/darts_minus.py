"""DARTS-: DARTS with an auxiliary skip connection on every edge, fading out.

Chu, Wang, Zhang, Zhang, Wei & Yan, "DARTS-: Robustly Stepping out of
Performance Collapse Without Indicators", ICLR 2021 (arXiv:2009.01027); the
authors' code is Meituan-AutoML/DARTS- (Apache-2.0; read, not copied).

The paper's argument: a skip connection with a learnable weight helps the
supernet train (it is a residual path), so gradient descent raises its weight
for that reason, not because the final cell needs it, and the derived cell
collapses to skips. DARTS- gives every edge a skip of its own, outside the
softmax, so that the residual benefit no longer has to come through alpha:

    o_bar(x) = beta x + sum_o softmax(alpha)_o o(x),

with beta decaying over the search, so the supernet ends as DARTS's. The
auxiliary skip is never part of the derived architecture; everything else is
DARTS (first order, the same alpha and weight steps).

How the supernet takes it: through the architecture argument, with no change
to any supernet. The mixture's weights are the argument of ``supernet(x,
arch)`` and need not sum to one, and the `skip_connect` operation is the
identity x, so beta x is beta added to the skip's weight on every edge:
``arch[table] = softmax(alpha) + beta e_skip``. The readable cells
(`nasedu.supernet.MixedOp`), the grouped fast path (`nasedu.grouped`) and the
NAS-Bench-201 supernet all run it as they run any mixture; with beta = 0
the argument is softmax(alpha) exactly, so this is DARTS exactly.

One difference from the authors' code, in the DARTS cell only: on the
stride-2 edges of a reduction cell the skip is a FactorizedReduce (two 1x1
convolutions); the code gives the auxiliary skip a FactorizedReduce of its
own there (``src/search/model_search.py``), while here it is the
skip_connect operation's own, so the two share weights. On stride-1 edges
and in NAS-Bench-201 (all edges stride 1) they are the same.

The authors' defaults (``scripts/run_darts_minus.sh``, ``src/utils.py``
``DecayScheduler``): beta_0 = 1 (``--skip_beta``), linear decay
(``--decay linear``; without it the code keeps beta constant), stepped at the
start of each epoch e of E: beta_e = beta_0 (E - e) / E, from 1 at the first
epoch to beta_0 / E at the last (0.02 for 50 epochs). The paper describes
beta decaying to 0; in the code it reaches 0 only after the search, when the
derived cell drops the auxiliary skip. Validation (``infer``) runs the
supernet with the auxiliary skip at the epoch's beta, as here.
"""
from __future__ import annotations

import torch

from .darts import DARTS

__all__ = ["DARTSMinus", "beta_schedule"]


def beta_schedule(epoch: int, epochs: int, beta0: float = 1.0) -> float:
    """beta of epoch `epoch` (0-based) of `epochs`: the code's linear decay, beta0 (E - e) / E."""
    return beta0 * (epochs - epoch) / epochs


class DARTSMinus(DARTS):
    name = "darts_minus"
    paper = "Chu et al., DARTS-: Robustly Stepping out of Performance Collapse Without Indicators, ICLR 2021"

    def __init__(self, context, *, beta0=1.0, **darts_options):
        if beta0 < 0:
            raise ValueError(f"DARTS- needs beta0 >= 0, got {beta0}")
        super().__init__(context, **darts_options)
        self.beta0 = float(beta0)
        tables = self.space.tables()
        missing = [k for k, t in tables.items() if "skip_connect" not in t.columns]
        if missing:
            raise ValueError(f"DARTS- adds its auxiliary skip as weight on 'skip_connect', which table(s) {missing} "
                             f"of the {self.space.name} space lack")
        # e_skip per table: 1 at skip_connect's column of every row.
        self.skip = {k: torch.zeros(t.probabilities.shape).index_fill_(
                         1, torch.tensor([t.columns.index("skip_connect")]), 1.0).to(context.device)
                     for k, t in tables.items()}
        self.beta = beta_schedule(0, context.epochs, self.beta0)

    def arch_weights(self, alpha=None) -> dict:
        """softmax(alpha) + beta e_skip: the mixture with the auxiliary skip on every edge."""
        weights = super().arch_weights(alpha)
        return {k: w + self.beta * self.skip[k] for k, w in weights.items()}

    def step(self):
        # beta of the epoch being trained; validation after it runs at the same beta (the code's `infer`).
        self.beta = beta_schedule(self.epoch, self.context.epochs, self.beta0)
        return {**super().step(), "beta": self.beta}

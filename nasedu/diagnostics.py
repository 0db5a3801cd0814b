"""When search fails: collapse, made measurable during a search and after it.

DARTS's derived cells fill up with parameter-free operations as the search
goes on, above all `skip_connect`, and the derived architecture gets worse
while the supernet's validation accuracy keeps rising (Zela et al.,
"Understanding and Robustifying Differentiable Architecture Search", ICLR
2020; NAS-Bench-201 reports DARTS finding the all-skip cell on CIFAR-10).
Three numbers show it; each is a metric of the epoch's record, so the
dashboard plots it live (`nasedu.strategies.DARTS` with ``diagnostics=True``):

- `operation_counts`: how many `skip_connect` and how many parameter-free
  operations the derived architecture holds (a DARTS genotype's kept edges, a
  NAS-Bench-201 cell's six edges);
- `hessian_eigenvalue`: the dominant eigenvalue of the Hessian of L_val with
  respect to alpha, which Zela et al. found to grow as the found
  architecture's test error grows (their early stopping watches it). Found by
  power iteration (`nasedu.hypergrad.dominant_eigenvalue`) on Hessian-vector
  products by `torch.func` (reverse over reverse); the Hessian is never
  formed. Cost: one gradient of L_val with its graph kept, then per iteration
  one product, about 1.5 gradients (measured on a CPU at the quick
  NAS-Bench-201 budget, batch 64: a gradient 0.13 s, a product 0.19 s; 20
  iterations, the default, about 2 s, against the 1.3 s an epoch of that
  search takes without it). Power iteration converges at a rate set by the
  gap to the next eigenvalue; here it came from below, measured 0.5 to 2% low
  after 10 iterations, 0.01 to 0.7% after 20 (quick DARTS-cell and
  NAS-Bench-201 searches, and a tiny DARTS cell at random alpha);
- `discretisation_gap`: the supernet's validation accuracy under the mixture
  minus the derived architecture's alone on the same shared weights (the
  "one-shot" accuracy), both measured by every supernet strategy's `validate`.

The study of the optimiser for alpha across the variants (SDARTS, DARTS-,
beta-DARTS) is `nasedu.study`.
"""
from __future__ import annotations

from torch.func import grad, vjp

from .architecture import Architecture
from .hypergrad import dominant_eigenvalue

__all__ = ["PARAMETER_FREE", "operation_counts", "collapse_metrics", "hessian_vector_product_in_alpha",
           "hessian_eigenvalue"]

# The operations with no weights of their own, by name, in the DARTS and NAS-Bench-201 spaces (as Zela et
# al. and NAS-Bench-201 count them). `none` is among them: a NAS-Bench-201 cell that drops edges collapses too.
# (In a DARTS reduction cell, skip_connect on a stride-2 edge is a FactorizedReduce with 1x1 convolutions;
# it is counted by name, as the papers do.)
PARAMETER_FREE = frozenset({"none", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})


def operation_counts(architecture: Architecture) -> dict:
    """``{"skip_count", "param_free_count"}``: the `skip_connect` and the
    parameter-free operations among the decisions of `architecture` (a
    genotype's kept edges, both cells; an NB201 cell's six edges)."""
    ops = list(architecture.decisions().values())
    return {"skip_count": sum(op == "skip_connect" for op in ops),
            "param_free_count": sum(op in PARAMETER_FREE for op in ops)}


def collapse_metrics(space, architecture, validation: dict) -> dict:
    """The counts of `operation_counts` and, where `validation` (a supernet
    strategy's `validate` record) has both accuracies, the discretisation gap
    ``supernet_val_acc - oneshot_val_acc``."""
    metrics = operation_counts(space.validate(architecture))
    if "supernet_val_acc" in validation and "oneshot_val_acc" in validation:
        metrics["discretisation_gap"] = validation["supernet_val_acc"] - validation["oneshot_val_acc"]
    return metrics


def hessian_vector_product_in_alpha(loss, w: dict, alpha: dict, batch):
    """``v -> grad^2_alpha loss(w, alpha, batch) v`` at fixed `w`: the vector-Jacobian
    product of the gradient in alpha (reverse over reverse). The gradient's graph
    is built once and every product reuses it, which makes a product on the
    supernet 2.3 times cheaper than `nasedu.hypergrad.hessian_vector_product`'s
    forward over reverse mode rebuilding it each time (0.19 s against 0.43 s,
    measured as in the module docstring)."""
    _, pullback = vjp(lambda a: grad(loss, argnums=1)(w, a, batch), alpha)
    return lambda v: {k: t.detach() for k, t in pullback(v)[0].items()}


def hessian_eigenvalue(loss, w: dict, alpha: dict, batch, *, iterations: int = 20, generator=None) -> float:
    """The dominant (largest in magnitude) eigenvalue of grad^2_alpha ``loss(w,
    alpha, batch)`` at fixed `w`, by `iterations` steps of power iteration
    (`nasedu.hypergrad.dominant_eigenvalue`) on `hessian_vector_product_in_alpha`."""
    hvp = hessian_vector_product_in_alpha(loss, w, alpha, batch)
    return dominant_eigenvalue(hvp, alpha, iterations=iterations, generator=generator)

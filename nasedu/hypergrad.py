"""Hypergradients: the gradient of the validation loss at the trained weights,

    d/d alpha  L_val(w*(alpha), alpha),   w*(alpha) = argmin_w L_train(w, alpha),

which differentiable NAS needs for alpha and cannot afford exactly. By the
implicit function theorem (DARTS, Liu et al. 2019, Eq. 3-4; Lorraine et al. 2020)

    = grad_alpha L_val  -  grad^2_{alpha,w} L_train [grad^2_{w,w} L_train]^-1 grad_w L_val.

Every estimator here is written once, for any `Bilevel` problem (two loss
functions of parameter dicts, through `torch.func`): a toy with a closed form
(`RidgeProblem`) and a supernet alike.

- `first_order`: drop the second term (DARTS first order);
- `darts_unrolled`: one step of SGD, w' = w - xi (grad_w L_train + weight decay + momentum),
  and the mixed second derivative times a vector by the central finite
  difference of DARTS Eq. 8, as the authors' `Architect` computes it;
- `unrolled_exact`: the same one-step (or N-step) unrolled hypergradient by
  autograd, the check of the finite difference;
- `implicit`: the inverse-Hessian-vector product by conjugate gradient or a
  truncated Neumann series on Hessian-vector products (no Hessian is formed);
- `sge`: SGE-NAS's stochastic estimate of dw/dalpha from Q Gaussian directions
  (Algorithm 1, Eq. 5-6).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.func import grad, jvp

__all__ = ["Bilevel", "RidgeProblem", "first_order", "darts_unrolled", "unrolled_exact", "implicit", "sge",
           "conjugate_gradient", "neumann", "dominant_eigenvalue", "hessian_vector_product", "mixed_product",
           "relative_error", "cosine", "error_vs_cost"]

Params = dict  # name -> tensor


@dataclass
class Bilevel:
    """A bilevel problem: ``inner(w, alpha, batch)`` is L_train, ``outer(w,
    alpha, batch)`` is L_val; `w` and `alpha` are dicts of tensors (as
    `torch.func.functional_call` takes a module's parameters)."""

    inner: Callable
    outer: Callable


# -- small algebra on parameter dicts ------------------------------------------------------------
def _axpy(a, x, y):
    """a * x + y, key by key."""
    return {k: a * x[k] + y[k] for k in y}


def _dot(x, y):
    return sum((x[k] * y[k]).sum() for k in x)


def _norm(x):
    return torch.sqrt(_dot(x, x))


def relative_error(estimate: Params, truth: Params) -> float:
    """||estimate - truth|| / ||truth||, over all tensors together."""
    return float(_norm(_axpy(-1.0, truth, estimate)) / _norm(truth))


def cosine(estimate: Params, truth: Params) -> float:
    """The cosine of the angle between the two (0 when either is zero)."""
    norms = _norm(estimate) * _norm(truth)
    return float(_dot(estimate, truth) / norms) if norms > 0 else 0.0


def _grad_w(loss, w, alpha, batch):
    return grad(loss, argnums=0)(w, alpha, batch)


def _grad_alpha(loss, w, alpha, batch):
    return grad(loss, argnums=1)(w, alpha, batch)


def hessian_vector_product(problem: Bilevel, w, alpha, batch):
    """``v -> grad^2_{w,w} L_train(w, alpha) v``, forward over reverse mode."""
    def hvp(v):
        return jvp(lambda w_: _grad_w(problem.inner, w_, alpha, batch), (w,), (v,))[1]
    return hvp


def mixed_product(problem: Bilevel, w, alpha, batch, x):
    """``grad^2_{alpha,w} L_train(w, alpha) x = grad_alpha <grad_w L_train, x>`` (reverse over reverse)."""
    return grad(lambda a: _dot(_grad_w(problem.inner, w, a, batch), x))(alpha)


# -- the estimators ------------------------------------------------------------------------------
def first_order(problem: Bilevel, w, alpha, val_batch) -> Params:
    """grad_alpha L_val(w, alpha): w taken as if it did not depend on alpha (DARTS first order, xi = 0)."""
    return _grad_alpha(problem.outer, w, alpha, val_batch)


def _unroll(problem, w, alpha, batch, xi, momentum, weight_decay, momentum_buffer):
    """w' = w - xi (grad_w L_train + weight_decay w + momentum buf): one SGD step as
    the DARTS `Architect._compute_unrolled_model` takes it (buffer zero when absent)."""
    g = _grad_w(problem.inner, w, alpha, batch)
    buf = momentum_buffer or {k: torch.zeros_like(t) for k, t in w.items()}
    return {k: w[k] - xi * (g[k] + weight_decay * w[k] + momentum * buf[k]) for k in w}


def darts_unrolled(problem: Bilevel, w, alpha, train_batch, val_batch, *, xi, r=0.01, momentum=0.0,
                   weight_decay=0.0, momentum_buffer=None) -> Params:
    """DARTS second order (Liu et al. 2019, Eq. 7-8):

        grad_alpha L_val(w', alpha) - xi [grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)] / (2 eps)

    with w' the unrolled step (`_unroll`), v = grad_w' L_val(w', alpha),
    w+- = w +- eps v and eps = r / ||v|| (the norm over all weights at once),
    the difference taken at the original w, as the authors' code does.
    Cost: 4 gradients of L_train or L_val, no second derivative."""
    w1 = _unroll(problem, w, alpha, train_batch, xi, momentum, weight_decay, momentum_buffer)
    v = _grad_w(problem.outer, w1, alpha, val_batch)
    direct = _grad_alpha(problem.outer, w1, alpha, val_batch)
    eps = r / _norm(v)
    plus = _grad_alpha(problem.inner, _axpy(eps, v, w), alpha, train_batch)
    minus = _grad_alpha(problem.inner, _axpy(-eps, v, w), alpha, train_batch)
    return {k: direct[k] - xi * (plus[k] - minus[k]) / (2 * eps) for k in direct}


def unrolled_exact(problem: Bilevel, w, alpha, train_batches, val_batch, *, xi, momentum=0.0, weight_decay=0.0,
                   momentum_buffer=None) -> Params:
    """d/d alpha L_val(w_N(alpha), alpha) by autograd through N unrolled SGD
    steps, one per batch of `train_batches` (a list; one batch: DARTS's
    one-step unrolling, computed exactly). Momentum enters the first step only,
    as a constant buffer, as in `darts_unrolled`."""
    def validation_after_steps(a):
        w_ = w
        for i, batch in enumerate(train_batches):
            w_ = _unroll(problem, w_, a, batch, xi, momentum if i == 0 else 0.0, weight_decay,
                         momentum_buffer if i == 0 else None)
        return problem.outer(w_, a, val_batch)
    return grad(validation_after_steps)(alpha)


def conjugate_gradient(hvp, b: Params, iterations: int = 50, tol: float = 1e-12) -> Params:
    """Solve H x = b for a symmetric positive definite H given only ``hvp(v) = H v``."""
    x = {k: torch.zeros_like(t) for k, t in b.items()}
    r = dict(b)
    p = dict(b)
    rr = _dot(r, r)
    for _ in range(iterations):
        if rr.sqrt() <= tol * _norm(b):
            break
        Hp = hvp(p)
        step = rr / _dot(p, Hp)
        x = _axpy(step, p, x)
        r = _axpy(-step, Hp, r)
        rr_next = _dot(r, r)
        p = _axpy(rr_next / rr, p, r)
        rr = rr_next
    return x


def neumann(hvp, b: Params, terms: int, eta: float) -> Params:
    """H^-1 b ~ eta sum_{k=0..K} (I - eta H)^k b, which converges for 0 < eta < 2 / lambda_max(H)."""
    term, total = dict(b), dict(b)
    for _ in range(terms):
        term = _axpy(-eta, hvp(term), term)
        total = {k: total[k] + term[k] for k in total}
    return {k: eta * t for k, t in total.items()}


def dominant_eigenvalue(hvp, like: Params, iterations: int = 50, generator=None) -> float:
    """The largest eigenvalue (in magnitude) of H by power iteration on ``hvp``
    (Zela et al. 2020 track this one for the Hessian of L_val in alpha)."""
    v = {k: torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for k, t in like.items()}
    value = torch.tensor(0.0)
    for _ in range(iterations):
        v = {k: t / _norm(v) for k, t in v.items()}
        Hv = hvp(v)
        value = _dot(v, Hv)
        v = Hv
    return float(value)


def implicit(problem: Bilevel, w, alpha, train_batch, val_batch, *, method: str = "cg", iterations: int = 50,
             eta: float | None = None) -> Params:
    """The implicit-function-theorem hypergradient at w (an approximate inner optimum):

        grad_alpha L_val - grad^2_{alpha,w} L_train x,   x = [grad^2_{w,w} L_train]^-1 grad_w L_val,

    x by conjugate gradient (`method="cg"`, `iterations` steps) or a Neumann
    series of `iterations` terms with step `eta` (default 1 / lambda_max, found
    by power iteration). Cost: one Hessian-vector product per iteration."""
    v = _grad_w(problem.outer, w, alpha, val_batch)
    direct = _grad_alpha(problem.outer, w, alpha, val_batch)
    hvp = hessian_vector_product(problem, w, alpha, train_batch)
    if method == "cg":
        x = conjugate_gradient(hvp, v, iterations)
    elif method == "neumann":
        x = neumann(hvp, v, iterations, eta or 1.0 / dominant_eigenvalue(hvp, v))
    else:
        raise ValueError(f"unknown method {method!r}; choose 'cg' or 'neumann'")
    mixed = mixed_product(problem, w, alpha, train_batch, x)
    return {k: direct[k] - mixed[k] for k in direct}


def sge(problem: Bilevel, w, alpha, train_batches, val_batch, *, Q: int = 10, mu: float = 1e-3, p: float = 0.01,
        generator=None) -> Params:
    """SGE-NAS (Algorithm 1, Eq. 5-6): from the same w, N = len(`train_batches`)
    SGD steps of size `p` on the same batches S_0..S_{N-1}, once at alpha and
    once at alpha + mu u_j for Q Gaussian directions u_j ~ N(0, I);
    delta_j = (w_N(alpha + mu u_j) - w_N(alpha)) / mu estimates the Jacobian
    dw/dalpha along u_j, and

        grad_alpha L_val(w_N, alpha) + (1/Q) sum_j <delta_j, grad_w L_val(w_N, alpha)> u_j

    on a fresh batch D_F (`val_batch`). Gaussian u, E[u u^T] = I, needs no
    scaling (unit-norm directions would need a factor of alpha's size).
    Cost: N (Q + 1) gradients of L_train, no second derivative."""
    def inner_sgd(a):
        w_ = w
        for batch in train_batches:
            g = _grad_w(problem.inner, w_, a, batch)
            w_ = {k: w_[k] - p * g[k] for k in w_}
        return w_

    w_N = inner_sgd(alpha)
    g_w = _grad_w(problem.outer, w_N, alpha, val_batch)
    estimate = _grad_alpha(problem.outer, w_N, alpha, val_batch)
    for _ in range(Q):
        u = {k: torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for k, t in alpha.items()}
        w_u = inner_sgd(_axpy(mu, u, alpha))
        c = _dot({k: (w_u[k] - w_N[k]) / mu for k in w_N}, g_w)
        estimate = _axpy(c / Q, u, estimate)
    return estimate


# -- a problem whose answer is known -------------------------------------------------------------
class RidgeProblem(Bilevel):
    """Ridge regression with a learnt regulariser per feature, in float64:

        L_train(w, lambda) = 1/2 ||A w - b||^2 + 1/2 sum_i lambda_i w_i^2,
        L_val(w, lambda)   = 1/2 ||C w - e||^2,

    so w*(lambda) = H^-1 A^T b with H = A^T A + diag(lambda), and the true
    hypergradient is  -w* (elementwise) H^-1 C^T (C w* - e)."""

    def __init__(self, features: int = 8, train: int = 20, val: int = 20, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
        self.A, self.C = rand(train, features), rand(val, features)
        truth = rand(features)
        self.b = self.A @ truth + 0.5 * rand(train)
        self.e = self.C @ truth + 0.5 * rand(val)
        self.alpha = {"lam": torch.full((features,), 1.0, dtype=torch.float64)}
        super().__init__(self._inner, self._outer)

    def _inner(self, w, alpha, batch=None):
        return 0.5 * ((self.A @ w["w"] - self.b) ** 2).sum() + 0.5 * (alpha["lam"] * w["w"] ** 2).sum()

    def _outer(self, w, alpha, batch=None):
        return 0.5 * ((self.C @ w["w"] - self.e) ** 2).sum()

    def hessian(self, alpha):
        return self.A.T @ self.A + torch.diag(alpha["lam"])

    def w_star(self, alpha) -> Params:
        return {"w": torch.linalg.solve(self.hessian(alpha), self.A.T @ self.b)}

    def true_hypergradient(self, alpha) -> Params:
        w = self.w_star(alpha)["w"]
        return {"lam": -w * torch.linalg.solve(self.hessian(alpha), self.C.T @ (self.C @ w - self.e))}


# -- how far each estimate lands, and what it costs -----------------------------------------------
def error_vs_cost(problem: RidgeProblem, *, xi: float = 0.01, iterations=(1, 2, 5, 10, 20, 50),
                  unroll_steps=(1, 10, 50, 200), sge_N=(1, 10, 50), sge_Q=(1, 10, 100), sge_mu=(1e-2,),
                  p: float = 0.01, seeds: int = 5) -> list[dict]:
    """Every estimator on `problem` at its inner optimum w* (as at a well-trained
    supernet), against the closed-form hypergradient: one row per estimator and
    setting, ``{"estimator", "setting", "gradients", "seconds", "rel_error", "cosine"}``.

    Cost in gradient evaluations, counted as: a gradient 1, a Hessian-vector or
    mixed product 2 (forward over reverse), the power iteration that sets the
    Neumann step 100 (50 products); unrolling N steps by autograd about 3N
    (N gradients forward, twice that back); SGE N(Q + 1) + 2. `seconds` is the
    wall time of one estimate; SGE's error, cosine and time are means over
    `seeds` seeded runs."""
    alpha = problem.alpha
    w, truth = problem.w_star(alpha), problem.true_hypergradient(alpha)
    rows = []

    def add(estimator, setting, gradients, estimates):
        runs = [(time.perf_counter(), estimate(), time.perf_counter()) for estimate in estimates]
        rows.append({"estimator": estimator, "setting": setting, "gradients": gradients,
                     "seconds": statistics.mean(t1 - t0 for t0, _, t1 in runs),
                     "rel_error": statistics.mean(relative_error(g, truth) for _, g, _ in runs),
                     "cosine": statistics.mean(cosine(g, truth) for _, g, _ in runs)})

    add("first order", "", 1, [lambda: first_order(problem, w, alpha, None)])
    add("DARTS one-step, finite difference", f"xi={xi}", 4,
        [lambda: darts_unrolled(problem, w, alpha, None, None, xi=xi)])
    for n in unroll_steps:
        add("unrolled, exact", f"N={n}", 3 * n,
            [lambda n=n: unrolled_exact(problem, w, alpha, [None] * n, None, xi=xi)])
    for k in iterations:
        add("implicit, conjugate gradient", f"{k} steps", 2 * k + 3,
            [lambda k=k: implicit(problem, w, alpha, None, None, method="cg", iterations=k)])
        add("implicit, Neumann", f"{k} terms", 2 * k + 3 + 100,
            [lambda k=k: implicit(problem, w, alpha, None, None, method="neumann", iterations=k)])
    for n in sge_N:
        for mu in sge_mu:
            for q in sge_Q:
                add("SGE", f"N={n}, Q={q}, mu={mu:g}", n * (q + 1) + 2,
                    [lambda n=n, mu=mu, q=q, s=s: sge(problem, w, alpha, [None] * n, None, Q=q, mu=mu, p=p,
                                                      generator=torch.Generator().manual_seed(s))
                     for s in range(seeds)])
    return rows

"""ASNG-NAS: the adaptive stochastic natural gradient method for one-shot NAS.

Akimoto, Shirakawa, Yoshinari, Uchida, Saito & Nishida, "Adaptive Stochastic
Natural Gradient Method for One-Shot Neural Architecture Search", ICML 2019
(arXiv:1905.08537). The authors' code: shirakawas/ASNG-NAS@a13c482 (MIT),
``classification/util/categorical_asng.py`` (categorical variables, the NAS
experiments) and ``inpainting/inpainting_int/asng_int.py`` (categorical and
integer variables). Nothing of it is copied; `ASNG.update` reproduces its
update on the same inputs (tests/test_asng.py).

**Stochastic relaxation.** Instead of minimising f(w, c) over the weights w
and a discrete architecture c, minimise the expectation over a distribution
p(c | theta) of architectures,

    J(w, theta) = E_{c ~ p(c | theta)} [ f(w, c) ],

which is differentiable in both: grad_w J = E[grad_w f(w, c)] (a sampled c
computes only its own path, the hard path), and for an exponential family in
its expectation parameters theta = E[T(c)] the natural gradient (the inverse
Fisher matrix times the score) of ln p(c | theta) is simply T(c) - theta.

**The Monte Carlo estimate** from lambda samples c_1..c_lambda, with
ranking-based utilities u_k (the best ceil(lambda / 4) samples get +1/mu,
the worst as many -1/mu, the rest 0, tied samples the mean of their weights;
lambda = 2 gives +1 to the better sample and -1 to the worse):

    G(theta) = (1 / lambda) sum_k u_k (T(c_k) - theta).

**The distributions** (one per variable, independent):

- a categorical variable with K options: theta_i = (P(c_i = 1), ..., P(c_i = K)),
  T(c) = one-hot(c); in the free coordinates theta_{1..K-1} its Fisher matrix
  is F = diag(1 / theta_{1..K-1}) + 1 1^T / theta_K;
- an ordinal (integer) variable in [lo, hi]: x ~ N(m, sigma^2), used as
  round(clip(x, lo, hi)); theta = (m, m^2 + sigma^2) = E[T(x)] with
  T(x) = (x, x^2), and F^{-1} = Cov[T(x)] = sigma^2 [[1, 2m], [2m, 4m^2 + 2 sigma^2]].
  Samples come in mirrored pairs m + sigma z, m - sigma z. With lambda = 2 this
  makes G's second component 2m times its first, so a step changes sigma^2 by
  -(epsilon G_m)^2: sigma never grows, except where clipping m to a bound
  resets it (a Gaussian that narrows early crawls towards its target).

**The adaptive step size.** The step has length delta in the Fisher metric
(a trust region), and delta adapts to how consistent the steps are:

    theta <- theta + epsilon G,          epsilon = delta / ||F^{1/2} G||
    s     <- (1 - beta) s + sqrt(beta (2 - beta)) F^{1/2} G / ||F^{1/2} G||
    gamma <- (1 - beta)^2 gamma + beta (2 - beta)
    delta <- delta exp(beta (||s||^2 / alpha - gamma)),     beta = delta / sqrt(D)

with D the number of free parameters. s accumulates the normalised steps;
were they independent and without signal, E||s||^2 would be gamma. When
||s||^2 exceeds alpha gamma the steps agree (the signal dominates the noise)
and delta grows; otherwise it shrinks. The authors write delta = delta_0 / Delta
and update Delta by the inverse factor; `Delta_max` bounds Delta, that is,
delta >= delta_0 / Delta_max (None: no bound, the authors' np.inf, which a
search's JSON history could not hold).

**The margin** keeps sampling every option: after each step a categorical
theta_i is projected onto theta_ij >= theta_min = 1 / (D_c (K_i - 1)), D_c the
number of categorical variables with more than one option (the authors'
``range_restriction``: the mass above the floor shrinks proportionally); an
ordinal m is clipped to [lo, hi] and sigma to [1/4, (hi - lo) / 2].

The authors' defaults: alpha = 1.5, delta_0 = 1, lambda = 2, Delta_max = inf (None here).

Where this differs from the authors' code, on purpose:

- ties are ties whatever the sign of the losses (their test
  ``f[i+1] - f[i] < 1e-14 f[i]`` misses equal losses at or below zero, e.g.
  negated accuracies, and then moves theta towards whichever sample sorted first);
- ``Delta_max`` is honoured (``CategoricalASNG`` sets it to inf whatever it is given);
- epsilon = delta / ||F^{1/2} G||, as the categorical code; the integer code
  adds 1e-9 to the norm, so with ordinal variables the two agree to about
  1e-9 relative, not bit for bit. A zero G skips the update (no division by zero);
- a categorical sample always has exactly one option (their inverse-CDF
  draw finds none when rounding leaves the cumulative sum a hair below 1);
- a margin that leaves nothing to learn is refused (K theta_min >= 1: one
  categorical variable, or two binary ones, where theirs pins theta at
  uniform or divides zero by zero); ``margin=False`` turns it off.

`ASNG` is the optimiser alone (no network): notebooks and tests run it on
toy objectives. `ASNGNAS` is the search strategy: theta over every row of
every table of a search space, w trained on sampled hard paths of the
supernet, or, on a benchmark table without data, the table's accuracy as
the reward. With ``ordinal=True`` the rows of the space's ordered tables
(`SearchSpace.ordinal_tables`: NAS-Bench-Macro's blocks, which grow from
none to small to large) are ordinal variables over their option indices,
as the paper's mixed space treats sizes, and the rest stay categorical.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from ..architecture import Table
from .base import Strategy, SupernetStrategy, accuracy

__all__ = ["ASNG", "ASNGSample", "ASNGNAS", "ranking_utilities"]

F64 = torch.float64
# Ordinal variables: the smallest sigma, and the natural gradient below which nothing moves (the authors' values).
SIGMA_MIN = 0.25
TINY_GRADIENT = 1e-18


def ranking_utilities(losses, tie=1e-14) -> torch.Tensor:
    """u_k for each sample, in the samples' order: with mu = ceil(lambda / 4),
    the mu smallest losses +1/mu, the mu largest -1/mu, the rest 0; samples
    whose sorted losses differ by at most ``tie * |loss|`` share the mean of
    their weights (so equal losses give all-zero utilities at lambda = 2)."""
    f = torch.as_tensor(losses, dtype=F64).flatten()
    lam = len(f)
    if lam < 2:
        raise ValueError(f"ranking needs at least 2 samples, got {lam}")
    mu = math.ceil(lam / 4)
    weights = torch.zeros(lam, dtype=F64)
    weights[:mu] = 1.0 / mu
    weights[lam - mu:] = -1.0 / mu
    order = torch.argsort(f, stable=True)
    sorted_f = f[order]
    sorted_u = weights.clone()
    start = 0
    for i in range(1, lam + 1):
        if i == lam or sorted_f[i] - sorted_f[i - 1] > tie * abs(sorted_f[i - 1]):
            sorted_u[start:i] = weights[start:i].mean()
            start = i
    u = torch.empty(lam, dtype=F64)
    u[order] = sorted_u
    return u


class ASNGSample(NamedTuple):
    """lambda samples: `categorical` [lambda, variables] option indices, and
    `ordinal` [lambda, ordinal variables] the Gaussian draws x, unrounded
    (the update needs them; `ASNG.integers` rounds them)."""

    categorical: torch.Tensor
    ordinal: torch.Tensor


class ASNG:
    """The adaptive stochastic natural gradient optimiser (see the module docstring).

    `categories`: the number of options of each categorical variable;
    `ordinals`: ``(lo, hi)`` integer bounds of each ordinal variable. Minimises:
    ``update(sample, losses)`` takes the losses of the sampled architectures.
    `margin` is the authors' ``range_restriction`` (on by default); `seed` or
    `generator` draws the samples (its state is in `state_dict`).

        >>> asng = ASNG([3, 5, 2], ordinals=[(1, 8)])
        >>> c = asng.sample()                  # lambda = 2 by default
        >>> asng.update(c, [loss(c.categorical[k], asng.integers(c.ordinal)[k]) for k in range(2)])
    """

    def __init__(self, categories=(), ordinals=(), *, lam=2, alpha=1.5, delta_init=1.0, Delta_max=None,
                 margin=True, seed=0, generator=None):
        self.categories = [int(k) for k in categories]
        self.ordinals = [(int(lo), int(hi)) for lo, hi in ordinals]
        if any(k < 1 for k in self.categories):
            raise ValueError(f"every categorical variable needs at least one option, got categories {self.categories}")
        if any(lo >= hi for lo, hi in self.ordinals):
            raise ValueError(f"every ordinal variable needs lo < hi, got {self.ordinals}")
        if int(lam) != lam or lam < 2:
            raise ValueError(f"lam (samples per update) must be an integer of at least 2 (the ranking compares "
                             f"samples), got {lam}")
        Delta_max = math.inf if Delta_max is None else Delta_max
        if not alpha > 0 or not delta_init > 0 or not Delta_max >= 1:
            raise ValueError(f"need alpha > 0, delta_init > 0 and Delta_max >= 1; got {alpha=}, {delta_init=}, "
                             f"{Delta_max=}")
        self.lam, self.alpha, self.delta_init, self.Delta_max = int(lam), float(alpha), float(delta_init), Delta_max
        self.margin = bool(margin)
        K = torch.tensor(self.categories, dtype=torch.long)
        # D: free parameters (K - 1 per categorical variable, m and E[x^2] per ordinal one); beta = delta / sqrt(D).
        self.D = int((K - 1).sum()) + 2 * len(self.ordinals)
        if self.D == 0:
            raise ValueError("nothing to search: give a categorical variable with at least two options or an "
                             "ordinal variable")
        self.D_categorical = int((K > 1).sum())
        if self.margin and self.D_categorical:
            # theta_min = 1 / (D_c (K - 1)): its K floors must leave room, K / (D_c (K - 1)) < 1.
            if any(k > 1 and k >= self.D_categorical * (k - 1) for k in self.categories):
                raise ValueError(f"the margin theta >= 1 / (D (K - 1)) leaves nothing to learn with D = "
                                 f"{self.D_categorical} categorical variable(s) of {self.categories} options "
                                 f"(it needs K < D (K - 1): three variables or more); pass margin=False")
        Kmax = max(self.categories, default=1)
        # Fixed per problem, kept for the update: K, the free coordinates (the first K - 1 of each row), K - 1.
        self._K = K
        self._free = torch.arange(Kmax)[None, :] < (K - 1)[:, None]
        self._last = (K - 1)[:, None]
        # theta: [variables, Kmax], each row a distribution over its first K_i columns, zeros beyond.
        self.mask = torch.arange(Kmax)[None, :] < K[:, None] if self.categories else torch.zeros(0, 1, dtype=bool)
        self.theta = torch.where(self.mask, 1.0 / K[:, None].to(F64), torch.zeros((), dtype=F64)) \
            if self.categories else torch.zeros(0, 1, dtype=F64)
        self.theta_min = torch.tensor([1.0 / (self.D_categorical * (k - 1)) if self.margin and k > 1 else 0.0
                                       for k in self.categories], dtype=F64)
        # theta_ordinal: [2, ordinal variables] = (m, E[x^2]); m starts mid-range, sigma at its largest.
        self.lo = torch.tensor([lo for lo, _ in self.ordinals], dtype=F64)
        self.hi = torch.tensor([hi for _, hi in self.ordinals], dtype=F64)
        self.sigma_max = (self.hi - self.lo) / 2
        m = (self.lo + self.hi) / 2
        self.theta_ordinal = torch.stack([m, m ** 2 + self.sigma_max ** 2])
        self.s = torch.zeros(self.D, dtype=F64)
        self.gamma = 0.0
        self.delta = self.delta_init
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)

    # -- the distribution ---------------------------------------------------------------
    @property
    def m(self) -> torch.Tensor:
        return self.theta_ordinal[0]

    @property
    def sigma(self) -> torch.Tensor:
        return (self.theta_ordinal[1] - self.theta_ordinal[0] ** 2).clamp_min(0).sqrt()

    @property
    def Delta(self) -> float:
        """The authors' Delta = delta_0 / delta."""
        return self.delta_init / self.delta

    def sample(self, lam=None) -> ASNGSample:
        """`lam` (default lambda) independent categorical samples and mirrored ordinal ones."""
        lam = self.lam if lam is None else int(lam)
        d, n = len(self.categories), len(self.ordinals)
        r = torch.rand(lam, d, 1, generator=self.generator, dtype=F64)
        # Inverse CDF: the option whose cumulative interval holds r; clamped so that rounding cannot lose it.
        c = (r >= self.theta.cumsum(dim=1)).sum(dim=2).clamp_max(self._K - 1) if d else \
            torch.zeros(lam, 0, dtype=torch.long)
        z = torch.randn((lam + 1) // 2, n, generator=self.generator, dtype=F64)
        x = (self.m + self.sigma * torch.stack([z, -z], dim=1).reshape(2 * len(z), n))[:lam]
        return ASNGSample(c.long(), x)

    def integers(self, x) -> torch.Tensor:
        """The ordinal values of Gaussian draws `x` (or of m): round(clip(x, lo, hi))."""
        x = torch.as_tensor(x, dtype=F64)
        return torch.round(torch.minimum(torch.maximum(x, self.lo), self.hi)).long()

    def mode(self) -> ASNGSample:
        """The most likely architecture as a one-sample `ASNGSample`: argmax theta per categorical variable,
        and m per ordinal one (`integers` rounds it), as the authors' ``mle``."""
        c = self.theta.argmax(dim=1)[None] if self.categories else torch.zeros(1, 0, dtype=torch.long)
        return ASNGSample(c, self.m[None].clone())

    def ordinal_probabilities(self) -> torch.Tensor:
        """[ordinal variables, max range] P(round(clip(x)) = lo + j), zero beyond each variable's hi."""
        width = int((self.hi - self.lo).max()) + 1 if self.ordinals else 1
        j = torch.arange(width, dtype=F64)
        edges = torch.cat([j - 0.5, j[-1:] + 0.5])[None] + self.lo[:, None]  # [n, width + 1]
        cdf = torch.special.ndtr((edges - self.m[:, None]) / self.sigma[:, None])
        # Clipping puts the tails on the end values: below lo counts as lo, above hi as hi.
        top = (self.hi - self.lo).long()
        cdf[:, 0] = 0.0
        cdf.scatter_(1, (top + 1)[:, None], 1.0)
        P = (cdf[:, 1:] - cdf[:, :-1]).clamp_min(0)
        return torch.where(j[None] <= top[:, None], P, torch.zeros((), dtype=F64))

    def tables(self) -> dict:
        """The distribution as `Table`s for the dashboard: ``categorical`` (theta, ragged rows masked) and
        ``ordinal`` (P of each integer value, columns counted from each row's lo, beyond hi masked)."""
        out = {}
        if self.categories:
            out["categorical"] = Table(self.theta, [f"c{i + 1}" for i in range(len(self.categories))],
                                       [str(k) for k in range(self.theta.shape[1])], self.mask.numpy(), "categorical")
        if self.ordinals:
            P = self.ordinal_probabilities()
            mask = torch.arange(P.shape[1])[None] <= (self.hi - self.lo)[:, None]
            out["ordinal"] = Table(P, [f"x{i + 1} in {lo}..{hi}" for i, (lo, hi) in enumerate(self.ordinals)],
                                   ["lo"] + [f"lo+{j}" for j in range(1, P.shape[1])], mask.numpy(), "ordinal")
        return out

    # -- the update ----------------------------------------------------------------------
    def fisher_sqrt_categorical(self, G: torch.Tensor) -> torch.Tensor:
        """A square root A of each categorical Fisher matrix (A^T A = F, the authors' choice) applied to
        G's free coordinates: A g = g / sqrt(theta) + sqrt(theta) sum(g) / (theta_K + sqrt(theta_K)),
        flattened variable by variable."""
        free = self._free
        theta = torch.where(free, self.theta, 1.0)
        g = torch.where(free, G, 0.0)
        theta_K = self.theta.gather(1, self._last)
        out = g / theta.sqrt() + theta.sqrt() * g.sum(dim=1, keepdim=True) / (theta_K + theta_K.sqrt())
        return out[free]

    def fisher_sqrt_ordinal(self, G: torch.Tensor) -> torch.Tensor:
        """F^{1/2} G per ordinal variable, F^{1/2} the symmetric root, [2, n] -> flattened m-parts first.
        With C = F^{-1} = Cov[T(x)] (2 x 2, det C = 2 sigma^6), sqrt(C) = (C + sqrt(det C) I) / sqrt(tr C +
        2 sqrt(det C)), so F^{1/2} = sqrt(C)^{-1} = adj(C + r I) / (r sqrt(tr C + 2 r)), r = sqrt(2) sigma^3:
        no eigendecomposition and no cancellation."""
        m, var = self.m, self.sigma ** 2
        a, b, d = var, 2 * m * var, var * (4 * m ** 2 + 2 * var)
        r = math.sqrt(2) * var ** 1.5
        scale = r * (a + d + 2 * r).sqrt()
        gm, g2 = G
        return torch.stack([((d + r) * gm - b * g2) / scale, (-b * gm + (a + r) * g2) / scale]).flatten()

    def update(self, sample, losses) -> bool:
        """One step of the natural gradient with the adaptive step size on `sample` (an `ASNGSample`, or the
        categorical indices [lambda, variables] alone) and its `losses` (smaller is better). Returns whether
        theta moved: tied losses, or samples that agree, leave everything (theta, s, gamma, delta) as it was."""
        c, x = (sample, None) if torch.is_tensor(sample) else sample
        f = torch.as_tensor(losses, dtype=F64).flatten()
        c = torch.as_tensor(c, dtype=torch.long)
        x = torch.zeros(len(f), 0, dtype=F64) if x is None else torch.as_tensor(x, dtype=F64)
        if c.shape != (len(f), len(self.categories)) or x.shape != (len(f), len(self.ordinals)):
            raise ValueError(f"categorical samples of shape {tuple(c.shape)}, ordinal draws of shape "
                             f"{tuple(x.shape)} and {len(f)} losses do not fit {len(self.categories)} categorical "
                             f"and {len(self.ordinals)} ordinal variables ([lambda, variables] each)")
        if not torch.isfinite(f).all():
            raise ValueError(f"losses must be finite to be ranked, got {f.tolist()}")
        u = ranking_utilities(f)
        if not u.any():
            return False
        # G = mean_k u_k (T(c_k) - theta).
        T = torch.nn.functional.one_hot(c, self.theta.shape[1]).to(F64)
        G = (u[:, None, None] * (T - self.theta)).mean(dim=0)
        G_ordinal = torch.stack([(u[:, None] * (x - self.m)).mean(dim=0),
                                 (u[:, None] * (x ** 2 - self.theta_ordinal[1])).mean(dim=0)])
        if (G.abs() < TINY_GRADIENT).all() and (G_ordinal.abs() < TINY_GRADIENT).all():
            return False
        beta = self.delta / math.sqrt(self.D)
        s_tilde = torch.cat([self.fisher_sqrt_categorical(G), self.fisher_sqrt_ordinal(G_ordinal)])
        norm = s_tilde.norm()
        epsilon = self.delta / norm
        self.theta = self.theta + epsilon * G
        self.theta_ordinal = self.theta_ordinal + epsilon * G_ordinal
        self.s = (1 - beta) * self.s + math.sqrt(beta * (2 - beta)) * s_tilde / norm
        self.gamma = (1 - beta) ** 2 * self.gamma + beta * (2 - beta)
        self.delta = max(self.delta * math.exp(beta * (float(self.s @ self.s) / self.alpha - self.gamma)),
                         self.delta_init / self.Delta_max)
        self._project()
        return True

    def _project(self):
        """The margin: theta_ij >= theta_min with rows summing to 1; m in [lo, hi], sigma in [1/4, (hi - lo)/2]."""
        if self.categories:
            lower = torch.where(self.mask, self.theta_min[:, None], torch.zeros((), dtype=F64))
            theta = torch.maximum(self.theta, lower)
            total = theta.sum(dim=1, keepdim=True)
            K = self.mask.sum(dim=1, keepdim=True)
            # Take the excess (total - 1) from the mass above the floors, in proportion to it.
            theta = theta - (total - 1) * (theta - lower) / (total - K * self.theta_min[:, None])
            self.theta = torch.where(self.mask, theta, torch.zeros((), dtype=F64))
            self.theta = self.theta / self.theta.sum(dim=1, keepdim=True)
        if self.ordinals:
            m = torch.minimum(torch.maximum(self.m, self.lo), self.hi)
            second = torch.minimum(torch.maximum(self.theta_ordinal[1], m ** 2 + SIGMA_MIN ** 2),
                                   m ** 2 + self.sigma_max ** 2)
            self.theta_ordinal = torch.stack([m, second])

    # -- saving and resuming -------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"categories": list(self.categories), "ordinals": [list(o) for o in self.ordinals],
                "theta": self.theta.clone(), "theta_ordinal": self.theta_ordinal.clone(), "s": self.s.clone(),
                "gamma": self.gamma, "delta": self.delta, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if state["categories"] != self.categories or [tuple(o) for o in state["ordinals"]] != self.ordinals:
            raise ValueError(f"this state is of an ASNG over categories {state['categories']} and ordinals "
                             f"{state['ordinals']}, not {self.categories} and {self.ordinals}")
        self.theta, self.theta_ordinal = state["theta"].clone(), state["theta_ordinal"].clone()
        self.s, self.gamma, self.delta = state["s"].clone(), float(state["gamma"]), float(state["delta"])
        self.generator.set_state(state["generator"])


class ASNGNAS(SupernetStrategy):
    """ASNG-NAS on any search space: one categorical variable per row of each of the space's tables
    (an edge's operation, a layer's block), theta shown as those tables. With ``ordinal=True``, each row of
    the space's ordered tables is an ordinal variable instead (a Gaussian over its option index, rounded),
    shown as the probability of each option, P(round(clip(x)) = j), and derived as round(m).

    With data (the authors' ``architecture_search``), one step:

    1. w: lambda architectures c_k ~ p(c | theta), one SGD step on the mean of their training losses on one
       batch of the w half, each computed on its hard path only;
    2. theta: lambda fresh architectures, their losses on one batch of the architecture half (no gradient),
       one `ASNG.update`.

    Without data, on a benchmark table (``benchmark="nas-bench-macro"``): each step samples lambda
    architectures and updates theta from their table errors 1 - accuracy (lambda table queries; the
    validation accuracy where the table records one).

    The architecture is the space's rule on theta (argmax per row; the DARTS rule on the DARTS cell, whose
    samples, unlike the paper's ENAS cell, choose an operation, `none` included, on every edge). The weights'
    defaults are the authors' (SGD 0.025, momentum 0.9, weight decay 3e-4, clipping 5, a cosine schedule
    to 0); theta's are `ASNG`'s.
    """

    name = "asng"
    paper = ("Akimoto et al., Adaptive Stochastic Natural Gradient Method for One-Shot Neural Architecture Search, "
             "ICML 2019")
    plots = {**SupernetStrategy.plots, "step size": ["delta"], "theta": ["theta_convergence"]}

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.0, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 lam=2, alpha=1.5, delta_init=1.0, Delta_max=None, updates_per_epoch=10, ordinal=False):
        self.table_only = context.data is None and context.benchmark is not None
        if self.table_only:  # rewards from the table: no supernet, no weights
            Strategy.__init__(self, context)
            self.plots = {"reward": ["reward", "best_reward"], "step size": ["delta"],
                          "theta": ["theta_convergence"]}
            self.headline = "true_acc"
        else:
            super().__init__(context, w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum,
                             w_weight_decay=w_weight_decay, grad_clip=grad_clip)
        if int(updates_per_epoch) != updates_per_epoch or updates_per_epoch < 1:
            raise ValueError(f"updates_per_epoch must be a positive integer, got {updates_per_epoch}")
        self.updates_per_epoch = int(updates_per_epoch)
        ordered = set(self.space.ordinal_tables()) if ordinal else set()
        if ordinal and not ordered:
            raise ValueError(f"ordinal=True needs a space whose options are ordered sizes, and {self.space.name!r} "
                             f"has none (SearchSpace.ordinal_tables); space='macro' has them, or pass ordinal=False")
        # One variable per row of each table; a masked table's row chooses among its unmasked columns only.
        self.layout, columns, is_categorical = [], [], []
        for name, table in self.space.tables().items():
            mask = np.ones(table.probabilities.shape, bool) if table.mask is None else table.mask
            self.layout.append((name, len(table.rows), table.probabilities.shape[1]))
            columns += [np.flatnonzero(row).tolist() for row in mask]
            is_categorical += [name not in ordered] * len(table.rows)
        self.is_categorical = torch.tensor(is_categorical, dtype=torch.bool)
        self.asng = ASNG([len(c) for c, cat in zip(columns, is_categorical) if cat],
                         [(0, len(c) - 1) for c, cat in zip(columns, is_categorical) if not cat],
                         lam=lam, alpha=alpha, delta_init=delta_init, Delta_max=Delta_max, seed=context.seed)
        if not self.is_categorical.all():
            self.plots = {**self.plots, "sigma": ["sigma"]}
        width = max(len(c) for c in columns)
        self.columns = torch.tensor([c + [0] * (width - len(c)) for c in columns], dtype=torch.long)
        self.best, self.best_reward, self.queries = None, -math.inf, 0

    # -- theta as the space's tables ----------------------------------------------------------
    def _per_row(self, categorical: torch.Tensor, ordinal: torch.Tensor) -> torch.Tensor:
        """[rows, options] from the categorical variables' rows and the ordinal ones', in the tables' order."""
        width = self.columns.shape[1]
        out = torch.zeros(len(self.is_categorical), width, dtype=F64)
        for rows, P in ((self.is_categorical, categorical), (~self.is_categorical, ordinal)):
            if rows.any():
                out[rows] = torch.nn.functional.pad(P, (0, width - P.shape[1]))
        return out

    def _as_tables(self, per_row: torch.Tensor) -> dict:
        out, start = {}, 0
        for name, rows, width in self.layout:
            P = torch.zeros(rows, width, dtype=F64)
            P.scatter_add_(1, self.columns[start:start + rows], per_row[start:start + rows])
            out[name], start = P, start + rows
        return out

    def _rows(self) -> torch.Tensor:
        """[rows, options]: each variable's distribution over its options (an ordinal one: P of each option)."""
        ordinal = self.asng.ordinal_probabilities() if self.asng.ordinals else torch.zeros(0, 1, dtype=F64)
        return self._per_row(self.asng.theta, ordinal)

    def probabilities(self) -> dict:
        """``{table: [rows, options]}``: theta (an ordinal row: P of each option), float64 on the CPU."""
        return self._as_tables(self._rows())

    def choices(self, sample: ASNGSample) -> torch.Tensor:
        """[samples, rows]: each sample's option per row (among the row's options), categorical and ordinal
        (its Gaussian draw rounded and clipped) together, in the tables' order."""
        c = torch.empty(len(sample.categorical), len(self.is_categorical), dtype=torch.long)
        c[:, self.is_categorical] = sample.categorical
        c[:, ~self.is_categorical] = self.asng.integers(sample.ordinal)
        return c

    def hard_paths(self, c) -> list:
        """The supernet's architecture argument ``{table: indices [rows]}`` of each sample: an `ASNGSample`, or
        its options per row [samples, rows] (`choices`)."""
        c = self.choices(c) if isinstance(c, ASNGSample) else c
        cols = self.columns.gather(1, c.T).T  # option index -> the table's column
        paths = []
        for k in range(len(c)):
            path, start = {}, 0
            for name, rows, _ in self.layout:
                path[name], start = cols[k, start:start + rows], start + rows
            paths.append(path)
        return paths

    def mixture(self):
        """The expected architecture E[one-hot(c)] = theta, for the supernet's validation."""
        return {k: v.float().to(self.context.device) for k, v in self.probabilities().items()}

    def distributions(self):
        return {k: self.space.table(k, v) for k, v in self.probabilities().items()}

    def architecture(self):
        """The space's rule on theta; an ordinal row takes round(m), the authors' ``mle``."""
        if self.is_categorical.all():
            return self.space.derive(self.probabilities())
        mode = self.asng.integers(self.asng.m)
        one_hot = torch.zeros(len(mode), self.columns.shape[1], dtype=F64).scatter_(1, mode[:, None], 1.0)
        return self.space.derive(self._as_tables(self._per_row(self.asng.theta, one_hot)))

    # -- one step -------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return self.updates_per_epoch if self.table_only else super().steps_per_epoch()

    def theta_metrics(self) -> dict:
        """delta after the step, and the authors' convergence measure: the mean over variables of max theta
        (an ordinal variable's largest option probability); with ordinal variables, their mean sigma."""
        out = {"delta": self.asng.delta, "theta_convergence": float(self._rows().max(dim=1).values.mean())}
        return {**out, "sigma": float(self.asng.sigma.mean())} if self.asng.ordinals else out

    def step(self):
        return self.table_step() if self.table_only else self.supernet_step()

    def supernet_step(self):
        streams, lam = self.context.streams, self.asng.lam
        # 1. w: descend the mean training loss of lambda sampled hard paths (one backward per path: the same
        #    gradient as the mean's, with one graph in memory at a time).
        x, y = next(streams.w)
        self.w_optimizer.zero_grad()
        train_loss = train_acc = 0.0
        for path in self.hard_paths(self.asng.sample()):
            loss, logits = self.loss(x, y, {k: v.to(self.context.device) for k, v in path.items()})
            (loss / lam).backward()
            train_loss, train_acc = train_loss + loss.item() / lam, train_acc + accuracy(logits, y) / lam
        self.w_optimizer.step()
        # 2. theta: lambda fresh samples ranked by their losses on a batch of the architecture half.
        x_val, y_val = next(streams.arch)
        sample = self.asng.sample()
        losses, accs = [], []
        with torch.no_grad():
            for path in self.hard_paths(sample):
                loss, logits = self.loss(x_val, y_val, {k: v.to(self.context.device) for k, v in path.items()})
                losses.append(loss.item())
                accs.append(accuracy(logits, y_val))
        # A loss that is not finite is left to the loop, which stops the search saying where.
        if all(math.isfinite(v) for v in losses):
            self.asng.update(sample, losses)
        return {"train_loss": train_loss, "train_acc": train_acc, "arch_loss": sum(losses) / lam,
                "arch_acc": sum(accs) / lam, **self.theta_metrics(), "lr": self.w_optimizer.lr}

    def table_step(self):
        sample = self.asng.sample()
        rewards = []
        for path in self.hard_paths(sample):
            architecture = self.space.decode(path)
            R = self.context.benchmark.search_accuracy(architecture)  # validation where the table has it
            rewards.append(R)
            if R > self.best_reward:
                self.best, self.best_reward = architecture, R
        self.queries += len(rewards)
        self.asng.update(sample, [1.0 - R for R in rewards])  # the loss: the table's error
        return {"reward": sum(rewards) / len(rewards), "best_reward": self.best_reward, "queries": self.queries,
                **self.theta_metrics()}

    def end_epoch(self, epoch):
        if not self.table_only:
            super().end_epoch(epoch)

    def validate(self):
        if self.table_only:
            return {"best_reward": self.best_reward, "queries": self.queries, **self.theta_metrics()}
        return {**super().validate(), **self.theta_metrics()}

    # -- saving and resuming ------------------------------------------------------------------
    def state_dict(self):
        state = {} if self.table_only else super().state_dict()
        return {**state, "asng": self.asng.state_dict(), "best": None if self.best is None else self.best.to_data(),
                "best_reward": self.best_reward, "queries": self.queries}

    def load_state_dict(self, state):
        if not self.table_only:
            super().load_state_dict(state)
        self.asng.load_state_dict(state["asng"])
        self.best = None if state["best"] is None else self.space.from_data(state["best"])
        self.best_reward, self.queries = state["best_reward"], state["queries"]

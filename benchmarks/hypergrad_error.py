"""How far each hypergradient estimate lands from the truth, and what it
costs, on the ridge problem whose true hypergradient is known
(`nasedu.hypergrad.RidgeProblem`, 8 features, float64). All estimates start
at the inner optimum w*, as a well-trained supernet would.

    .venv/bin/python benchmarks/hypergrad_error.py

Cost is counted in gradient evaluations (a Hessian-vector product counts as
two). SGE's error is the mean over 5 seeded runs. It is the measurement behind
SGE's defaults here, which the paper does not state (mu, N).
"""
import statistics

import torch

from nasedu.hypergrad import (RidgeProblem, cosine, darts_unrolled, first_order, implicit, relative_error, sge,
                              unrolled_exact)


def main():
    problem = RidgeProblem()
    alpha = problem.alpha
    w_star, truth = problem.w_star(alpha), problem.true_hypergradient(alpha)
    rows = [("first order", 1, first_order(problem, w_star, alpha, None)),
            ("DARTS one-step, finite difference (xi=0.01)", 4,
             darts_unrolled(problem, w_star, alpha, None, None, xi=0.01)),
            ("one-step unrolled, exact (xi=0.01)", 3, unrolled_exact(problem, w_star, alpha, [None], None, xi=0.01))]
    for k in (5, 20, 50):
        rows.append((f"implicit, conjugate gradient, {k} steps", 2 * k + 3,
                     implicit(problem, w_star, alpha, None, None, method="cg", iterations=k)))
        rows.append((f"implicit, Neumann, {k} terms", 2 * k + 3 + 100,  # + power iteration for eta
                     implicit(problem, w_star, alpha, None, None, method="neumann", iterations=k)))
    print(f"{'estimator':<48} {'gradients':>9} {'rel. error':>10} {'cosine':>7}")
    for name, cost, estimate in rows:
        print(f"{name:<48} {cost:>9} {relative_error(estimate, truth):>10.2e} {cosine(estimate, truth):>7.3f}")
    print("\nSGE (p = 0.01), mean over 5 seeds: relative error to the truth")
    print(f"{'N':>3} {'mu':>7} {'Q':>4} {'gradients':>9} {'rel. error':>10} {'cosine':>7}")
    for N in (1, 10, 50):
        for mu in (1e-4, 1e-2, 1.0):
            for Q in (1, 10, 100):
                runs = [sge(problem, w_star, alpha, [None] * N, None, Q=Q, mu=mu, p=0.01,
                            generator=torch.Generator().manual_seed(s)) for s in range(5)]
                err = statistics.mean(relative_error(r, truth) for r in runs)
                cos = statistics.mean(cosine(r, truth) for r in runs)
                print(f"{N:>3} {mu:>7.0e} {Q:>4} {N * (Q + 1) + 2:>9} {err:>10.2e} {cos:>7.3f}")


if __name__ == "__main__":
    main()

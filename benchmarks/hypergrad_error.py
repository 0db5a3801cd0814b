"""How far each hypergradient estimate lands from the truth, and what it
costs, on the ridge problem whose true hypergradient is known
(`nasedu.hypergrad.RidgeProblem`, 8 features, float64). All estimates start
at the inner optimum w*, as a well-trained supernet would
(`nasedu.hypergrad.error_vs_cost`, which notebook 05 plots).

    .venv/bin/python benchmarks/hypergrad_error.py

Cost is counted in gradient evaluations (a Hessian-vector product counts as
two; see `error_vs_cost`) and in wall time. SGE's figures are means over 5
seeded runs. It is the measurement behind SGE's defaults here, which the
paper does not state (mu, N). A few minutes on a 2-core CPU.
"""
from nasedu.hypergrad import RidgeProblem, error_vs_cost


def main():
    rows = error_vs_cost(RidgeProblem(), sge_mu=(1e-4, 1e-2, 1.0))
    print(f"{'estimator':<36} {'setting':<22} {'gradients':>9} {'ms':>8} {'rel. error':>10} {'cosine':>7}")
    for r in rows:
        print(f"{r['estimator']:<36} {r['setting']:<22} {r['gradients']:>9} {1e3 * r['seconds']:>8.1f} "
              f"{r['rel_error']:>10.2e} {r['cosine']:>7.3f}")


if __name__ == "__main__":
    main()

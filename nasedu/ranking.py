"""Does weight sharing rank architectures well?

A weight-sharing search (ENAS, random search with weight sharing, the
one-shot evaluation of DARTS's answer) judges an architecture by its accuracy
with the supernet's shared weights, the *shared-weight accuracy*, instead of
training it alone. That is only as good as the order it puts architectures in.
Yu, Sciuto, Jaggi, Musat & Salzmann ("Evaluating the Search Phase of Neural
Architecture Search", ICLR 2020; code: kcyu2014/eval-nas@385376a, MIT) measure
that order against the architectures' accuracy after training alone, with
Kendall's tau (``scipy.stats.kendalltau``, tau-b, as their code) and find that
under weight sharing the ranking of candidates does not reflect their true
performance: random architectures do as well as the searches' answers.

Here the truth is a table (`nasedu.bench`, e.g. ``"nb201-digits"``: every
NAS-Bench-201 cell trained alone on digits), so no training is needed:
`rank_correlation` samples k distinct architectures of the table, measures each
one's shared-weight accuracy on a split with a trained supernet, and returns
Kendall's tau and Spearman's rho (``scipy.stats``) with one record per
architecture for a scatter plot.

BatchNorm decides much of the answer: ``bn="batch"`` normalises each batch
with its own statistics (ENAS's reward; per-architecture recalibration),
``bn="running"`` uses the running statistics the supernet gathered over all
the paths it trained (random search with weight sharing's code,
``model.eval()``).

Measured (quick budget, NB201 on digits, k = 50, seeds 0-2, one CPU thread):
random search with weight sharing's supernet gives tau = 0.26, 0.25, 0.15 with
batch statistics and 0.23, 0.01, 0.03 with running ones; ENAS's 0.38, 0.25,
0.28 and 0.17, 0.07, 0.12. Weakly positive at best, as Yu et al. found.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RankCorrelation", "rank_correlation", "shared_weight_accuracy"]


@dataclass
class RankCorrelation:
    """Shared-weight against true accuracy of k architectures: `records` (one dict per architecture:
    ``architecture`` (its text), ``shared_acc``, ``true_acc``), Kendall's tau-b and Spearman's rho with their
    p-values (scipy.stats), and how they were measured. `top_true_rank`: the true rank (1 = best) among the k
    of the architecture the shared weights rank first."""

    records: list
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    bn: str
    split: str
    benchmark: str
    top_true_rank: int

    @property
    def shared(self) -> list:
        return [r["shared_acc"] for r in self.records]

    @property
    def true(self) -> list:
        return [r["true_acc"] for r in self.records]

    def __repr__(self):
        return (f"RankCorrelation(k={len(self.records)}, Kendall tau = {self.kendall_tau:.3f} "
                f"(p = {self.kendall_p:.2g}), Spearman rho = {self.spearman_rho:.3f} (p = {self.spearman_p:.2g}); "
                f"BatchNorm {self.bn!r}, "
                f"{self.split} split, truth: {self.benchmark}; the shared weights' favourite is "
                f"{self.top_true_rank} of {len(self.records)} by truth)")


def _strategy(obj):
    """A strategy with a supernet, from itself or a `SearchResult`."""
    strategy = getattr(obj, "strategy", obj)
    if not hasattr(strategy, "supernet") or not hasattr(strategy, "hard_path"):
        raise ValueError(f"ranking by shared weights needs a strategy that trains a supernet (e.g. 'enas', "
                         f"'random_ws', 'darts'), or its search result; got {type(strategy).__name__}")
    return strategy


def shared_weight_accuracy(strategy, architectures, *, split: str = "val", bn: str = "batch") -> list:
    """The accuracy of each of `architectures` running alone on the shared weights of `strategy`'s supernet
    (or a search result's), on the whole `split` of its data, BatchNorm as `bn` ("batch" or "running")."""
    strategy = _strategy(strategy)
    return [strategy.context.evaluate(strategy.supernet, strategy.hard_path(a), split=split, bn=bn)[1]
            for a in architectures]


def rank_correlation(strategy, k: int = 50, *, seed: int = 0, bn: str = "batch", split: str = "val",
                     benchmark=None, architectures=None) -> RankCorrelation:
    """Kendall's tau and Spearman's rho between the shared-weight accuracy (`shared_weight_accuracy`) and the
    true accuracy in `benchmark` (a table name or `nasedu.bench.Benchmark`; by default the search's own table)
    of `k` distinct architectures of the table drawn uniformly with `seed` (or of the given `architectures`)."""
    from scipy.stats import kendalltau, spearmanr

    from .bench import load

    strategy = _strategy(strategy)
    table = benchmark if benchmark is not None else strategy.context.benchmark
    if isinstance(table, str):
        table = load(table)
    if table is None:
        raise ValueError(f"rank_correlation needs a table of true accuracies for the {strategy.space.name!r} space: "
                         f"search data='digits' with space='nb201' (its table is 'nb201-digits'), or pass "
                         f"benchmark=")
    if type(table.space) is not type(strategy.space):
        raise ValueError(f"the {table.name} table holds architectures of the {table.space.name!r} space, but the "
                         f"supernet is of the {strategy.space.name!r} space")
    if architectures is None:
        if int(k) != k or k < 3:
            raise ValueError(f"k (architectures to rank) must be an integer of at least 3, got {k}")
        architectures = table.sample(int(k), seed=seed)
    architectures = [strategy.space.validate(a) for a in architectures]
    if len(architectures) < 3:
        raise ValueError(f"ranking needs at least 3 architectures, got {len(architectures)}")
    shared = shared_weight_accuracy(strategy, architectures, split=split, bn=bn)
    true = [table.accuracy(a) for a in architectures]
    tau, rho = kendalltau(shared, true), spearmanr(shared, true)
    first = max(range(len(shared)), key=lambda i: shared[i])
    top_true_rank = 1 + sum(t > true[first] for t in true)
    records = [{"architecture": str(a), "shared_acc": s, "true_acc": t}
               for a, s, t in zip(architectures, shared, true)]
    return RankCorrelation(records, float(tau.statistic), float(tau.pvalue), float(rho.statistic),
                           float(rho.pvalue), bn, split, table.name, top_true_rank)

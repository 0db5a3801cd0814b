"""ENAS (Pham et al. 2018), random search with weight sharing (Li & Talwalkar 2019), and the rank
correlation of shared-weight accuracy with the truth (Yu et al. 2020): tiny searches on both cell spaces,
the controller's probability model, its REINFORCE step, the conditioning measure, exact resumption and
clear errors."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from helpers import InterruptAt
from scipy.stats import kendalltau, spearmanr

import nasedu
from nasedu.context import SearchContext
from nasedu.data import Streams, load_dataset
from nasedu.ranking import rank_correlation
from nasedu.spaces import get_space
from nasedu.strategies import ENAS, STRATEGIES, RandomWS
from nasedu.strategies.enas import Controller, controller_conditioning, controller_program

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {"nb201": dict(space="nb201", C=4, N=1),
          "darts": dict(space="darts", C=4, layers=2, steps=2, multiplier=2)}
STRATEGY_OPTIONS = {"enas": dict(controller_steps=2, controller_aggregate=3, final_samples=3, marginal_samples=50),
                    "random_ws": dict(candidates=8, eval_batches=2, finalists=3, select_every=1)}


def tiny(strategy, space, **options):
    return {"data": "synthetic", "epochs": 2, "batch_size": 32, "progress": False, **SPACES[space],
            **STRATEGY_OPTIONS[strategy], **options}


def assert_same_search(a, b):
    assert a.architecture == b.architecture
    assert a.history.steps == b.history.steps
    for ra, rb in zip(a.history.epochs, b.history.epochs):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {k: v for k, v in rb.items() if k != "seconds"}
    for module in ("supernet", "controller"):
        if hasattr(a.strategy, module):
            wa, wb = getattr(a.strategy, module).state_dict(), getattr(b.strategy, module).state_dict()
            assert all(torch.equal(wa[k], wb[k]) for k in wa), module


@pytest.mark.parametrize("strategy,space", list(itertools.product(["enas", "random_ws"], ["nb201", "darts"])))
def test_quick_searches_derive_valid_architectures_and_resume_exactly(tmp_path, strategy, space):
    options = tiny(strategy, space)
    reference = nasedu.search(strategy, **options)
    s = reference.strategy
    assert STRATEGIES[strategy] is type(s) and reference.history.meta["strategy"] == strategy
    assert s.space.validate(reference.architecture) == reference.architecture
    steps = s.steps_per_epoch()
    assert len(reference.history.steps) == 2 * steps and len(reference.history.epochs) == 2
    last = reference.history.epochs[-1]
    assert {"train_loss", "selected_acc", "oneshot_val_acc"} <= set(last)
    assert last["architecture"] == reference.architecture.to_data()
    # What the dashboard shows: one distribution per row of each of the space's tables.
    for name, table in s.distributions().items():
        assert table.probabilities.shape == tuple(s.space.shapes()[name])
        assert ("estimated from" if strategy == "enas" else "uniform sampler") in table.title
        assert np.allclose(table.probabilities.sum(1), 1)
    if strategy == "enas":
        w_steps = steps - s.controller_steps
        kinds = [("train_loss" in r, "reward" in r) for r in reference.history.steps[:steps]]
        assert kinds == [(True, False)] * w_steps + [(False, True)] * s.controller_steps  # the alternation
        # The epoch's means are each phase's own, not diluted by the other phase's steps.
        assert last["train_loss"] == pytest.approx(np.mean([r["train_loss"] for r in
                                                            reference.history.steps[steps:steps + w_steps]]))
        stop = steps + w_steps + 1  # stopped inside the second epoch's controller phase
    else:
        stop = steps + 2
    nasedu.search(strategy, out=str(tmp_path), callbacks=[InterruptAt(stop)], **options)
    resumed = nasedu.search(strategy, out=str(tmp_path), **options)
    assert_same_search(reference, resumed)


def enas_context(space="darts", **space_options):
    bundle = load_dataset("synthetic")
    return SearchContext(space=get_space(space, **space_options), device="cpu", epochs=1, seed=0, data=bundle,
                         streams=Streams(bundle, 16, 0))


def test_controller_samples_of_the_darts_cell_are_hard_paths_with_two_inputs_per_node():
    strategy = ENAS(enas_context("darts", C=4, layers=2))  # the paper's 4 nodes
    space, none = strategy.space, strategy.space.primitives.index("none")
    sample, paths = strategy.sample(200)
    assert sample.actions.shape == (200, strategy.controller.decisions) == (200, 2 * 4 * 4)
    assert set(paths) == {"normal", "reduce"}
    for k in range(200):
        path = {table: a[k] for table, a in paths.items()}
        genotype = space.decode(path)  # raises unless every node has exactly two edges that are not none
        assert {t: a.tolist() for t, a in space.encode(genotype).items()} == {t: a.tolist() for t, a in path.items()}
        for table, a in path.items():
            start = 0
            for node in range(4):
                kept = (a[start:start + node + 2] != none).sum()
                assert kept == 2, (table, node)
                start += node + 2
    # The two inputs of a node differ; the code's two convolutions start out favoured (b_soft, the fixed bias).
    assert (sample.actions[:, 0::4] != sample.actions[:, 1::4]).all()
    ops = [strategy.ops[int(a)] for a in sample.actions[:, 2::4].flatten()]
    share = sum(op in ("sep_conv_3x3", "sep_conv_5x5") for op in ops) / len(ops)
    assert share > 2 / 7 + 0.1


@pytest.mark.parametrize("program,num_ops", [([("cell", "edges", 6)], 5),
                                             ([("normal", "nodes", 1), ("reduce", "nodes", 1)], 7)])
def test_the_controller_is_a_probability_distribution_over_architectures(program, num_ops):
    """Every action sequence scored teacher-forced: the probabilities sum to 1 (the second input's mask
    included), and a sampled sequence's log-probability is the teacher-forced one."""
    torch.manual_seed(0)
    controller = Controller(program, num_ops, lstm_size=16, init_range=0.5, biased_ops=[3])
    options = []  # every decision's options in the order sampled: per node two inputs, then two operations
    for _, kind, n in program:
        if kind == "edges":
            options += [range(num_ops)] * n
        else:
            options += [o for i in range(n) for o in (range(i + 2), range(i + 2), range(num_ops), range(num_ops))]
    every = torch.tensor(list(itertools.product(*options)))
    with torch.no_grad():
        total = controller.run(actions=every).log_prob.double().exp().sum()
    assert total == pytest.approx(1.0, abs=1e-4)
    sample = controller.run(5, generator=torch.Generator().manual_seed(1))
    again = controller.run(actions=sample.actions)
    assert torch.allclose(sample.log_prob, again.log_prob) and torch.equal(sample.entropy, again.entropy)


def test_a_controller_step_is_reinforce_with_the_codes_baseline():
    """Rewards fixed by hand: the baseline folds each reward in before its own advantage, the loss's gradient is
    -(1/M) sum_k (R_k - b_k) grad log pi(m_k), and Adam (beta_1 = 0) takes the step."""
    strategy = ENAS(enas_context("nb201", C=4, N=1), controller_aggregate=3, entropy_weight=0.0)
    accs = iter([0.5, 0.25, 0.75])
    strategy.path_accuracies = lambda paths, batches, bn="batch": [next(accs) for _ in paths]
    strategy.baseline.value = 0.4
    before = {k: p.detach().clone() for k, p in strategy.controller.named_parameters()}
    state = strategy.generator.get_state()
    metrics = strategy.controller_step()
    b, advantages = 0.4, []
    for R in (0.5, 0.25, 0.75):
        b = b - (1 - 0.99) * (b - R)
        advantages.append(R - b)
    assert metrics["baseline"] == pytest.approx(b) and metrics["reward"] == pytest.approx(0.5)
    # The same samples again, from the parameters before the step: the gradient by hand.
    after = {k: p.detach().clone() for k, p in strategy.controller.named_parameters()}
    with torch.no_grad():
        for k, p in strategy.controller.named_parameters():
            p.copy_(before[k])
    strategy.generator.set_state(state)
    sample = strategy.controller.run(3, generator=strategy.generator)
    grads = [torch.autograd.grad(sample.log_prob[k], list(strategy.controller.parameters()), retain_graph=True,
                                 allow_unused=True) for k in range(3)]
    lr = strategy.controller_optimizer.param_groups[0]["lr"]
    for i, (name, _) in enumerate(strategy.controller.named_parameters()):
        g = -sum(a * (gk[i] if gk[i] is not None else 0) for a, gk in zip(advantages, grads)) / 3
        if not torch.is_tensor(g):
            continue
        # Adam's first step with beta_1 = 0 moves each entry by lr * g / (|g| + eps).
        expected = before[name] - lr * g / (g.abs() + 1e-3)
        assert torch.allclose(after[name], expected, atol=1e-6), name


def test_the_conditioning_measure_reads_zero_without_memory_and_more_with_it():
    program = controller_program(get_space("darts", steps=3, multiplier=3))[0]
    forgetful = Controller(program, 7, lstm_size=16)
    with torch.no_grad():
        for cell in forgetful.lstm:  # zero LSTM weights: h = 0 always, every decision the same softmax
            cell.weight_ih.zero_()
            cell.weight_hh.zero_()
    none = controller_conditioning(forgetful, samples=256)
    assert none["policy_dependence"] < 1e-6 and none["policy_dependence_max"] < 1e-6
    torch.manual_seed(0)
    strong = controller_conditioning(Controller(program, 7, lstm_size=16, init_range=1.5), samples=256)
    assert strong["policy_dependence"] > 0.05
    for result in (none, strong):
        assert all(math.isfinite(v) for k, v in result.items() if k != "hidden_architecture_rho")
        assert result["decisions"] == 2 * 3 * 4 and result["mutual_information_shuffled"] >= 0


def test_rank_correlation_is_scipys_tau_and_rho_of_shared_against_true_accuracy():
    result = nasedu.search("random_ws", data="digits", space="nb201", C=4, N=1, epochs=2, batch_size=32,
                           progress=False, candidates=4, eval_batches=1, finalists=2)
    bench = nasedu.bench.load("nb201-digits")
    rc = rank_correlation(result, k=10, seed=3)
    assert rc.benchmark == "nb201-digits" and len(rc.records) == 10 and rc.bn == "batch"
    assert [r["true_acc"] for r in rc.records] == [bench.accuracy(r["architecture"]) for r in rc.records]
    assert len({r["architecture"] for r in rc.records}) == 10
    assert rc.kendall_tau == pytest.approx(kendalltau(rc.shared, rc.true).statistic)
    assert rc.spearman_rho == pytest.approx(spearmanr(rc.shared, rc.true).statistic)
    assert math.isfinite(rc.kendall_tau) and math.isfinite(rc.spearman_rho) and 1 <= rc.top_true_rank <= 10
    running = rank_correlation(result.strategy, architectures=[r["architecture"] for r in rc.records],
                               bn="running")
    assert running.true == rc.true and running.bn == "running"


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="cannot use the 'macro' space"):
        nasedu.search("enas", data="synthetic", space="macro", epochs=1, progress=False)
    with pytest.raises(ValueError, match="'none' among the primitives"):
        ENAS(enas_context("darts", C=4, layers=2, primitives=["max_pool_3x3", "skip_connect"]))
    with pytest.raises(ValueError, match="controller_steps must be a positive integer"):
        nasedu.search("enas", **tiny("enas", "nb201", controller_steps=0))
    with pytest.raises(ValueError, match="temperature must be positive"):
        nasedu.search("enas", **tiny("enas", "nb201", temperature=0))
    with pytest.raises(ValueError, match="bn must be 'running'"):
        nasedu.search("random_ws", **tiny("random_ws", "nb201", bn="eval"))
    with pytest.raises(ValueError, match="candidates must be a positive integer"):
        nasedu.search("random_ws", **tiny("random_ws", "nb201", candidates=0))
    with pytest.raises(ValueError, match="needs data"):
        nasedu.search("random_ws", space="macro", benchmark="nas-bench-macro", epochs=1, progress=False)
    table_search = nasedu.search("random", space="nb201", benchmark="nb201-digits", epochs=1, samples_per_epoch=2,
                                 progress=False)
    with pytest.raises(ValueError, match="trains a supernet"):
        rank_correlation(table_search)
    synthetic = nasedu.search("random_ws", **tiny("random_ws", "nb201", epochs=1))
    with pytest.raises(ValueError, match="table of true accuracies"):
        rank_correlation(synthetic)
    with pytest.raises(ValueError, match="at least 3"):
        rank_correlation(synthetic, k=2, benchmark="nb201-digits")
    with pytest.raises(ValueError, match="'macro' space"):
        rank_correlation(synthetic, benchmark="nas-bench-macro")
    assert isinstance(synthetic.strategy, RandomWS)

"""SNAS and NASP: the Gumbel-softmax relaxation against the categorical it
relaxes, the temperature schedule of the SNAS code, the resource term's pull
towards cheap operations, NASP's one-operation-per-edge weight step, its box
and its discrete point, quick searches on both spaces that resume exactly,
and clear errors for bad options."""
import pytest
import torch

import nasedu
from nasedu.spaces.nb201 import NB201_OPS
from nasedu.strategies.snas import gumbel_softmax_sample, temperature_schedule

from helpers import InterruptAt, assert_same_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {"nb201": dict(space="nb201", C=4, N=1),
          "darts": dict(space="darts", C=4, layers=3, steps=2, multiplier=2)}
TINY = dict(data="synthetic", epochs=2, batch_size=32, progress=False)
FREE_NB201_OPS = {"none", "skip_connect", "avg_pool_3x3"}  # the NAS-Bench-201 operations without parameters


def tiny(space, **options):
    return {**TINY, **SPACES[space], **options}


# -- SNAS: the relaxation -------------------------------------------------------------------

def test_gumbel_softmax_sample_mean_tends_to_the_categorical_as_the_temperature_falls():
    """E[Z] over 20,000 seeded samples of one row. Measured max |E[Z] - softmax(alpha)|:
    0.21 at tau = 5, 0.070 at 1, 0.0044 at 0.01 (the sampling error of a mean of
    20,000 Bernoullis is at most 0.0035); at tau = 0.01, 97% of samples are
    one-hot within 0.01. Seeded, so the bounds cannot flake."""
    alpha = torch.tensor([1.0, 0.0, -1.0, 0.5, -2.0])
    p = alpha.softmax(-1)
    generator = torch.Generator().manual_seed(0)
    errors, one_hot = {}, {}
    for tau in (5.0, 1.0, 0.01):
        Z = gumbel_softmax_sample(alpha.expand(20000, 5), tau, generator)
        assert torch.allclose(Z.sum(-1), torch.ones(20000))
        errors[tau] = (Z.mean(0) - p).abs().max().item()
        one_hot[tau] = (Z.max(-1).values > 0.99).float().mean().item()
    assert errors[5.0] > 0.15 and errors[1.0] > 0.04 and errors[0.01] < 0.015, errors
    assert one_hot[0.01] > 0.95 and one_hot[1.0] < 0.05, one_hot


def test_gumbel_softmax_sample_is_differentiable_in_alpha_and_reproducible_from_its_generator():
    alpha = torch.zeros(3, 4, requires_grad=True)
    Z = gumbel_softmax_sample(alpha, 0.5, torch.Generator().manual_seed(1))
    (Z * torch.arange(4.0)).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0
    again = gumbel_softmax_sample(alpha.detach(), 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(Z.detach(), again)


def test_temperature_follows_the_snas_code_schedule():
    """The values run from the authors' Temp_Scheduler for 150 epochs (notes section 9)."""
    assert [temperature_schedule(e, 150) for e in (0, 74, 149)] == pytest.approx([0.993533, 0.515, 0.03], abs=1e-6)
    assert temperature_schedule(400, 150) == 0.03  # floored at tau_min


# -- SNAS: the step ----------------------------------------------------------------------

def test_snas_step_is_single_level_on_the_training_split():
    """One step draws one batch of the whole training split (neither half) and
    moves w and alpha from the same backward pass; the temperature is epoch 0's."""
    result = nasedu.search("snas", **tiny("nb201", epochs=1))
    s = result.strategy
    streams = s.context.streams
    assert len(result.history.steps) == streams.train.batches_per_pass
    assert streams.w.state_dict() == {"pass": 0, "batch": 0} and streams.arch.state_dict() == {"pass": 0, "batch": 0}
    alpha, w = s.alpha["cell"].detach().clone(), s.supernet.classifier.weight.detach().clone()
    metrics = s.step()
    assert not torch.equal(alpha, s.alpha["cell"]) and not torch.equal(w, s.supernet.classifier.weight)
    assert metrics["temperature"] == pytest.approx(temperature_schedule(1, 1))  # after epoch 0: the floor
    assert result.history.steps[0]["temperature"] == pytest.approx(0.03)  # a 1-epoch search: (1 - 1/1) -> tau_min
    tables = s.distributions()
    assert torch.allclose(torch.as_tensor(tables["cell"].probabilities).sum(-1).float(), torch.ones(6))


def test_resource_term_moves_the_architecture_to_operations_without_parameters():
    """A large lambda_R on the parameter count: every operation SNAS derives is
    parameter-free, and the expected cost falls; without it the same search keeps
    operations with parameters (measured: four convolutions of six)."""
    options = tiny("nb201", epochs=3, alpha_lr=0.5, resource_cost="params")
    plain = nasedu.search("snas", **options)
    frugal = nasedu.search("snas", resource_lambda=1.0, **options)
    assert set(frugal.architecture) <= FREE_NB201_OPS, frugal.architecture
    assert not set(plain.architecture) <= FREE_NB201_OPS, plain.architecture
    costs = [r["resource"] for r in frugal.history.steps]
    assert sum(costs[-5:]) < sum(costs[:5])
    assert "resource" not in plain.history.steps[0]


def test_resource_term_is_zero_on_free_operations_and_positive_on_convolutions():
    s = nasedu.search("snas", **tiny("nb201", epochs=1, resource_lambda=1.0)).strategy
    one_hot = lambda name: {"cell": torch.nn.functional.one_hot(  # noqa: E731
        torch.full((6,), NB201_OPS.index(name)), len(NB201_OPS)).float()}
    assert s.resource(one_hot("skip_connect")).item() == 0
    assert s.resource(one_hot("nor_conv_3x3")).item() > s.resource(one_hot("nor_conv_1x1")).item() > 0
    s.log_penalty = False  # the linear form: a share of the dearest architecture (all 3x3 convolutions here)
    assert s.resource(one_hot("nor_conv_3x3")).item() == pytest.approx(1.0)
    assert 0 < s.resource(one_hot("nor_conv_1x1")).item() < 1 and s.resource(one_hot("avg_pool_3x3")).item() == 0


# -- NASP ----------------------------------------------------------------------------------

def _count_op_calls(supernet):
    """Forward hooks counting the calls of every candidate operation module, keyed (cell, edge, option)."""
    calls, handles, cell_of = {}, [], {}
    for table, edge, option, op in supernet.choices():
        if op is None:  # `none` builds no module
            continue
        key = (table, edge, option)
        cell_of[key] = cell_of.get(key, -1) + 1
        full = (cell_of[key], table, edge, option)
        calls[full] = 0
        handles.append(op.register_forward_hook(lambda m, i, o, full=full: calls.__setitem__(full, calls[full] + 1)))
    return calls, handles


@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_nasp_weight_step_computes_exactly_the_chosen_operation_of_each_edge(space):
    """On the readable supernet: the weight step runs one operation per edge of
    the discrete architecture (in the DARTS cell, none on the edges it leaves
    out), and only those operations' weights get a gradient. The alpha step
    before it runs every operation once (its gradient needs their outputs)."""
    s = nasedu.search("nasp", fast=False, **tiny(space, epochs=1, alpha_lr=0.05)).strategy
    chosen = {k: v.tolist() for k, v in s.proximal_discrete().items()}
    none = {k: (t.columns.index("none") if "none" in t.columns else None) for k, t in s.space.tables().items()}
    calls, handles = _count_op_calls(s.supernet)
    try:
        s.w_step(next(s.context.streams.w), s.proximal_discrete())
        for (cell, table, edge, option), n in calls.items():
            expected = int(option == chosen[table][edge] and option != none[table])
            assert n == expected, (cell, table, edge, option, n)
        per_edge = {}
        for (cell, table, edge, option), n in calls.items():
            per_edge[(cell, table, edge)] = per_edge.get((cell, table, edge), 0) + n
        assert set(per_edge.values()) <= {0, 1}
        if space == "nb201":
            assert all(n == 1 for n in per_edge.values())  # every edge carries one operation
        for table, edge, option, op in s.supernet.choices():
            for p in ([] if op is None else op.parameters()):
                assert (p.grad is not None) == (option == chosen[table][edge]), (table, edge, option)
        # A whole step: the alpha step computes every operation, then the weight step the chosen ones.
        for key in calls:
            calls[key] = 0
        before = {k: v.tolist() for k, v in s.proximal_discrete().items()}
        s.step()
        after = {k: v.tolist() for k, v in s.proximal_discrete().items()}
        for (cell, table, edge, option), n in calls.items():
            assert n == int(option != none[table]) + int(option == after[table][edge] and option != none[table]), \
                (cell, table, edge, option, n, before[table][edge])
    finally:
        for h in handles:
            h.remove()


def test_nasp_keeps_alpha_in_its_box_and_trains_the_architecture_it_reports():
    """prox_C2 clips alpha to [0, 1] after every Adam step (a large learning rate
    drives entries to both bounds); the hard path it trains is prox_C1(alpha),
    which is the architecture it reports."""
    result = nasedu.search("nasp", **tiny("nb201", epochs=2, alpha_lr=0.5))
    s = result.strategy
    a = s.alpha["cell"].detach()
    assert a.min() >= 0 and a.max() <= 1
    assert (a == 0).any() and (a == 1).any()
    assert torch.equal(s.proximal_discrete()["cell"].cpu(), s.space.encode(result.architecture)["cell"])
    assert "none" not in result.architecture  # allow_none=False: every edge carries an operation
    assert torch.allclose(torch.as_tensor(s.distributions()["cell"].probabilities).sum(-1).float(), torch.ones(6))


def test_nasp_gradient_vanishes_at_the_all_none_cell():
    """Why 'none' is excluded by default: alpha starts tied at 0.5, and with
    allow_none=True the tie picks 'none' (option 0 of NAS-Bench-201) on every
    edge; every cell then outputs zero and the gradient at this discrete
    point is exactly zero, so the search never leaves it."""
    stuck = nasedu.search("nasp", **tiny("nb201", epochs=1, allow_none=True)).strategy
    with torch.no_grad():
        stuck.alpha["cell"].fill_(0.5)
    assert set(stuck.architecture()) == {"none"}
    x, y = next(stuck.context.streams.arch)
    grads, _, _ = stuck.alpha_gradient(x, y)
    assert all(torch.count_nonzero(g) == 0 for g in grads)
    moving = nasedu.search("nasp", **tiny("nb201", epochs=1)).strategy
    with torch.no_grad():
        moving.alpha["cell"].fill_(0.5)
    assert set(moving.architecture()) == {"skip_connect"}  # the tie goes to the first operation but none
    grads, _, _ = moving.alpha_gradient(x, y)
    assert all(torch.count_nonzero(g) > 0 for g in grads)


def test_nasp_complexity_regulariser_moves_the_architecture_to_cheap_operations():
    """The AAAI version's regulariser (off by default): with a large weight every
    operation is parameter-free; the same search without it keeps three 3x3 convolutions."""
    options = tiny("nb201", epochs=2, alpha_lr=0.05)
    plain = nasedu.search("nasp", **options)
    frugal = nasedu.search("nasp", complexity_weight=100.0, **options)
    assert set(frugal.architecture) <= FREE_NB201_OPS, frugal.architecture
    assert not set(plain.architecture) <= FREE_NB201_OPS, plain.architecture


# -- both: searches, resume, errors ------------------------------------------------------------

@pytest.mark.parametrize("strategy", ["snas", "nasp"])
@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_quick_search_derives_a_valid_architecture_and_resumes_exactly(tmp_path, strategy, space):
    """Interrupted mid-epoch and resumed, the search ends exactly where the
    uninterrupted one does: alpha, weights, architecture and recorded numbers
    (SNAS's Gumbel noise comes from a generator saved with the checkpoint)."""
    options = tiny(space)
    reference = nasedu.search(strategy, **options)
    assert reference.space.validate(reference.architecture) == reference.architecture
    assert set(reference.strategy.distributions()) == set(reference.space.shapes())
    nasedu.search(strategy, out=str(tmp_path), callbacks=[InterruptAt(3)], **options)
    resumed = nasedu.search(strategy, out=str(tmp_path), **options)
    assert_same_run(reference, resumed)
    other = nasedu.search(strategy, seed=1, **options)
    assert any(not torch.equal(a, other.strategy.alpha[k]) for k, a in reference.strategy.alpha.items())


def test_the_quick_budget_scales_the_architecture_learning_rates():
    from nasedu.budgets import budget_settings

    assert budget_settings("quick", "snas", "nb201")["strategy"] == {"paper_steps": 150 * 782}
    assert budget_settings("quick", "nasp", "nb201")["strategy"]["alpha_lr"] > 3e-4
    assert budget_settings("full", "snas", "nb201")["strategy"] == {}


def test_snas_paper_steps_lets_a_short_search_move_alpha_as_far_as_the_paper():
    """paper_steps: alpha_lr x paper_steps / this search's steps (epochs x steps per epoch)."""
    for epochs in (1, 2):
        s = nasedu.search("snas", **tiny("nb201", epochs=epochs, paper_steps=117_300)).strategy
        steps = epochs * s.steps_per_epoch()
        assert s.alpha_lr == pytest.approx(3e-4 * 117_300 / steps)
        assert s.alpha_optimizer.param_groups[0]["lr"] == pytest.approx(s.alpha_lr)
    unscaled = nasedu.search("snas", **tiny("nb201", epochs=1, paper_steps=None)).strategy
    assert unscaled.alpha_lr == 3e-4  # the paper's rate, as given


@pytest.mark.parametrize("strategy, options, message", [
    ("snas", {"temperature": 0.01, "temperature_min": 0.03}, "temperature_min <= temperature"),
    ("snas", {"resource_cost": "mac"}, r"resource_cost one of \['all', 'flops', 'params'\]"),
    ("snas", {"resource_lambda": -1.0}, "resource_lambda >= 0"),
    ("snas", {"temperature_epochs": 0}, "temperature_epochs >= 1"),
    ("nasp", {"alpha_init": 2.0}, r"box \[0, 1\]"),
    ("nasp", {"complexity_weight": -1.0}, "complexity_weight >= 0"),
])
def test_bad_options_are_named(strategy, options, message):
    with pytest.raises(ValueError, match=message):
        nasedu.search(strategy, **tiny("nb201", epochs=1, **options))


def test_unknown_option_suggests_the_right_one():
    with pytest.raises(TypeError, match="did you mean 'temperature_min'"):
        nasedu.search("snas", **tiny("nb201", epochs=1, temprature_min=0.1))

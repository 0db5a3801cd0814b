"""When search fails (issue 13): the collapse diagnostics against exact
answers, the optimisers of alpha, and SDARTS, DARTS- and beta-DARTS, each
checked to change exactly what its paper changes and nothing else."""
import math

import pytest
import torch
import torch.nn.functional as F

import nasedu
from nasedu.diagnostics import collapse_metrics, hessian_eigenvalue, operation_counts
from nasedu.genotypes import Genotype
from nasedu.spaces import get_space
from nasedu.strategies.beta_darts import beta_decay
from nasedu.strategies.darts_minus import beta_schedule
from nasedu.strategies.sdarts import clip_to_simplex
from nasedu.training import untracked_batch_norm

from helpers import InterruptAt, assert_same_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {"nb201": dict(space="nb201", C=4, N=1),
          "darts": dict(space="darts", C=4, layers=3, steps=2, multiplier=2)}
TINY = dict(data="synthetic", epochs=2, batch_size=32, progress=False)
VARIANTS = ["sdarts_rs", "sdarts_adv", "darts_minus", "beta_darts"]


def tiny(space="nb201", **options):
    return {**TINY, **SPACES[space], **options}


# -- counting collapse ------------------------------------------------------------------------------

def test_operation_counts_on_hand_made_architectures():
    cell = get_space("nb201").parse(
        "|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|")
    assert operation_counts(cell) == {"skip_count": 3, "param_free_count": 5}
    genotype = Genotype(normal=[("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 1),
                                ("dil_conv_5x5", 2), ("skip_connect", 3), ("avg_pool_3x3", 0), ("sep_conv_5x5", 4)],
                        normal_concat=[2, 3, 4, 5],
                        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                                ("sep_conv_3x3", 0), ("skip_connect", 2), ("dil_conv_3x3", 1), ("sep_conv_3x3", 0)],
                        reduce_concat=[2, 3, 4, 5])
    # normal: 3 skips + max + avg pool; reduction: 2 skips + 3 max pools (both cells count)
    assert operation_counts(genotype) == {"skip_count": 5, "param_free_count": 10}
    metrics = collapse_metrics(get_space("darts"), genotype, {"supernet_val_acc": 0.9, "oneshot_val_acc": 0.25})
    assert metrics["discretisation_gap"] == pytest.approx(0.65) and metrics["skip_count"] == 5


def test_every_darts_epoch_records_the_counts_and_the_gap_for_free_and_the_eigenvalue_on_request():
    plain = nasedu.search("darts", **tiny())
    for r in plain.history.epochs:
        assert r["discretisation_gap"] == pytest.approx(r["supernet_val_acc"] - r["oneshot_val_acc"])
        assert r["skip_count"] == operation_counts(get_space("nb201").parse(r["architecture"]))["skip_count"]
        assert "hessian_eigenvalue" not in r
    assert "collapse" not in plain.history.meta["plots"]  # the dashboards of other notebooks keep their panels
    watched = nasedu.search("darts", **tiny(epochs=3, diagnostics=True, eigenvalue_every=2, eigenvalue_iterations=3))
    assert ["hessian_eigenvalue" in r for r in watched.history.epochs] == [False, True, True]  # epoch 2 and the last
    assert watched.history.meta["plots"]["collapse"] == ["skip_count", "param_free_count"]
    assert "hessian_eigenvalue" in watched.history.meta["plots"]["Hessian eigenvalue"]


def test_diagnostics_leave_the_search_unchanged():
    """The eigenvalue draws its start from its own generator and runs BatchNorm
    untracked: the search with it is the search without it, bit for bit."""
    assert_same_run(nasedu.search("darts", **tiny()), nasedu.search("darts", **tiny(diagnostics=True)))


# -- the Hessian's dominant eigenvalue --------------------------------------------------------------

@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_power_iteration_finds_the_eigenvalue_of_the_explicit_hessian_in_alpha(space):
    """On a tiny supernet in float64, on the strategy's fixed batch: the Hessian
    of L_val in alpha formed explicitly by torch.autograd.functional.hessian
    (30 and 80 entries), its eigenvalue of largest magnitude by eigvalsh,
    against 50 power iterations on Hessian-vector products (tolerance 1e-6
    relative; measured 7e-12 on the DARTS cell, which converges slower). The
    strategy's own estimate (float32, 20 iterations, the default) lands within
    1e-2 of it (measured 0.7% low on the DARTS cell: not quite converged)."""
    s = nasedu.search("darts", **tiny(space, epochs=1, batch_size=16)).strategy
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a in s.alpha.values():
            a.copy_(0.5 * torch.randn(a.shape, generator=g))
    x, y = next(nasedu.data.iterate(s.context.streams.arch.dataset, s.context.batch_size))
    s.supernet.double()
    alpha = {k: a.detach().double() for k, a in s.alpha.items()}
    w = {k: p.detach() for k, p in s.supernet.named_parameters()}
    loss, batch, shapes = s.bilevel().outer, (x.double(), y), {k: a.shape for k, a in alpha.items()}

    def of_flat(flat):
        parts = flat.split([math.prod(shape) for shape in shapes.values()])
        return loss(w, {k: part.view(shapes[k]) for k, part in zip(shapes, parts)}, batch)

    with untracked_batch_norm(s.supernet):
        H = torch.autograd.functional.hessian(of_flat, torch.cat([a.flatten() for a in alpha.values()]))
        found = hessian_eigenvalue(loss, w, alpha, batch, iterations=50, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(H, H.T, atol=1e-10)
    eigenvalues = torch.linalg.eigvalsh(H)
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    assert found == pytest.approx(dominant, rel=1e-6)
    s.supernet.float()
    assert s.hessian_eigenvalue() == pytest.approx(dominant, rel=1e-2)


# -- the optimiser of alpha -------------------------------------------------------------------------

@pytest.mark.parametrize("optimizer, kind, lr", [
    ("adam", torch.optim.Adam, 3e-2), ("rmsprop", torch.optim.RMSprop, 3e-2), ("momentum", torch.optim.SGD, 3.0),
    ("sgd", torch.optim.SGD, 3.0)])
def test_each_alpha_optimizer_runs_with_its_stated_settings(optimizer, kind, lr):
    """alpha_lr 3e-2 (the quick budget's): Adam and RMSProp take it as it is,
    SGD and momentum alpha_lr / 1e-2 (the gradient's RMS), unless alpha_sgd_lr is given."""
    result = nasedu.search("darts", **tiny(alpha_optimizer=optimizer, alpha_lr=3e-2))
    s = result.strategy
    assert type(s.alpha_optimizer) is kind and s.alpha_optimizer.defaults["lr"] == pytest.approx(lr)
    assert s.alpha_optimizer.defaults["weight_decay"] == 1e-3
    if optimizer == "momentum":  # the averaging form: a steady gradient gives SGD's step
        assert s.alpha_optimizer.defaults["momentum"] == s.alpha_optimizer.defaults["dampening"] == 0.9
    assert result.history.meta["config"]["hyperparameters"]["alpha_optimizer"] == optimizer
    assert s.alpha["cell"].abs().max() > 0.01  # alpha moved away from its 1e-3 * N(0, 1) start
    assert all(math.isfinite(r["arch_loss"]) for r in result.history.steps)
    given = nasedu.search("darts", **tiny(epochs=1, alpha_optimizer=optimizer, alpha_lr=3e-2, alpha_sgd_lr=0.5))
    assert given.strategy.alpha_optimizer.defaults["lr"] == (0.5 if kind is torch.optim.SGD else 3e-2)


def test_an_unknown_alpha_optimizer_is_named():
    with pytest.raises(ValueError, match="choose one of adam, rmsprop, momentum, sgd"):
        nasedu.search("darts", **tiny(epochs=1, alpha_optimizer="adagrad"))


def test_a_checkpoint_from_before_the_choice_of_optimizer_loads():
    """What DARTS saved before (alpha and an Adam state built as it was) loads into today's DARTS."""
    s = nasedu.search("darts", **tiny(epochs=1)).strategy
    old_adam = torch.optim.Adam(list(s.alpha.values()), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    for a in s.alpha.values():
        a.grad = torch.ones_like(a)
    old_adam.step()
    old = {**s.state_dict(), "alpha_optimizer": old_adam.state_dict()}
    fresh = nasedu.search("darts", **tiny(epochs=1, seed=3)).strategy
    fresh.load_state_dict(old)
    assert fresh.alpha_optimizer.state_dict()["state"][0]["exp_avg"].shape == s.alpha["cell"].shape
    assert set(fresh.alpha_optimizer.state_dict()["state"][0]) == set(old_adam.state_dict()["state"][0])


# -- each regulariser changes what its paper changes --------------------------------------------------

@pytest.mark.parametrize("space", ["nb201", "darts"])
def test_darts_minus_with_beta_zero_is_darts_and_sdarts_with_epsilon_zero_is_darts(space):
    darts = nasedu.search("darts", **tiny(space))
    assert_same_run(darts, nasedu.search("darts_minus", **tiny(space, beta0=0.0)))
    for name in ("sdarts_rs", "sdarts_adv"):
        assert_same_run(darts, nasedu.search(name, **tiny(space, epsilon=0.0, epsilon_start=0.0)))
    assert_same_run(darts, nasedu.search("beta_darts", **tiny(space, lambda_max=0.0)))


def test_darts_minus_adds_beta_x_on_every_edge_and_shows_only_softmax_alpha():
    """On one edge of the readable NB201 cell: the mixture with beta on the
    skip's weight is the mixture plus beta x (the paper's auxiliary skip);
    the strategy's distributions and architecture ignore beta."""
    s = nasedu.search("darts_minus", **tiny(epochs=1)).strategy
    mixed = s.supernet.cells[0].edges[0]
    x = torch.randn(2, 4, 8, 8)
    p = F.softmax(torch.randn(5), -1)
    skip = torch.zeros(5)
    skip[1] = 1.0  # skip_connect in the NB201 order
    with torch.no_grad():
        assert torch.allclose(mixed(x, p + 0.7 * skip), mixed(x, p) + 0.7 * x, atol=1e-6)
    s.beta = 0.7
    weights = s.mixture()["cell"]
    probabilities = F.softmax(s.alpha["cell"].detach(), -1)
    assert torch.allclose(weights, probabilities + 0.7 * skip)
    assert torch.allclose(torch.as_tensor(s.distributions()["cell"].probabilities).float(), probabilities)


def test_darts_minus_beta_decays_linearly_as_the_code_steps_it():
    assert [beta_schedule(e, 50) for e in (0, 25, 49)] == pytest.approx([1.0, 0.5, 0.02])
    result = nasedu.search("darts_minus", **tiny(epochs=4))
    betas = sorted({(r["epoch"], r["beta"]) for r in result.history.steps})
    assert betas == [(0, 1.0), (1, 0.75), (2, 0.5), (3, 0.25)]


def test_fast_and_readable_supernets_agree_with_the_auxiliary_skip():
    """The DARTS cell with reduction cells (stride-2 skips are FactorizedReduce)
    under softmax(alpha) + beta e_skip: the grouped fast path and the readable
    cells give the same logits and the same gradient in alpha."""
    fast = nasedu.search("darts_minus", **tiny("darts", epochs=1, fast=True)).strategy
    readable = nasedu.search("darts_minus", **tiny("darts", epochs=1, fast=False)).strategy
    readable.supernet.load_state_dict(fast.supernet.state_dict())
    x, y = next(iter(fast.context.streams.arch))
    out = {}
    for name, s in (("fast", fast), ("readable", readable)):
        s.beta = 0.6
        with torch.no_grad():
            for k, a in s.alpha.items():
                a.copy_(torch.randn(a.shape, generator=torch.Generator().manual_seed(2)))
        loss, logits = s.loss(x, y, s.arch_weights())
        out[name] = (logits.detach(), torch.autograd.grad(loss, list(s.alpha.values())))
    assert torch.allclose(out["fast"][0], out["readable"][0], atol=1e-4)
    for a, b in zip(out["fast"][1], out["readable"][1]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)


def test_beta_decay_value_and_gradient_against_a_hand_computation():
    alpha = {"normal": torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]], requires_grad=True),
             "reduce": torch.tensor([[math.log(2.0), 0.0, math.log(5.0)]], requires_grad=True)}
    # per table, mean over rows of log sum exp: normal (log 4 + (1 + log 2)) / 2, reduce log 8
    value = beta_decay(alpha)
    assert value.item() == pytest.approx((math.log(4) + 1 + math.log(2)) / 2 + math.log(8))
    value.backward()
    assert torch.allclose(alpha["normal"].grad, torch.tensor([[0.25, 0.75], [0.5, 0.5]]) / 2)
    assert torch.allclose(alpha["reduce"].grad, torch.tensor([[2 / 8, 1 / 8, 5 / 8]]))


def test_beta_darts_adds_lambda_softmax_over_rows_to_the_darts_gradient():
    """At epoch e of E the gradient is DARTS's plus lambda_e softmax(alpha) / rows,
    lambda_e = 50 e / E; the step records the term and lambda."""
    s = nasedu.search("beta_darts", **tiny(epochs=4)).strategy
    s.w_optimizer.scheduler.last_epoch = 3  # as in the search's last epoch
    assert s.lam == pytest.approx(50 * 3 / 4)
    x, y = next(iter(s.context.streams.arch))
    with_term, _, _ = s.alpha_gradient(x, y)
    from nasedu.strategies.darts import DARTS

    without, _, _ = DARTS.alpha_gradient(s, x, y)
    expected = s.lam * F.softmax(s.alpha["cell"].detach(), -1) / 6
    assert torch.allclose(with_term[0] - without[0], expected, atol=1e-6)
    steps = nasedu.search("beta_darts", **tiny(epochs=2)).history.steps
    assert {r["lambda"] for r in steps} == {0.0, 25.0} and all(r["beta_decay"] > 0 for r in steps)


def test_sdarts_clip_and_perturbations_stay_on_the_simplex_within_epsilon():
    A = torch.tensor([[0.5, 0.7, -0.2], [-0.1, -0.3, -0.05]])
    assert torch.allclose(clip_to_simplex(A), torch.tensor([[0.5 / 1.2, 0.7 / 1.2, 0.0], [0.0, 0.0, 1.0]]))
    result = nasedu.search("sdarts_rs", **tiny(epochs=4))
    ramp = sorted({(r["epoch"], r["epsilon"]) for r in result.history.steps})  # the code's 0.03 + 0.27 e / E
    assert [e for e, _ in ramp] == [0, 1, 2, 3] and [v for _, v in ramp] == pytest.approx([0.03, 0.0975, 0.165, 0.2325])
    rs = result.strategy
    A = rs.mixture()
    perturbed = rs.random_perturbation(A, 0.1)
    assert torch.allclose(perturbed["cell"].sum(-1), torch.ones(6)) and perturbed["cell"].min() >= 0
    assert not torch.equal(perturbed["cell"], A["cell"])
    adv = nasedu.search("sdarts_adv", **tiny(epochs=1)).strategy
    batch = next(iter(adv.context.streams.w))
    A = adv.mixture()
    attacked = adv.perturb(A, batch)
    adv.supernet.eval()
    with torch.no_grad():
        before, after = adv.loss(*batch, A)[0], adv.loss(*batch, attacked)[0]
    adv.supernet.train()
    assert after >= before  # the attack raised the loss, or it was dropped
    assert torch.allclose(attacked["cell"].sum(-1), torch.ones(6)) and attacked["cell"].min() >= 0
    assert not torch.equal(attacked["cell"], A["cell"]) and adv.supernet.training


# -- searches resume exactly ----------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", VARIANTS)
def test_each_variant_searches_and_resumes_exactly(tmp_path, strategy):
    """Interrupted mid-epoch and resumed (the noise generator of SDARTS, DARTS-'s
    beta and beta-DARTS's lambda come back with the checkpoint), the search ends
    where the uninterrupted one does; and it differs from DARTS."""
    options = tiny(alpha_optimizer="momentum")
    reference = nasedu.search(strategy, **options)
    assert reference.history.meta["strategy"] == strategy
    nasedu.search(strategy, out=str(tmp_path), callbacks=[InterruptAt(3)], **options)
    resumed = nasedu.search(strategy, out=str(tmp_path), **options)
    assert_same_run(reference, resumed)
    darts = nasedu.search("darts", **options)
    assert any(not torch.equal(a, darts.strategy.alpha[k]) for k, a in reference.strategy.alpha.items())


def test_the_variants_share_the_quick_budget_of_darts():
    from nasedu.budgets import budget_settings

    for space in ("nb201", "darts"):
        darts = budget_settings("quick", "darts", space)["strategy"]
        assert all(budget_settings("quick", name, space)["strategy"] == darts for name in VARIANTS)


@pytest.mark.parametrize("strategy, options, message", [
    ("sdarts_rs", {"epsilon": 0.01, "epsilon_start": 0.03}, "epsilon_start <= epsilon"),
    ("sdarts_adv", {"attack_steps": 0}, "attack_steps >= 1"),
    ("darts_minus", {"beta0": -1.0}, "beta0 >= 0"),
    ("beta_darts", {"lambda_max": -1.0}, "lambda_max >= 0"),
    ("darts", {"eigenvalue_iterations": 0}, "eigenvalue_iterations >= 1"),
])
def test_bad_options_are_named(strategy, options, message):
    with pytest.raises(ValueError, match=message):
        nasedu.search(strategy, **tiny(epochs=1, **options))


# -- the study ----------------------------------------------------------------------------------------------

def test_the_quick_study_runs_checkpoints_and_resumes(tmp_path):
    """A 2 x 2 grid (one seed, one epoch of NAS-Bench-201 on digits at the quick
    budget's network, in this process): plain records with the true accuracy
    from the table; run again, it returns the same records from its
    checkpoints; a search whose folder is gone runs again and gives the same numbers."""
    from nasedu.study import collapse_study, summarise

    grid = dict(variants=("darts", "darts_minus"), optimizers=("adam", "sgd"), seeds=(0,), epochs=1, workers=1,
                progress=False, out=str(tmp_path), eigenvalue_iterations=3)
    records = collapse_study(**grid)
    assert [(r["variant"], r["alpha_optimizer"]) for r in records] == [
        ("darts", "adam"), ("darts", "sgd"), ("darts_minus", "adam"), ("darts_minus", "sgd")]
    for r in records:
        assert 0 <= r["true_acc"] <= 1 and r["seconds"] > 0 and math.isfinite(r["hessian_eigenvalue"])
        assert r["discretisation_gap"] == pytest.approx(r["supernet_val_acc"] - r["oneshot_val_acc"])
        assert 0 <= r["skip_count"] <= r["param_free_count"] <= 6
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert folders == ["darts_adam_seed0", "darts_minus_adam_seed0", "darts_minus_sgd_seed0", "darts_sgd_seed0"]
    assert collapse_study(**grid) == records  # finished searches come back from their checkpoints
    import shutil

    shutil.rmtree(tmp_path / "darts_sgd_seed0")
    again = collapse_study(**grid)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in again] == \
        [{k: v for k, v in r.items() if k != "seconds"} for r in records]
    rows = summarise(records + [dict(records[0], seed=1, true_acc=records[0]["true_acc"] + 0.1)])
    assert rows[0]["seeds"] == 2 and rows[0]["true_acc_std"] == pytest.approx(0.05)
    # histories=True: the same records, each with its search's History (the curves behind the last epoch)
    with_curves = collapse_study(**grid, histories=True)
    for r, plain in zip(with_curves, records):
        history = r.pop("history")
        assert history.epochs[-1]["true_acc"] == plain["true_acc"] and "distributions" in history.epochs[-1]
        assert {k: v for k, v in r.items() if k != "seconds"} == {k: v for k, v in plain.items() if k != "seconds"}

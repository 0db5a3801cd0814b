"""The search loop: quick DARTS beats chance, checkpoints are atomic, a resumed
search ends exactly where an uninterrupted one does, bad input and NaNs get
clear errors, and the budget fills in only what was not given."""
import json
import math
import os

import pytest
import torch

import nasedu
from nasedu.budgets import budget, budget_settings
from nasedu.checkpoint import atomic_write
from nasedu.search import CheckpointMismatchError, History, SearchDiverged

from helpers import InterruptAt, assert_same_run

TINY = dict(data="synthetic", C=4, layers=2, steps=2, multiplier=2, epochs=3, batch_size=32, progress=False)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("stop_step", [5, 7])  # 5: an epoch boundary; 7: mid-epoch
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, stop_step):
    reference = nasedu.search("darts", **TINY)
    partial = nasedu.search("darts", out=str(tmp_path), callbacks=[InterruptAt(stop_step)], **TINY)
    assert partial.interrupted and len(partial.history.steps) == stop_step
    assert os.path.exists(tmp_path / "checkpoint.pt")
    resumed = nasedu.search("darts", out=str(tmp_path), **TINY)
    assert not resumed.interrupted
    assert_same_run(reference, resumed)


def test_darts_on_the_nb201_cell_runs_and_resumes(tmp_path):
    """The contract is real: DARTS searches NAS-Bench-201's cell without a line about it."""
    tiny = dict(space="nb201", data="synthetic", C=4, N=1, epochs=2, batch_size=32, progress=False)
    reference = nasedu.search("darts", **tiny)
    assert set(reference.strategy.alpha) == {"cell"} and reference.strategy.alpha["cell"].shape == (6, 5)
    assert isinstance(reference.architecture, nasedu.spaces.NB201Arch)
    nasedu.search("darts", out=str(tmp_path), callbacks=[InterruptAt(3)], **tiny)
    resumed = nasedu.search("darts", out=str(tmp_path), **tiny)
    assert_same_run(reference, resumed)
    saved = json.loads((tmp_path / "architecture.json").read_text())
    assert saved == {"space": {"name": "nb201", "C": 4, "N": 1, "blocks": "shortcut"},
                     "architecture": str(reference.architecture)}


def test_finished_search_resumes_without_training_again(tmp_path):
    first = nasedu.search("darts", out=str(tmp_path), **TINY)
    again = nasedu.search("darts", out=str(tmp_path), **TINY)
    assert len(again.history.steps) == len(first.history.steps) and again.architecture == first.architecture
    saved = History.load(tmp_path / "history.json")
    assert len(saved.epochs) == TINY["epochs"]
    space, arch = nasedu.load_architecture(str(tmp_path))
    assert arch == first.architecture and space == first.space


def test_a_different_search_in_the_same_folder_is_refused(tmp_path):
    nasedu.search("darts", out=str(tmp_path), **{**TINY, "epochs": 1})
    with pytest.raises(CheckpointMismatchError, match="seed: 0 -> 1"):
        nasedu.search("darts", out=str(tmp_path), seed=1, **{**TINY, "epochs": 1})
    with pytest.raises(CheckpointMismatchError, match=r"hyperparameters.alpha_lr: 0.03 -> 0.1"):
        nasedu.search("darts", out=str(tmp_path), alpha_lr=0.1, **{**TINY, "epochs": 1})
    with pytest.raises(CheckpointMismatchError, match=r"space.C: 4 -> 6"):
        nasedu.search("darts", out=str(tmp_path), **{**TINY, "epochs": 1, "C": 6})


def test_a_checkpoint_of_an_older_version_is_refused_clearly(tmp_path):
    nasedu.search("darts", out=str(tmp_path), **{**TINY, "epochs": 1})
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    del state["format"]  # as nasedu 0.1's checkpoints were
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointMismatchError, match=r"another version of nasedu \(checkpoint format 1, this "
                                                      r"version reads 2\)\).*resume=False"):
        nasedu.search("darts", out=str(tmp_path), **{**TINY, "epochs": 1})


def test_checkpoint_writes_are_atomic(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"good")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(str(path), crash)
    assert path.read_bytes() == b"good" and os.listdir(tmp_path) == ["checkpoint.pt"]


def test_history_records_steps_epochs_and_snapshots():
    r = nasedu.search("darts", record_every=2, **TINY)
    h = r.history
    assert len(h.steps) == 15 and len(h.epochs) == 3
    assert [s["step"] for s in h.snapshots] == list(range(2, 16, 2))
    probs = torch.tensor(h.epochs[-1]["distributions"]["normal"])
    assert probs.shape == (5, 8) and torch.allclose(probs.sum(1), torch.ones(5, dtype=probs.dtype))
    assert h.architectures()[-1] == r.architecture
    assert h.space().from_data(h.snapshots[-1]["architecture"]).parts == ("normal", "reduce")
    tables = h.meta["tables"]
    assert tables["normal"]["rows"][:2] == ["c_{k-2} -> 0", "c_{k-1} -> 0"] and tables["reduce"]["columns"][0] == "none"
    # The validation names say what they measure: neither is a retrained network's accuracy.
    last = h.epochs[-1]
    for key in ("supernet_val_acc", "oneshot_val_acc", "supernet_val_loss", "oneshot_val_loss"):
        assert 0 <= last[key] if "acc" not in key else 0 <= last[key] <= 1
    assert r.supernet_val_acc == last["supernet_val_acc"] and r.oneshot_val_acc == last["oneshot_val_acc"]
    json.dumps(h.to_dict())  # all JSON-friendly


def test_a_search_result_prints_as_a_short_summary():
    r = nasedu.search("darts", **{**TINY, "epochs": 1})
    text = repr(r)
    assert text.startswith("SearchResult(darts on synthetic, DARTS cell, 1/1 epochs, 5 steps")
    assert "supernet val acc (mixture, shared weights): " in text and "one-shot val acc" in text
    assert "architecture: Genotype(" in text and len(text.splitlines()) <= 6


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'enass'; available: darts, random"):
        nasedu.search("enass", **TINY)
    with pytest.raises(ValueError, match="unknown data set"):
        nasedu.search("darts", **{**TINY, "data": "imagenet"})
    with pytest.raises(ValueError, match="unknown budget"):
        nasedu.search("darts", budget="huge", **TINY)
    with pytest.raises(ValueError, match="unknown search space 'nb101'; available: darts, nb201, macro"):
        nasedu.search("darts", space="nb101", data="synthetic")
    with pytest.raises(TypeError, match=r"unknown option\(s\) 'alpha_rl' \(did you mean 'alpha_lr'\?\)") as e:
        nasedu.search("darts", alpha_rl=0.1, **TINY)
    assert "strategy 'darts' ['w_lr'" in str(e.value) and "space 'darts' ['C', 'layers'" in str(e.value)
    with pytest.raises(ValueError, match="darts trains networks and needs data; a benchmark table"):
        nasedu.search("darts", space="macro", benchmark="nas-bench-macro")
    with pytest.raises(ValueError, match="pass space='macro'"):
        nasedu.search("random", benchmark="nas-bench-macro")


def test_the_budget_fills_in_what_was_not_given_and_never_shrinks_cifar10(monkeypatch):
    for name in ("NASEDU_BUDGET", "NASEDU_QUICK"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert budget() == "quick"
    full = budget_settings(None, "darts", "darts", data="cifar10")  # on a CPU, but CIFAR-10 asked for
    assert full["budget"] == "full" and full["space"] == {"C": 16, "layers": 8} and full["epochs"] == 50
    assert budget_settings(None, "darts", "nb201")["space"] == {"C": 8, "N": 1, "blocks": "shortcut"}
    # The DARTS cell searches digits enlarged to 16x16, and asking for that data set means the quick budget.
    assert budget_settings(None, "darts", "darts")["data"] == "digits-16x16"
    assert budget_settings(None, "darts", "nb201")["data"] == "digits"
    assert budget(None, data="digits-16x16") == "quick"
    monkeypatch.setenv("NASEDU_QUICK", "1")  # an explicit choice wins over the data set
    assert budget_settings(None, "darts", "darts", data="cifar10")["budget"] == "quick"
    # What was given is kept: C=4 stays 4 while the budget fills in layers.
    r = nasedu.search("darts", data="synthetic", C=4, steps=2, multiplier=2, epochs=1, batch_size=32, progress=False)
    assert r.space.C == 4 and r.space.layers == 3 and r.history.meta["config"]["hyperparameters"]["alpha_lr"] == 3e-2


class ExplodeAt(nasedu.Callback):
    """Poisons alpha of `table` after step `step`, as a too-large learning rate would."""

    def __init__(self, step, table):
        self.step, self.table = step, table

    def on_step_end(self, run, record):
        if run.global_step == self.step:
            with torch.no_grad():
                run.strategy.alpha[self.table][0, 0] = float("nan")


@pytest.mark.parametrize("table, where", [
    ("reduce", r"step 7 \(epoch 2\): train_loss = nan, arch_loss = nan"),  # TINY's two cells are both reduction cells
    ("normal", r"step 7 \(epoch 2\): distribution 'normal' = nan"),  # unused by the network, caught in alpha
])
def test_a_nan_stops_the_search_saying_where_and_keeps_the_last_good_checkpoint(tmp_path, table, where):
    with pytest.raises(SearchDiverged, match=where + r".*last good checkpoint \(after epoch 1\) is kept in"):
        nasedu.search("darts", out=str(tmp_path), callbacks=[ExplodeAt(6, table)], **TINY)
    with pytest.raises(SearchDiverged, match=r"step 2 \(epoch 1\).*No epoch had finished, so .* holds no checkpoint"):
        nasedu.search("darts", out=str(tmp_path / "early"), callbacks=[ExplodeAt(1, table)], **TINY)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["global_step"] == 5 and saved["epoch"] == 1  # the end of the first epoch: whole and finite
    assert all(torch.isfinite(a).all() for a in saved["strategy"]["alpha"].values())
    # Resuming from it runs to the end like an uninterrupted search.
    resumed = nasedu.search("darts", out=str(tmp_path), **TINY)
    assert_same_run(nasedu.search("darts", **TINY), resumed)


def test_random_search_on_nas_bench_macro_uses_the_tables_cifar10_numbers(tmp_path):
    bench = nasedu.bench.load("nas-bench-macro")
    r = nasedu.search("random", space="macro", benchmark="nas-bench-macro", epochs=3, samples_per_epoch=20,
                      progress=False)
    rewards = [s["reward"] for s in r.history.steps]
    assert len(rewards) == 60 and r.true_acc == max(rewards) == bench.accuracy(r.architecture)
    assert r.history.epochs[-1]["samples"] == 60
    # Resumes exactly (the sampler's generator is in the checkpoint).
    nasedu.search("random", space="macro", benchmark="nas-bench-macro", epochs=3, samples_per_epoch=20,
                  progress=False, out=str(tmp_path), callbacks=[InterruptAt(31)])
    resumed = nasedu.search("random", space="macro", benchmark="nas-bench-macro", epochs=3, samples_per_epoch=20,
                            progress=False, out=str(tmp_path))
    assert [s["reward"] for s in resumed.history.steps] == rewards and resumed.architecture == r.architecture


def test_quick_darts_on_digits_beats_chance_and_moves_the_architecture():
    """The quick budget (digits enlarged to 16x16, CPU): validation accuracy well above chance (10%)."""
    result = nasedu.search("darts", budget="quick", progress=False)
    assert result.history.meta["config"]["data"] == "digits-16x16" and result.space.layers == 3
    first, last = result.history.architectures()[0], result.architecture
    init = result.space.derive({k: torch.tensor(v) for k, v in result.history.snapshots[0]["distributions"].items()})
    assert result.supernet_val_acc > 0.6, result.supernet_val_acc
    assert last != init or last != first
    # alpha moved away from its 1e-3 initialisation.
    assert result.strategy.alpha["normal"].abs().max() > 0.05
    assert math.isfinite(result.oneshot_val_acc)


def test_warm_up_epochs_train_w_alone_then_alpha_moves():
    """PC-DARTS-style warm-up: alpha keeps its initial value while w trains, then moves."""
    alphas = []

    class Alpha(nasedu.Callback):
        def on_search_start(self, run):
            alphas.append({k: a.detach().clone() for k, a in run.strategy.alpha.items()})

        def on_epoch_end(self, run, record):
            alphas.append({k: a.detach().clone() for k, a in run.strategy.alpha.items()})

    result = nasedu.search("darts", callbacks=[Alpha()], **dict(TINY, epochs=3, warmup_epochs=2))
    start, *epochs = alphas
    for after in epochs[:2]:
        assert all(torch.equal(start[k], after[k]) for k in start)
    assert not all(torch.equal(start[k], epochs[2][k]) for k in start)
    assert "arch_loss" not in result.history.steps[0] and "arch_loss" in result.history.steps[-1]
    with pytest.raises(ValueError, match="warmup_epochs must be at least 0 and less than the search's 3 epochs"):
        nasedu.search("darts", **dict(TINY, epochs=3, warmup_epochs=3))


def test_the_budgets_warm_up_keeps_its_share_of_fewer_epochs(monkeypatch):
    monkeypatch.setenv("NASEDU_QUICK", "1")
    quick = budget_settings(None, "darts", "nb201")
    assert quick["epochs"] == 12 and quick["strategy"] == {"alpha_lr": 3e-2, "warmup_epochs": 4}
    r = nasedu.search("darts", space="nb201", data="synthetic", C=4, epochs=3, batch_size=32, progress=False)
    assert r.history.meta["config"]["hyperparameters"]["warmup_epochs"] == 1


def test_a_checkpoint_from_before_an_option_existed_still_resumes():
    """Options added later default to the old behaviour, so their absence from a saved config is no difference;
    a different value still is."""
    from nasedu.checkpoint import config_difference

    saved = {"strategy": "darts", "hyperparameters": {"alpha_lr": 0.03}}
    wanted = {"strategy": "darts", "hyperparameters": {"alpha_lr": 0.03, "alpha_optimizer": "adam"}}
    defaults = {"hyperparameters": {"alpha_optimizer": "adam"}}
    assert config_difference(saved, wanted, defaults=defaults) == []
    changed = {"strategy": "darts", "hyperparameters": {"alpha_lr": 0.03, "alpha_optimizer": "sgd"}}
    assert config_difference(saved, changed, defaults=defaults) == ["hyperparameters.alpha_optimizer: None -> 'sgd'"]

"""Retraining a genotype from scratch (nasedu.evaluate)."""
import pytest
import torch

from nasedu.evaluate import TRAIN_DEFAULTS, cutout, train_defaults, train_genotype
from nasedu.genotypes import DARTS_V2, GenotypeError
from nasedu.network import count_parameters


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_retraining_beats_chance_and_counts_parameters():
    records = []
    # 8 epochs of 5 steps: fewer leave BatchNorm's running statistics unsettled
    # and the eval-mode accuracy near chance (measured: 0.92-0.98 over seeds 0-3).
    result = train_genotype(DARTS_V2, "synthetic", epochs=8, C=4, layers=3, seed=0, progress=False,
                            callback=records.append)
    assert result.test_acc > 0.5  # 10 classes: chance is 0.1
    assert result.val_acc == result.history[-1]["val_acc"] > 0.5
    assert result.params == count_parameters(result.model) == 2642
    assert [r["epoch"] for r in result.history] == list(range(8)) and records == result.history
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    # The quick defaults use no drop path, auxiliary head or cutout.
    assert all(r["drop_path_prob"] == 0 for r in result.history)
    assert result.model.auxiliary_head is None and result.config["cutout"] == 0
    # Cosine schedule from lr, starting at 0.025.
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] == pytest.approx(0.025) and lrs == sorted(lrs, reverse=True)


def test_paper_regularisers_and_determinism():
    kwargs = dict(epochs=2, C=4, layers=3, seed=3, progress=False, auxiliary=True, drop_path_prob=0.2,
                  cutout_length=4)
    a = train_genotype("DARTS_V2", "synthetic", **kwargs)
    # DARTS: drop_path_prob * epoch / epochs, epoch counted from 0.
    assert [r["drop_path_prob"] for r in a.history] == pytest.approx([0.0, 0.1])
    assert a.model.auxiliary_head is not None
    total = sum(p.numel() for p in a.model.parameters())
    assert a.params == count_parameters(a.model) < total  # the auxiliary head is not counted
    b = train_genotype("DARTS_V2", "synthetic", **kwargs)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    assert a.test_acc == b.test_acc


def test_defaults_follow_the_paper_for_cifar10_and_stay_small_otherwise():
    full = train_defaults("cifar10")
    assert (full["C"], full["layers"], full["batch_size"], full["epochs"]) == (36, 20, 96, 100)
    assert full["auxiliary"] and full["auxiliary_weight"] == 0.4
    assert full["drop_path_prob"] == 0.2 and full["cutout"] == 16
    quick = train_defaults("digits")
    assert quick["budget"] == "quick" and quick == {**TRAIN_DEFAULTS["quick"], "budget": "quick"}
    assert not quick["auxiliary"] and quick["drop_path_prob"] == 0 and quick["cutout"] == 0


def test_cutout_zeroes_one_clipped_square_per_image():
    x = torch.ones(64, 3, 8, 8)
    y = cutout(x, 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, torch.ones_like(x))  # not in place
    holes = (y == 0)
    assert torch.equal(holes[:, 0], holes[:, 1])  # the same square in every channel
    for hole in holes[:, 0]:
        rows, cols = hole.any(1).nonzero().flatten(), hole.any(0).nonzero().flatten()
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
        assert hole.sum() == len(rows) * len(cols)  # a rectangle
    assert holes[:, 0].sum(dim=(1, 2)).eq(16).any()  # interior centres cut the whole 4x4
    assert cutout(x, 0) is x


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="layers must be at least 3"):
        train_genotype(DARTS_V2, "synthetic", layers=2, progress=False)
    with pytest.raises(GenotypeError, match="published genotypes"):
        train_genotype("NOT_A_GENOTYPE", "synthetic", progress=False)
    with pytest.raises(ValueError, match="unknown data set"):
        train_genotype(DARTS_V2, "imagenet", progress=False)

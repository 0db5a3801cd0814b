import pytest
import torch

from nasedu.data import DatasetUnavailableError, load_dataset, search_split


def test_digits_is_offline_stratified_and_split_60_20_20():
    d = load_dataset("digits")
    assert (len(d.train), len(d.val), len(d.test)) == (1077, 360, 360)
    assert (d.in_channels, d.num_classes, d.image_size) == (1, 10, 8)
    counts = torch.bincount(torch.stack([d.test[i][1] for i in range(len(d.test))]), minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: ~36 of each digit
    x, y = d.train[0]
    assert x.shape == (1, 8, 8) and y.dtype == torch.long


def test_search_split_halves_the_training_set_without_overlap():
    d = load_dataset("digits")
    w_part, arch_part = search_split(d.train, seed=0)
    assert abs(len(w_part) - len(arch_part)) <= 1
    assert not set(w_part.indices) & set(arch_part.indices)


def test_unknown_data_set_names_the_choices():
    with pytest.raises(ValueError, match="available: digits, synthetic, mnist"):
        load_dataset("imagenet")


def test_download_needing_data_set_fails_at_once_offline(tmp_path, monkeypatch):
    import nasedu.data as data

    monkeypatch.setattr(data, "_online", lambda host, timeout=3.0: False)
    with pytest.raises(DatasetUnavailableError, match="digits"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(DatasetUnavailableError, match="download=False"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_enlarged_digits_are_the_same_images_and_split_at_16x16():
    small, large = load_dataset("digits"), load_dataset("digits-16x16")
    assert large.name == "digits-16x16" and large.image_size == 16 and len(large.train) == len(small.train)
    assert large.train.indices == small.train.indices and large.test.indices == small.test.indices
    x_small, y_small = small.train[5]
    x_large, y_large = large.train[5]
    assert x_large.shape == (1, 16, 16) and y_large == y_small
    # Bilinear enlargement by 2 keeps each 2x2 block's mean close to its source pixel's value
    # (exactly so in the interior, up to the normalisation).
    blocks = torch.nn.functional.avg_pool2d(x_large, 2)
    assert torch.corrcoef(torch.stack([blocks.flatten(), x_small.flatten()]))[0, 1] > 0.95
    train = torch.stack([large.train[i][0] for i in range(len(large.train))])
    assert abs(train.mean()) < 1e-4 and abs(train.std() - 1) < 1e-3  # normalised with the training split's statistics


def test_enlarged_digits_must_be_square_and_not_smaller():
    for name in ("digits-16x8", "digits-4x4"):
        with pytest.raises(ValueError, match="a square of at least 8 pixels"):
            load_dataset(name)

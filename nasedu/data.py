"""Data sets for search and retraining.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
  classes). Offline, small, the default of every quick budget and test.
- `synthetic`: generated class templates plus noise, for tests.
- `mnist`, `fashion_mnist`, `cifar10`: torchvision, cached in a folder
  (``$NASEDU_DATA`` or ``~/.cache/nasedu``); offline they fail at once with a
  message saying what to do.

Every data set comes as train / val / test splits. The search splits the
training set in two halves as DARTS does (Section 3.1.1): one for the weights
`w`, one for the architecture.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Subset, TensorDataset

__all__ = ["DATASETS", "DataBundle", "DatasetUnavailableError", "load_dataset", "search_split", "data_root"]


class DatasetUnavailableError(RuntimeError):
    """A data set that needs a download which cannot happen here."""


@dataclass
class DataBundle:
    """Three splits and what a network needs to know about them."""

    name: str
    train: Dataset
    val: Dataset
    test: Dataset
    in_channels: int
    num_classes: int
    image_size: int
    classes: list

    def __repr__(self):
        return (f"DataBundle({self.name!r}: train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes)")


def data_root(root=None) -> str:
    return os.path.expanduser(root or os.environ.get("NASEDU_DATA") or "~/.cache/nasedu")


def _stratified_split(y, fractions, seed):
    """Indices of stratified splits of labels `y` in the given fractions."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    test_size = fractions[2]
    rest, test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    val_size = fractions[1] / (fractions[0] + fractions[1])
    train, val = train_test_split(rest, test_size=val_size, stratify=y[rest], random_state=seed)
    return train, val, test


def _tensor_bundle(name, x, y, classes, seed):
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y, dtype=torch.long)
    train, val, test = _stratified_split(y.numpy(), (0.6, 0.2, 0.2), seed)
    # Normalise with the training split's statistics only.
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    full = TensorDataset(x, y)
    return DataBundle(name, Subset(full, train.tolist()), Subset(full, val.tolist()), Subset(full, test.tolist()),
                      in_channels=x.shape[1], num_classes=len(classes), image_size=x.shape[-1], classes=classes)


def _digits(seed=0, **_):
    from sklearn.datasets import load_digits

    d = load_digits()
    return _tensor_bundle("digits", d.images[:, None] / 16.0, d.target, list(range(10)), seed)


def _synthetic(seed=0, n=600, num_classes=10, image_size=8, noise=0.6, **_):
    """Each class is a fixed random template; samples are template + noise.
    Learnable in a few steps, so tests can assert that search beats chance."""
    g = torch.Generator().manual_seed(1234)
    templates = torch.randn(num_classes, 1, image_size, image_size, generator=g)
    y = torch.arange(n) % num_classes
    x = templates[y] + noise * torch.randn(n, 1, image_size, image_size, generator=g)
    return _tensor_bundle("synthetic", x, y, list(range(num_classes)), seed)


_TORCHVISION = {
    # name: (class name, mean, std, channels, size, download host)
    "mnist": ("MNIST", (0.1307,), (0.3081,), 1, 28, "ossci-datasets.s3.amazonaws.com"),
    "fashion_mnist": ("FashionMNIST", (0.2860,), (0.3530,), 1, 28, "fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
    "cifar10": ("CIFAR10", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 3, 32, "www.cs.toronto.edu"),
}


def _online(host, timeout=3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _torchvision(name, seed=0, root=None, download=True, augment=True, **_):
    import torchvision
    from torchvision import transforms as T

    cls_name, mean, std, channels, size, host = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    root = data_root(root)
    plain = [T.ToTensor(), T.Normalize(mean, std)]
    # DARTS augments CIFAR-10 with random crops and flips (Section A.1).
    aug = [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip()] if augment and name == "cifar10" else []

    def make(train, transform):
        try:
            return cls(root, train=train, download=False, transform=T.Compose(transform))
        except RuntimeError:
            if not download:
                raise DatasetUnavailableError(
                    f"{name} is not in {root} and download=False. Put the files there, or pass download=True "
                    f"on a machine with internet access. The offline data set 'digits' needs no download "
                    f"(data='digits'; --data digits on the command line).") from None
        if not _online(host):
            raise DatasetUnavailableError(
                f"{name} must be downloaded into {root}, and {host} cannot be reached from here (offline?). "
                f"Run once on a machine with internet access and copy {root} here (or set NASEDU_DATA to the folder), "
                f"or use the 'digits' data set (data='digits'; --data digits on the command line), which ships with "
                f"scikit-learn and needs no download.")
        return cls(root, train=train, download=True, transform=T.Compose(transform))

    train_aug, train_plain, test = make(True, aug + plain), make(True, plain), make(False, plain)
    targets = np.asarray(train_plain.targets)
    from sklearn.model_selection import train_test_split

    tr, va = train_test_split(np.arange(len(targets)), test_size=0.1, stratify=targets, random_state=seed)
    return DataBundle(name, Subset(train_aug, tr.tolist()), Subset(train_plain, va.tolist()), test,
                      in_channels=channels, num_classes=10, image_size=size, classes=list(train_plain.classes))


DATASETS = {
    "digits": _digits,
    "synthetic": _synthetic,
    "mnist": lambda **kw: _torchvision("mnist", **kw),
    "fashion_mnist": lambda **kw: _torchvision("fashion_mnist", **kw),
    "cifar10": lambda **kw: _torchvision("cifar10", **kw),
}


def load_dataset(name: str = "digits", *, seed: int = 0, root=None, download: bool = True, **options) -> DataBundle:
    """Load data set `name` (one of `DATASETS`) split into train / val / test.

    `digits` and `synthetic` split 60/20/20, stratified; torchvision sets keep
    their test set and hold out 10% of the training set, stratified, for val.
    """
    if isinstance(name, DataBundle):
        return name
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    return DATASETS[key](seed=seed, root=root, download=download, **options)


def search_split(train: Dataset, seed: int = 0) -> tuple[Subset, Subset]:
    """DARTS's search split: a random half of the training set for the weights
    `w`, the other half for the architecture (Liu et al. 2019, Section 3.1.1)."""
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(perm) // 2
    return Subset(train, perm[:half]), Subset(train, perm[half:])

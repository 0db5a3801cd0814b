"""Data sets for search and retraining.

- `digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10
  classes). Offline, small, the default of every quick budget and test.
  ``digits-16x16`` is the same images enlarged (bilinear): no new information,
  but room for a skeleton that halves its maps twice (the DARTS space's quick
  budget: `nasedu.budgets`).
- `synthetic`: generated class templates plus noise, for tests.
- `mnist`, `fashion_mnist`, `cifar10`: torchvision, cached in a folder
  (``$NASEDU_DATA`` or ``~/.cache/nasedu``); offline they fail at once with a
  message saying what to do.

Every data set comes as train / val / test splits. The search splits the
training set in two halves as DARTS does (Section 3.1.1): one for the weights
`w`, one for the architecture. A strategy draws batches from endless
`Stream`s over those halves and over the whole training split, as many from
each as its paper needs; their positions are saved in a checkpoint, so a
resumed search sees exactly the batches an uninterrupted one would.
"""
from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

__all__ = ["DATASETS", "DataBundle", "DatasetUnavailableError", "load_dataset", "search_split", "data_root",
           "Stream", "Streams", "iterate"]


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


def _digits(seed=0, image_size=8, **_):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    name = "digits"
    if image_size != 8:
        x = torch.nn.functional.interpolate(x, size=image_size, mode="bilinear", align_corners=False)
        name = f"digits-{image_size}x{image_size}"
    return _tensor_bundle(name, x, d.target, list(range(10)), seed)


def _sized_digits(key):
    """``digits_16x16`` -> 16 (names are normalised with ``_``); None for any other name."""
    match = re.fullmatch(r"digits_(\d+)x(\d+)", key)
    if match is None:
        return None
    height, width = map(int, match.groups())
    if height != width or height < 8:
        raise ValueError(f"digits can be enlarged to a square of at least 8 pixels ('digits-16x16'), "
                         f"not {height}x{width}")
    return height


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
    """Load data set `name` (one of `DATASETS`, or ``"digits-NxN"``: digits
    enlarged to N x N) split into train / val / test.

    `digits` and `synthetic` split 60/20/20, stratified; torchvision sets keep
    their test set and hold out 10% of the training set, stratified, for val.
    """
    if isinstance(name, DataBundle):
        return name
    key = str(name).lower().replace("-", "_")
    size = _sized_digits(key)
    if size is not None:
        return _digits(seed=seed, image_size=size)
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}, and digits enlarged: "
                         f"'digits-16x16'")
    return DATASETS[key](seed=seed, root=root, download=download, **options)


def search_split(train: Dataset, seed: int = 0) -> tuple[Subset, Subset]:
    """DARTS's search split: a random half of the training set for the weights
    `w`, the other half for the architecture (Liu et al. 2019, Section 3.1.1)."""
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(perm) // 2
    return Subset(train, perm[:half]), Subset(train, perm[half:])


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------

def _as_tensors(ds):
    """(x, y) tensors if `ds` is (a subset of) a TensorDataset, else None:
    small data sets are indexed directly, without a DataLoader."""
    index = None
    while isinstance(ds, Subset):
        idx = torch.as_tensor(ds.indices, dtype=torch.long)
        index = idx if index is None else idx[index]
        ds = ds.dataset
    if isinstance(ds, TensorDataset) and len(ds.tensors) == 2:
        x, y = ds.tensors
        return (x, y) if index is None else (x[index], y[index])
    return None


def _to_device(x, y, device):
    x = x.to(device, non_blocking=True)
    if device.type == "cuda" and x.dim() == 4:  # the memory format CUDA convolutions prefer
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _load(dataset, tensors, index_batches, device, num_workers):
    """Yield the batches of `dataset` at the given lists of indices, on `device`."""
    if tensors is not None:
        x, y = tensors
        for idx in index_batches:
            yield _to_device(x[idx], y[idx], device)
        return
    loader = DataLoader(dataset, batch_sampler=[b.tolist() for b in index_batches], num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    for xb, yb in loader:
        yield _to_device(xb, yb, device)


def iterate(dataset, batch_size: int, device="cpu", num_workers: int = 0):
    """Every sample of `dataset` once, in order, in batches (the last one
    smaller): what evaluation reads."""
    device = torch.device(device)
    n = len(dataset)
    order = torch.arange(n)
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    return _load(dataset, _as_tensors(dataset), batches, device, num_workers)


class Stream:
    """Endless batches of one split: each pass over it follows a permutation
    seeded by (`seed`, pass), and drops the last partial batch as the papers'
    loaders do. `next(stream)` gives ``(x, y)`` on `device`.

    ``state_dict()`` is the position, ``{"pass": p, "batch": b}``: loading it
    makes the stream continue with exactly the batch it would have given next.
    """

    def __init__(self, dataset, batch_size: int, seed: int = 0, device="cpu", num_workers: int = 0,
                 name: str = "stream"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset, self.batch_size, self.seed, self.name = dataset, batch_size, seed, name
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.n = len(dataset)
        if self.n == 0:
            raise ValueError(f"the {name} split is empty")
        self.batches_per_pass = max(1, self.n // batch_size)
        self._tensors = _as_tensors(dataset)
        self.pass_, self.batch = 0, 0
        self._batches = None  # iterator over the rest of the current pass

    def order(self, pass_: int) -> torch.Tensor:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100_003 + pass_))

    def __iter__(self):
        return self

    def __next__(self):
        if self._batches is None:
            perm = self.order(self.pass_)
            rest = [perm[b * self.batch_size:(b + 1) * self.batch_size]
                    for b in range(self.batch, self.batches_per_pass)]
            self._batches = _load(self.dataset, self._tensors, rest, self.device, self.num_workers)
        batch = next(self._batches)
        self.batch += 1
        if self.batch >= self.batches_per_pass:
            self.pass_, self.batch, self._batches = self.pass_ + 1, 0, None
        return batch

    def state_dict(self) -> dict:
        return {"pass": self.pass_, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.pass_, self.batch, self._batches = int(state["pass"]), int(state["batch"]), None

    def __repr__(self):
        return (f"Stream({self.name!r}: {self.n} samples, batch {self.batch_size}, "
                f"{self.batches_per_pass} batches per pass, at pass {self.pass_} batch {self.batch})")


class Streams:
    """The three streams a search draws from: `w` (the half of the training
    split that trains the weights), `arch` (the other half, for the
    architecture: DARTS's validation batches) and `train` (the whole training
    split, for single-level methods such as SNAS)."""

    NAMES = ("w", "arch", "train")

    def __init__(self, bundle: DataBundle, batch_size: int, seed: int = 0, device="cpu", num_workers: int = 0):
        w_split, arch_split = search_split(bundle.train, seed)
        self.w = Stream(w_split, batch_size, seed, device, num_workers, "w")
        self.arch = Stream(arch_split, batch_size, seed + 1, device, num_workers, "arch")
        self.train = Stream(bundle.train, batch_size, seed + 2, device, num_workers, "train")

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self.NAMES}

    def load_state_dict(self, state: dict) -> None:
        for name in self.NAMES:
            getattr(self, name).load_state_dict(state[name])

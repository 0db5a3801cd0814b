"""Performance estimation: train a derived architecture from scratch.

A search ends with a genotype; what it is worth is measured the way the papers
measure it: stack the cell into a larger network, train that network from
scratch on the full training set, and report its test accuracy and parameter
count (Liu et al. 2019, DARTS, Section 3.2 and Appendix A.2; Zoph et al. 2018,
NASNet, Section 4). The weights of the supernet are thrown away: they were
shared by every candidate and say little about a cell trained on its own.

    >>> from nasedu.evaluate import train_genotype, train_architecture
    >>> result = train_genotype("DARTS_V2", "digits")        # ~20 s on a 2-core CPU, ~98% test accuracy
    >>> result.test_acc, result.params
    >>> train_architecture("|nor_conv_3x3~0|+|...|", "digits", space="nb201")   # any space's architecture

`train_architecture` builds the architecture's stand-alone network from its
search space and trains it with `nasedu.training.train_network`, the loop
every stand-alone training in nasedu shares (NAS-RL's children, the
ground-truth tables). `train_genotype` is its DARTS-cell case, with the
DARTS paper's evaluation settings below.

DARTS's CIFAR-10 evaluation (Appendix A.2): 20 cells with 36 initial channels,
600 epochs of SGD (momentum 0.9, learning rate 0.025 annealed by a cosine
schedule to 0, weight decay 3e-4, gradient clipping at 5), batch 96, drop path
whose probability grows linearly from 0 to 0.2 over training, an auxiliary
classifier weighted 0.4, and cutout of 16x16 patches. Two sets of defaults
follow from it:

- "full" (`cifar10`): the paper's network and regularisers, but 100 epochs
  instead of 600 so that it fits in a GPU session. Expect roughly 96% test
  accuracy instead of the paper's 97.2%; pass ``epochs=600`` for the paper's
  schedule.
- "quick" (every other data set, e.g. the offline `digits`): 5 cells of 8
  initial channels, 10 epochs, batch 64, and *no* auxiliary head, drop path or
  cutout. These regularisers fight overfitting in a network with millions of
  parameters trained for hundreds of epochs; a network of ~20k parameters
  trained for a few hundred steps underfits instead, and each of them slows
  it down further (drop path removes whole paths from a cell that has only a
  few; cutout would hide a quarter of an 8x8 digit). Measured on a 2-core CPU:
  ``train_genotype(DARTS_V2, "digits")`` trains 36,586 parameters for 160
  steps in about 20 s (1.7 s per epoch; 45-50 s when other processes share
  the cores) and reaches 98.1% test accuracy with seed 0, 98.3% with seed 1
  (chance is 10%). Fewer epochs are risky: BatchNorm's running statistics,
  which evaluation uses, need a few dozen steps to settle, and until then test
  accuracy stays near chance even while the training loss falls.

Every default can be overridden by its keyword.
"""
from __future__ import annotations

import os
import time

from .data import load_dataset
from .device import choose_device
from .genotypes import load_genotype
from .network import Network
from .spaces import get_space
from .training import TrainResult, cutout, seed_everything, train_network
from .cost import count_parameters

__all__ = ["train_genotype", "train_architecture", "TrainResult", "TRAIN_DEFAULTS", "train_defaults", "cutout"]

TRAIN_DEFAULTS = {
    # Small and regulariser-free: a tiny network underfits (see the module docstring).
    "quick": {"epochs": 10, "C": 8, "layers": 5, "batch_size": 64, "auxiliary": False, "auxiliary_weight": 0.4,
              "drop_path_prob": 0.0, "cutout": 0, "weight_decay": 3e-4, "momentum": 0.9, "grad_clip": 5.0},
    # DARTS Appendix A.2, except 100 epochs instead of 600 (one GPU session).
    "full": {"epochs": 100, "C": 36, "layers": 20, "batch_size": 96, "auxiliary": True, "auxiliary_weight": 0.4,
             "drop_path_prob": 0.2, "cutout": 16, "weight_decay": 3e-4, "momentum": 0.9, "grad_clip": 5.0},
}


def train_defaults(data) -> dict:
    """The defaults `train_genotype` uses for data set `data`: "full" (the
    paper's evaluation, 100 epochs) for CIFAR-10, "quick" otherwise."""
    name = data if isinstance(data, str) else getattr(data, "name", "")
    key = "full" if str(name).lower().replace("-", "_") == "cifar10" else "quick"
    return dict(TRAIN_DEFAULTS[key], budget=key)


def train_architecture(architecture, data="digits", *, space="darts", epochs: int = 10, batch_size: int = 64,
                       lr: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False,
                       grad_clip: float | None = 5.0, seed: int = 0, device=None, amp=None, progress: bool = True,
                       callback=None, num_workers: int = 0, **network_options) -> TrainResult:
    """Train the stand-alone network of `architecture` (an architecture of
    `space`, or its text) from scratch on `data` and test it.

    SGD with momentum, the learning rate annealed by a cosine schedule to 0,
    gradients clipped at norm 5; `network_options` size the network (e.g.
    ``C``, ``N`` for NAS-Bench-201; default: the space's skeleton).
    """
    started = time.perf_counter()
    space = get_space(space)
    arch = space.validate(architecture)
    bundle = load_dataset(data)  # the fixed split; `seed` sets the weights and the batch order
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be at least 1, got {epochs=}, {batch_size=}")
    seed_everything(seed)
    model = space.network(arch, bundle.num_classes, bundle.in_channels, **network_options)
    params = count_parameters(model)
    history, test_acc = train_network(model, bundle, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                                      weight_decay=weight_decay, nesterov=nesterov, grad_clip=grad_clip, seed=seed,
                                      device=device, amp=amp, num_workers=num_workers, progress=progress,
                                      callback=callback)
    config = {"space": space.config(), "data": bundle.name, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "momentum": momentum, "weight_decay": weight_decay, "nesterov": nesterov, "grad_clip": grad_clip,
              "seed": seed, "device": str(choose_device(device)), "network": network_options}
    return TrainResult(test_acc=test_acc, val_acc=history[-1]["val_acc"], params=params, history=history, model=model,
                       architecture=arch, config=config, seconds=time.perf_counter() - started)


def train_genotype(genotype, data="digits", *, epochs=None, C=None, layers=None, batch_size=None, lr=0.025,
                   seed=0, device=None, auxiliary=None, drop_path_prob=None, progress=True, callback=None,
                   cutout_length=None, amp=None, num_workers=None) -> TrainResult:
    """Train the network of `genotype` from scratch on `data` and test it.

    `genotype` is a `Genotype`, a published name (``"DARTS_V2"``) or a file
    (see `nasedu.genotypes.load_genotype`). Settings not given come from
    `train_defaults(data)`: the paper's evaluation for CIFAR-10 (100 epochs
    instead of 600), a small regulariser-free network otherwise (see the
    module docstring for why and for measured times).

    Training follows DARTS Appendix A.2: SGD with momentum 0.9 and weight
    decay 3e-4, learning rate `lr` annealed by a cosine schedule to 0,
    gradients clipped at norm 5, drop path probability
    ``drop_path_prob * epoch / epochs`` in epoch ``epoch`` (0-based), loss
    ``CE(logits) + 0.4 * CE(aux_logits)`` with the auxiliary head, and cutout
    of `cutout_length` pixels. Validation accuracy is measured after each
    epoch, test accuracy once at the end.

    `callback(record)` is called with each epoch's dict (``epoch``,
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``lr``,
    ``drop_path_prob``, ``seconds``); `progress` shows a tqdm bar.
    """
    started = time.perf_counter()
    genotype = load_genotype(genotype)
    bundle = load_dataset(data)  # the fixed split; `seed` sets the weights and the batch order
    d = train_defaults(bundle.name)
    epochs = int(epochs or d["epochs"])
    C, layers = int(C or d["C"]), int(layers or d["layers"])
    batch_size = int(batch_size or d["batch_size"])
    auxiliary = d["auxiliary"] if auxiliary is None else bool(auxiliary)
    drop_path_prob = d["drop_path_prob"] if drop_path_prob is None else float(drop_path_prob)
    cutout_length = d["cutout"] if cutout_length is None else int(cutout_length)
    for name, value in (("epochs", epochs), ("C", C), ("layers", layers), ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if layers < 3:
        raise ValueError(f"layers must be at least 3 (two of them are reduction cells), got {layers}")
    if not 0.0 <= drop_path_prob < 1.0:
        raise ValueError(f"drop_path_prob must be in [0, 1), got {drop_path_prob}")
    device = choose_device(device)
    if num_workers is None:
        num_workers = 0 if device.type != "cuda" else min(8, os.cpu_count() or 1)

    seed_everything(seed)
    model = Network(genotype, C, bundle.num_classes, layers, auxiliary=auxiliary, drop_path_prob=0.0,
                    in_channels=bundle.in_channels)
    params = count_parameters(model)
    amp_on = (device.type == "cuda") if amp is None else bool(amp) and device.type == "cuda"
    config = {"data": bundle.name, "epochs": epochs, "C": C, "layers": layers, "batch_size": batch_size, "lr": lr,
              "seed": seed, "auxiliary": auxiliary, "auxiliary_weight": d["auxiliary_weight"] if auxiliary else 0.0,
              "drop_path_prob": drop_path_prob, "cutout": cutout_length, "weight_decay": d["weight_decay"],
              "momentum": d["momentum"], "grad_clip": d["grad_clip"], "device": str(device), "defaults": d["budget"],
              "amp": amp_on}
    history, test_acc = train_network(model, bundle, epochs=epochs, batch_size=batch_size, lr=lr, lr_min=0.0,
                                      momentum=d["momentum"], weight_decay=d["weight_decay"], grad_clip=d["grad_clip"],
                                      auxiliary_weight=d["auxiliary_weight"], drop_path_prob=drop_path_prob,
                                      cutout_length=cutout_length, seed=seed, device=device, amp=amp,
                                      num_workers=num_workers, progress=progress, callback=callback)
    return TrainResult(test_acc=test_acc, val_acc=history[-1]["val_acc"], params=params, history=history, model=model,
                       architecture=genotype, config=config, seconds=time.perf_counter() - started)

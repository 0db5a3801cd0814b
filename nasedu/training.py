"""Pieces every search and every stand-alone training share, written once:
seeding, the weight optimizer (SGD with a cosine schedule and gradient
clipping, as every paper here trains `w`), BatchNorm for sampled paths,
evaluating a model on a split, and the loop that trains a network from
scratch (retraining a derived cell, a NAS-RL child, a ground-truth table).
"""
from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Stream, iterate
from .device import Precision, channels_last, choose_device, default_threads, threads

__all__ = ["seed_everything", "accuracy", "WeightOptimizer", "batch_statistics", "untracked_batch_norm",
           "evaluate_model", "train_network", "TrainResult", "cutout"]


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (every device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def accuracy(logits, y) -> float:
    return (logits.argmax(dim=1) == y).float().mean().item()


class WeightOptimizer:
    """SGD on the weights `w` with momentum and weight decay, a cosine
    learning-rate schedule from `lr` to `lr_min` over `epochs` (stepped once per
    epoch, as the papers' code does), and gradient-norm clipping.

    DARTS (Appendix A.1.1): lr 0.025 -> 0.001, momentum 0.9, weight decay 3e-4,
    clip 5. NAS-Bench-201 trains with Nesterov momentum (``nesterov=True``).
    Second-order DARTS reads `lr`, `momentum`, `weight_decay` and
    `momentum_buffer` to unroll one step exactly as this optimizer takes it.
    """

    def __init__(self, parameters, *, epochs: int, lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9,
                 weight_decay: float = 3e-4, grad_clip: float | None = 5.0, nesterov: bool = False):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.momentum, self.weight_decay, self.grad_clip = momentum, weight_decay, grad_clip
        self.optimizer = torch.optim.SGD(self.parameters, lr=lr, momentum=momentum, weight_decay=weight_decay,
                                         nesterov=nesterov)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=max(1, epochs),
                                                                    eta_min=lr_min)

    @property
    def lr(self) -> float:
        """The learning rate of the current epoch."""
        return self.optimizer.param_groups[0]["lr"]

    def momentum_buffer(self, p):
        """SGD's momentum buffer of parameter `p` (zeros before the first step)."""
        buffer = self.optimizer.state.get(p, {}).get("momentum_buffer")
        return torch.zeros_like(p) if buffer is None else buffer

    def zero_grad(self):
        self.optimizer.zero_grad(set_to_none=True)

    def step(self):
        """Clip the gradients' total norm, then take the SGD step."""
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.parameters, self.grad_clip)
        self.optimizer.step()

    def end_epoch(self):
        self.scheduler.step()

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


@contextlib.contextmanager
def untracked_batch_norm(model: nn.Module):
    """Every BatchNorm of `model` normalises with its batch's statistics and
    does not touch its running statistics: the network is then a pure
    function of its weights, as `torch.func`'s transforms need (they refuse a
    forward pass that updates a buffer in place)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.track_running_stats for m in norms]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m, tracking in zip(norms, saved):
            m.track_running_stats = tracking


@contextlib.contextmanager
def batch_statistics(model: nn.Module):
    """Every BatchNorm of `model` normalises with the statistics of the batch
    it sees, and its running statistics are left as they were.

    Why: a supernet's running statistics were gathered under the mixture (or
    under other sampled paths); a single path evaluated with them sees inputs
    of another distribution. Evaluating one path of shared weights with batch
    statistics is what ENAS and random search with weight sharing do."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, {k: v.clone() for k, v in m.named_buffers(recurse=False)}) for m in norms]
    for m in norms:
        m.train()
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (training, buffers) in zip(norms, saved):
                m.train(training)
                for k, v in buffers.items():
                    getattr(m, k).copy_(v)


def evaluate_model(model, dataset, device, *, arch=None, precision: Precision | None = None, batch_size: int = 256,
                   bn: str = "running"):
    """Loss and accuracy of `model` on `dataset`: ``model(x)``, or
    ``model(x, arch)`` for a supernet. ``bn="batch"`` evaluates with batch
    statistics (see `batch_statistics`), ``"running"`` in eval mode."""
    if bn not in ("running", "batch"):
        raise ValueError(f"bn must be 'running' or 'batch', got {bn!r}")
    device = torch.device(device)
    precision = precision or Precision(device, amp=False)
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    with torch.no_grad(), (batch_statistics(model) if bn == "batch" else contextlib.nullcontext()):
        for x, y in iterate(dataset, batch_size, device):
            with precision.autocast():
                logits = (model(x) if arch is None else model(x, arch)).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            total += len(y)
    model.train(was_training)
    return loss_sum / total, correct / total


def cutout(x: torch.Tensor, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one `length` x `length` square per image at a uniformly random
    centre, clipped at the border (DeVries & Taylor 2017, as the DARTS code
    applies it after normalisation). Returns a new tensor."""
    if length <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(h, (n,), generator=generator).to(x.device)
    cx = torch.randint(w, (n,), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :]
    cols = torch.arange(w, device=x.device)[None, :]
    in_rows = (rows >= (cy[:, None] - length // 2)) & (rows < (cy[:, None] + length - length // 2))
    in_cols = (cols >= (cx[:, None] - length // 2)) & (cols < (cx[:, None] + length - length // 2))
    hole = in_rows[:, :, None] & in_cols[:, None, :]  # [n, h, w]
    return x * (~hole)[:, None].to(x.dtype)


@dataclass
class TrainResult:
    """What training a network from scratch gives: the final test and
    validation accuracy, the parameter count (an auxiliary head excluded, as
    the papers count), one dict per epoch, and the trained model."""

    test_acc: float
    val_acc: float
    params: int
    history: list = field(default_factory=list)
    model: nn.Module | None = None
    architecture: object = None
    config: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def params_m(self) -> float:
        """Parameters in millions, as the papers' tables give them."""
        return self.params / 1e6

    def __repr__(self):
        return (f"TrainResult(test_acc={self.test_acc:.4f}, val_acc={self.val_acc:.4f}, params={self.params:,}, "
                f"epochs={len(self.history)}, seconds={self.seconds:.1f})")


def train_network(model: nn.Module, bundle, *, epochs: int, batch_size: int = 64, lr: float = 0.025,
                  lr_min: float = 0.0, momentum: float = 0.9, weight_decay: float = 3e-4, nesterov: bool = False,
                  grad_clip: float | None = 5.0, auxiliary_weight: float = 0.4, drop_path_prob: float = 0.0,
                  cutout_length: int = 0, seed: int = 0, device=None, amp=None, num_workers: int = 0,
                  progress: bool = True, callback=None, num_threads="auto", eval_epochs=None) -> tuple[list, float]:
    """Train `model` from scratch on ``bundle.train`` and test it: the loop
    every stand-alone training in nasedu uses. Returns ``(history, test_acc)``.

    SGD with `momentum` and `weight_decay`, learning rate `lr` annealed by a
    cosine schedule to `lr_min`, gradient norm clipped at `grad_clip`. A model
    that returns ``(logits, aux_logits)`` while training adds
    ``auxiliary_weight * CE(aux_logits)`` to the loss; one with a
    ``drop_path_prob`` attribute gets ``drop_path_prob * epoch / epochs`` in
    epoch ``epoch`` (0-based), as DARTS's train.py sets it; cutout of
    `cutout_length` pixels. Validation accuracy is measured after each epoch
    (``callback(record)`` gets each epoch's dict), test accuracy once at the end.
    """
    device = choose_device(device)
    precision = Precision(device, amp)
    n_threads = default_threads(device) if num_threads == "auto" else num_threads
    model = channels_last(model.to(device), device)
    optimizer = WeightOptimizer(model.parameters(), epochs=epochs, lr=lr, lr_min=lr_min, momentum=momentum,
                                weight_decay=weight_decay, grad_clip=grad_clip, nesterov=nesterov)
    batches = Stream(bundle.train, batch_size, seed, device, num_workers, "train")
    cutout_rng = torch.Generator().manual_seed(seed + 7)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * batches.batches_per_pass, desc="train", unit="step", dynamic_ncols=True)
    history = []
    try:
        with threads(n_threads):
            for epoch in range(epochs):
                epoch_start = time.perf_counter()
                if hasattr(model, "drop_path_prob"):
                    model.drop_path_prob = drop_path_prob * epoch / epochs
                current_lr = optimizer.lr
                model.train()
                loss_sum, correct, seen = 0.0, 0, 0
                for _ in range(batches.batches_per_pass):
                    x, y = next(batches)
                    if cutout_length:
                        x = cutout(x, cutout_length, cutout_rng)
                    optimizer.zero_grad()
                    with precision.autocast():
                        out = model(x)
                        logits, aux = out if isinstance(out, tuple) else (out, None)
                        loss = F.cross_entropy(logits.float(), y)
                        total = loss if aux is None else loss + auxiliary_weight * F.cross_entropy(aux.float(), y)
                    total.backward()
                    optimizer.step()
                    loss_sum += loss.item() * len(y)
                    correct += (logits.argmax(1) == y).sum().item()
                    seen += len(y)
                    if bar is not None:
                        bar.update(1)
                optimizer.end_epoch()
                record = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
                          "lr": current_lr, "drop_path_prob": getattr(model, "drop_path_prob", 0.0)}
                if eval_epochs is None or epoch + 1 in eval_epochs:
                    record["val_loss"], record["val_acc"] = evaluate_model(model, bundle.val, device,
                                                                           precision=precision)
                if eval_epochs is not None and epoch + 1 in eval_epochs:
                    _, record["test_acc"] = evaluate_model(model, bundle.test, device, precision=precision)
                record["seconds"] = time.perf_counter() - epoch_start
                history.append(record)
                if bar is not None:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.3f}",
                                    val_acc=f"{record.get('val_acc', float('nan')):.3f}")
                if callback is not None:
                    callback(record)
            if eval_epochs is None:
                _, test_acc = evaluate_model(model, bundle.test, device, precision=precision)
            else:
                test_acc = next((r["test_acc"] for r in reversed(history) if "test_acc" in r), float("nan"))
    finally:
        if bar is not None:
            bar.close()
    return history, test_acc

"""The contract every search strategy keeps with the search loop and the dashboard.

A strategy owns the architecture parameters of one paper (alpha, theta, a
controller) and that paper's update rule. It sets itself up from a
`nasedu.context.SearchContext` (the space, data streams, device, helpers) and
never assumes a particular space: the loop and the dashboard work with any
strategy through these methods.

- ``step()``: one step of the paper's algorithm, drawing from
  ``context.streams`` as many batches as it needs; returns numeric metrics.
- ``steps_per_epoch()``, ``end_epoch(epoch)``, ``validate()``: the epoch's shape,
  schedules, and the metrics measured at its end.
- ``distributions()``: ``{name: Table}``, the probability of each option of
  each decision (softmax(alpha), theta, a controller's per-token policy).
- ``architecture()``: the discrete architecture derived right now.
- ``state_dict()`` / ``load_state_dict()``: everything needed to resume exactly.

`SupernetStrategy` adds what weight-sharing strategies have in common: the
supernet the space builds, the weight optimizer, and validation of the
supernet under the strategy's mixture and of the derived architecture alone.
"""
from __future__ import annotations

import contextlib
import inspect

import torch
import torch.nn.functional as F

from ..device import channels_last
from ..training import WeightOptimizer, accuracy, batch_statistics

__all__ = ["Strategy", "SupernetStrategy", "accuracy", "alpha_state", "load_alpha_state"]


def alpha_state(alpha: dict, optimizer) -> dict:
    """Architecture parameters (copied) and their optimizer's state, for a strategy's `state_dict`."""
    return {"alpha": {k: a.detach().clone() for k, a in alpha.items()}, "alpha_optimizer": optimizer.state_dict()}


def load_alpha_state(alpha: dict, optimizer, state: dict) -> None:
    """Restore what `alpha_state` saved, in place."""
    with torch.no_grad():
        for k, a in alpha.items():
            a.copy_(state["alpha"][k])
    optimizer.load_state_dict(state["alpha_optimizer"])


class Strategy:
    """Base class. Subclasses set `name` and `paper`, take their
    hyper-parameters as keyword arguments of ``__init__(self, context, ...)``
    with the paper's defaults, and implement `step`, `distributions`,
    `architecture`, `state_dict` and `load_state_dict`. A strategy that
    trains networks calls ``context.require_data(name)``: a search may have
    only a benchmark table's rewards."""

    name = "strategy"
    paper = ""
    # The curves the dashboard draws: {panel title: [metric keys]}; keys may be
    # step metrics (from `step`) or epoch metrics (from `validate`).
    plots: dict = {}
    # The epoch metric a progress bar shows.
    headline = "val_acc"

    def __init__(self, context):
        self.context = context
        self.space = context.space

    @classmethod
    def options(cls) -> dict:
        """The hyper-parameters ``__init__`` takes, with their defaults (the paper's);
        an ``__init__`` that passes ``**options`` on to its parent's takes the parent's too."""
        params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # after self, context
        inherited = {}
        if any(p.kind == p.VAR_KEYWORD for p in params):
            inherited = next(c for c in cls.__mro__[1:] if "__init__" in c.__dict__).options()
        return {**inherited, **{p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}}

    # -- the loop calls these ----------------------------------------------------------
    def steps_per_epoch(self) -> int:
        """Steps in one epoch: by default one pass over the `w` half of the training split."""
        self.context.require_data(self.name)
        return self.context.streams.w.batches_per_pass

    def step(self) -> dict:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        """Called after each epoch (learning-rate schedules step here)."""

    def validate(self) -> dict:
        """Metrics measured at the end of each epoch (``{"key": number}``)."""
        return {}

    # -- what it shows ------------------------------------------------------------------
    def distributions(self) -> dict:
        raise NotImplementedError

    def architecture(self):
        raise NotImplementedError

    # -- saving and resuming ------------------------------------------------------------
    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


class SupernetStrategy(Strategy):
    """A strategy that trains the shared weights `w` of a supernet.

    It asks the space for the supernet, owns it (its weights are in the
    strategy's `state_dict`) and trains it with a `WeightOptimizer` (SGD with
    momentum, a cosine schedule, clipping). Subclasses implement `mixture`: the
    architecture argument the supernet is validated under (softmax(alpha) for
    DARTS).
    """

    plots = {"loss": ["train_loss", "arch_loss", "supernet_val_loss", "oneshot_val_loss"],
             "accuracy": ["train_acc", "arch_acc", "supernet_val_acc", "oneshot_val_acc"]}
    headline = "supernet_val_acc"

    def __init__(self, context, *, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_weight_decay=3e-4, grad_clip=5.0,
                 w_nesterov=False):
        super().__init__(context)
        context.require_data(self.name)
        self.supernet = channels_last(self.space.supernet(context.num_classes, context.in_channels,
                                                          fast=context.fast).to(context.device), context.device)
        self.w_optimizer = WeightOptimizer(self.supernet.parameters(), epochs=context.epochs, lr=w_lr, lr_min=w_lr_min,
                                           momentum=w_momentum, weight_decay=w_weight_decay, grad_clip=grad_clip,
                                           nesterov=w_nesterov)

    def mixture(self) -> dict:
        """The architecture argument the supernet is validated under (detached)."""
        raise NotImplementedError

    def loss(self, x, y, arch):
        """Cross-entropy of the supernet running `arch` on ``(x, y)``, and the logits."""
        with self.context.precision.autocast():
            logits = self.supernet(x, arch)
            return F.cross_entropy(logits.float(), y), logits

    def w_step(self, batch, arch) -> dict:
        """One step on `w`: descend grad_w L_train(w, arch) on `batch`."""
        x, y = batch
        self.w_optimizer.zero_grad()
        loss, logits = self.loss(x, y, arch)
        loss.backward()
        self.w_optimizer.step()
        return {"train_loss": loss.item(), "train_acc": accuracy(logits, y)}

    def end_epoch(self, epoch):
        self.w_optimizer.end_epoch()

    @property
    def epoch(self) -> int:
        """The current epoch (0-based): the epochs the weight schedule has finished, so it resumes with it."""
        return self.w_optimizer.scheduler.last_epoch

    def validate(self) -> dict:
        """The shared weights on the validation split, two ways (neither is a
        retrained network's accuracy):

        - ``supernet_val_*``: the supernet under the strategy's mixture, in
          eval mode (running BatchNorm statistics), as DARTS's ``infer`` does;
        - ``oneshot_val_*``: the currently derived architecture alone (its hard
          path), BatchNorm on batch statistics (`nasedu.training.batch_statistics`).

        The gap between them is the discretisation gap (notebook 07)."""
        loss, acc = self.context.evaluate(self.supernet, self.mixture())
        return {"supernet_val_loss": loss, "supernet_val_acc": acc, **self.oneshot_validate()}

    def oneshot_validate(self) -> dict:
        """``oneshot_val_*``: the derived architecture alone on the validation split, BatchNorm on batch statistics."""
        loss, acc = self.context.evaluate(self.supernet, self.hard_path(self.architecture()), bn="batch")
        return {"oneshot_val_loss": loss, "oneshot_val_acc": acc}

    def hard_path(self, architecture) -> dict:
        """The supernet's argument for one discrete `architecture`: an option index per row of each table,
        on the device (`SearchSpace.encode`)."""
        return {k: v.to(self.context.device) for k, v in self.space.encode(architecture).items()}

    def path_accuracy(self, path, batches, bn: str = "batch") -> float:
        """Accuracy of the shared weights running hard path `path` on `batches` (``[(x, y), ...]``), no gradient.

        ``bn="batch"``: BatchNorm on each batch's statistics, running statistics untouched (ENAS scores a sampled
        child so, its reward); ``"running"``: eval mode, the running statistics gathered over every path trained
        (random search with weight sharing ranks its candidates so, its code's ``model.eval()``)."""
        return self.path_accuracies([path], [batches], bn)[0]

    def path_accuracies(self, paths, batches, bn: str = "batch") -> list:
        """`path_accuracy` of each of `paths` on its own list of `batches` (``batches[k]`` for ``paths[k]``),
        with the supernet put in the right mode once for them all."""
        if bn not in ("batch", "running"):
            raise ValueError(f"bn must be 'batch' or 'running', got {bn!r}")
        was_training = self.supernet.training
        self.supernet.eval()
        out = []
        with torch.no_grad(), (batch_statistics(self.supernet) if bn == "batch" else contextlib.nullcontext()):
            for path, path_batches in zip(paths, batches):
                correct = total = 0
                for x, y in path_batches:
                    with self.context.precision.autocast():
                        logits = self.supernet(x, path)
                    correct += (logits.float().argmax(1) == y).sum().item()
                    total += len(y)
                out.append(correct / max(total, 1))
        self.supernet.train(was_training)
        return out

    def state_dict(self) -> dict:
        return {"supernet": self.supernet.state_dict(), "w_optimizer": self.w_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.supernet.load_state_dict(state["supernet"])
        self.w_optimizer.load_state_dict(state["w_optimizer"])

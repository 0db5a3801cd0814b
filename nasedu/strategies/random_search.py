"""Random search: sample architectures uniformly from the space and keep the best.

Bergstra & Bengio, "Random Search for Hyper-Parameter Optimization", JMLR
2012. Every NAS paper's first baseline: Li & Talwalkar ("Random Search and
Reproducibility for NAS", UAI 2019) show how hard it is to beat, and the
course judges every strategy beside it.

One step samples one architecture c ~ Uniform(space) and measures its reward
R(c): its accuracy in the benchmark table when the search has one (a search
of NAS-Bench-Macro on CIFAR-10 numbers takes seconds; the validation accuracy
where the table records one, `Benchmark.search_accuracy`), otherwise the
validation accuracy of its network trained from scratch on the search's
data (`context.train_from_scratch`, `train_epochs` epochs). The architecture
it returns is the best one seen.
"""
from __future__ import annotations

import math

import torch

from .base import Strategy

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    name = "random"
    paper = "Bergstra & Bengio, Random Search for Hyper-Parameter Optimization, JMLR 2012"
    plots = {"reward": ["reward", "best_reward"]}
    headline = "best_reward"

    def __init__(self, context, *, samples_per_epoch=10, train_epochs=3):
        super().__init__(context)
        if context.benchmark is None:
            context.require_data("random search without a benchmark table (it trains every sample)")
        self.samples_per_epoch, self.train_epochs = int(samples_per_epoch), int(train_epochs)
        self.generator = torch.Generator().manual_seed(context.seed)
        self.best, self.best_reward, self.samples = None, -math.inf, 0

    def steps_per_epoch(self) -> int:
        return self.samples_per_epoch

    def reward(self, architecture) -> float:
        """R(c): the table's accuracy, or the validation accuracy after training from scratch."""
        if self.context.benchmark is not None:
            return self.context.benchmark.search_accuracy(architecture)
        return self.context.train_from_scratch(architecture, epochs=self.train_epochs).val_acc

    def step(self):
        c = self.space.sample(self.generator)
        R = self.reward(c)
        self.samples += 1
        if R > self.best_reward:
            self.best, self.best_reward = c, R
        return {"reward": R, "best_reward": self.best_reward}

    def validate(self):
        return {"best_reward": self.best_reward, "samples": self.samples}

    def distributions(self):
        """What it samples from: the uniform distribution, which never changes."""
        return self.space.tables()

    def architecture(self):
        """The best architecture seen (before the first sample, the space's rule on uniform probabilities)."""
        if self.best is None:
            return self.space.derive({k: t.probabilities for k, t in self.space.tables().items()})
        return self.best

    def state_dict(self):
        return {"generator": self.generator.get_state(), "best": None if self.best is None else self.best.to_data(),
                "best_reward": self.best_reward, "samples": self.samples}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])
        self.best = None if state["best"] is None else self.space.from_data(state["best"])
        self.best_reward, self.samples = state["best_reward"], state["samples"]

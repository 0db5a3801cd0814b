"""REINFORCE with a moving-average baseline: the update every RL controller here shares.

Williams, "Simple statistical gradient-following algorithms for connectionist
reinforcement learning", Machine Learning 1992. A controller with parameters
theta_c emits an architecture as tokens a_1..a_T; for m sampled architectures
with rewards R_k (Zoph & Le, ICLR 2017, Section 3.2):

    grad J(theta_c) ~ (1/m) sum_k sum_t grad log P(a_t | a_1..a_{t-1}; theta_c) (R_k - b)

where the baseline b, an exponential moving average of past rewards, lowers
the variance without biasing the estimate (b does not depend on the sampled
tokens). `reinforce_loss` is the surrogate whose gradient is that estimate;
`MovingBaseline` keeps b. NAS-RL (`strategies/nas_rl.py`) and ENAS
(`strategies/enas.py`) use both, with their papers' decays.
"""
from __future__ import annotations

import math

import torch

__all__ = ["MovingBaseline", "reinforce_loss"]


class MovingBaseline:
    """b <- decay * b + (1 - decay) * R, the first reward setting b.

    ``advantages(rewards)`` returns R_k - b for each reward of one update. By
    default against b before this update's rewards (an average of *past*
    rewards, as NAS-RL states); ``update_first=True`` folds the rewards in
    first, as ENAS's code does (``baseline -= (1 - bl_dec) * (baseline - reward)``,
    then ``reward - baseline``)."""

    def __init__(self, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the baseline's decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.value: float | None = None

    def _fold(self, reward: float) -> None:
        self.value = reward if self.value is None else self.decay * self.value + (1 - self.decay) * reward

    def advantages(self, rewards, update_first: bool = False) -> torch.Tensor:
        rewards = [float(r) for r in rewards]
        if not rewards or not all(math.isfinite(r) for r in rewards):
            raise ValueError(f"REINFORCE needs finite rewards, got {rewards}")
        if update_first:
            for r in rewards:
                self._fold(r)
            base = self.value
        else:
            base = rewards[0] if self.value is None else self.value
            for r in rewards:
                self._fold(r)
        return torch.tensor([r - base for r in rewards], dtype=torch.float64)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.value = state["decay"], state["value"]


def reinforce_loss(log_probs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """-(1/m) sum_k log P(architecture_k) (R_k - b): minimising it ascends the
    REINFORCE estimate. `log_probs[k]` is the sum over the k-th architecture's
    tokens of log P(a_t | a_<t), with the controller's graph attached."""
    if log_probs.shape != advantages.shape:
        raise ValueError(f"one advantage per sampled architecture: log_probs {tuple(log_probs.shape)}, "
                         f"advantages {tuple(advantages.shape)}")
    return -(log_probs * advantages.to(log_probs.dtype).detach()).mean()

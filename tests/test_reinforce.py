"""REINFORCE's baseline and surrogate loss against direct computations."""
import pytest
import torch

from nasedu.reinforce import MovingBaseline, reinforce_loss


def test_baseline_is_an_exponential_moving_average_of_past_rewards():
    b = MovingBaseline(0.9)
    assert b.advantages([1.0]).tolist() == [0.0]          # the first reward sets b
    adv = b.advantages([2.0, 0.0])                        # against b = 1 before this update
    assert adv.tolist() == pytest.approx([1.0, -1.0])
    assert b.value == pytest.approx(0.9 * (0.9 * 1.0 + 0.1 * 2.0) + 0.1 * 0.0)


def test_enas_order_folds_the_reward_in_first():
    b = MovingBaseline(0.99)
    b.advantages([0.5], update_first=True)
    adv = b.advantages([1.0], update_first=True)
    assert adv.item() == pytest.approx(1.0 - (0.99 * 0.5 + 0.01 * 1.0))


def test_surrogate_gradient_is_the_reinforce_estimate():
    """A categorical policy over 3 tokens: grad of the surrogate = -(1/m) sum (R - b) grad log p(a)."""
    logits = torch.tensor([0.2, -0.1, 0.4], requires_grad=True)
    actions, adv = torch.tensor([0, 2, 2]), torch.tensor([1.0, -0.5, 0.25], dtype=torch.float64)
    reinforce_loss(torch.log_softmax(logits, -1)[actions], adv).backward()
    p = torch.softmax(logits.detach(), -1)
    expected = -sum(a * (torch.nn.functional.one_hot(k, 3) - p) for k, a in zip(actions, adv.float())) / 3
    assert torch.allclose(logits.grad, expected, atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="decay"):
        MovingBaseline(1.0)
    with pytest.raises(ValueError, match="finite rewards"):
        MovingBaseline(0.9).advantages([float("nan")])
    with pytest.raises(ValueError, match="one advantage per sampled architecture"):
        reinforce_loss(torch.zeros(2), torch.zeros(3))

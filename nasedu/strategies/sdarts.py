"""SDARTS: DARTS whose weight step sees perturbed architecture weights.

Chen & Hsieh, "Stabilizing Differentiable Architecture Search via
Perturbation-based Regularization", ICML 2020 (arXiv:2002.05283); the
authors' code is xiangning-chen/SmoothDARTS (no licence: read, not copied),
whose defaults are used here.

DARTS trains w at the mixture A = softmax(alpha) itself, and the supernet
ends up sharp in A: the derived architecture (A rounded to one-hot) does much
worse than the mixture. SDARTS trains w for a whole neighbourhood of A
instead, which implicitly penalises the Hessian norm of the validation loss
in A (the paper's analysis), and leaves the alpha step as it is:

    alpha <- alpha - eta_alpha grad_alpha L_val(w, alpha)                    (DARTS, first order)
    w     <- w - eta_w grad_w L_train(w, clip(A + delta))                     (the one change)

- SDARTS-RS (random smoothing), ``"sdarts_rs"``: delta ~ U[-epsilon, epsilon]
  per entry, min_w E_delta L_train(w, A + delta);
- SDARTS-ADV (adversarial), ``"sdarts_adv"``: delta from a PGD attack,
  min_w max_{||delta||_inf <= epsilon} L_train(w, A + delta), on the batch
  the weight step takes.

clip() maps a perturbed row back onto the simplex as the code's
``model.clip`` does: clamp every entry to [0, 1]; a row that is then all
zero gets 1 at its largest entry; divide by the row's sum. The perturbation
is on the softmax weights A (the code overwrites alpha by softmax(alpha),
perturbs, trains w, and restores alpha), not on the logits.

The authors' defaults (``sota/cnn/train_search.py``, ``nasbench201/train_search.py``,
``attacker/perturb.py``): epsilon grows linearly per epoch e of E,
epsilon_e = 0.03 + (0.3 - 0.03) e / E (``--epsilon_alpha 0.3``), so it ends
just below 0.3; PGD: a random start (the RS perturbation), then 7 steps of
size 2 epsilon / 7 along the sign of the gradient (their ``Linf_SGD``), each
projected onto the L_inf ball around A and clipped; the attack is dropped
(A used as it is) if it did not raise the loss; it runs with the network in
eval mode (BatchNorm on its running statistics), and the weight step then
in training mode. Everything else is DARTS's (first order, Adam 3e-4 on
alpha; the code's ``--perturb_alpha`` default ``none`` is plain DARTS).

The noise comes from the strategy's own generator, saved with the search,
so a resumed search draws what an uninterrupted one would. With epsilon = 0
(``epsilon=0, epsilon_start=0``) nothing is drawn and this is DARTS exactly.
Cost per step over DARTS: RS nothing measurable; ADV 8 forward and 7
backward passes of the supernet on the training batch.

Paper and code: the paper writes the RS and ADV objectives with one fixed
epsilon; the ramp from 0.03, the attack's steps, step size, random start and
the rule that drops a failed attack are read from the code. The code's ramp
divides by E, not E - 1, so epsilon never reaches its maximum. Here the
perturbation also acts during a warm-up (`warmup_epochs`, which the authors
do not have).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .darts import DARTS

__all__ = ["SDARTSRS", "SDARTSADV", "clip_to_simplex"]


def clip_to_simplex(A: torch.Tensor) -> torch.Tensor:
    """Each row of `A` clamped to [0, 1], an all-zero row set to 1 at its
    largest entry (before clamping), then divided by its sum (the code's ``clip``)."""
    clamped = A.clamp(0, 1)
    empty = clamped.sum(-1, keepdim=True) == 0
    top = F.one_hot(A.argmax(-1), A.shape[-1]).to(A.dtype).bool()
    clamped = torch.where(empty & top, torch.ones_like(clamped), clamped)
    return clamped / clamped.sum(-1, keepdim=True)


class SDARTSRS(DARTS):
    name = "sdarts_rs"
    paper = ("Chen & Hsieh, Stabilizing Differentiable Architecture Search via Perturbation-based "
             "Regularization, ICML 2020 (random smoothing)")

    def __init__(self, context, *, epsilon=0.3, epsilon_start=0.03, **darts_options):
        if not 0 <= epsilon_start <= epsilon:
            raise ValueError(f"SDARTS needs 0 <= epsilon_start <= epsilon, got {epsilon_start} and {epsilon}")
        super().__init__(context, **darts_options)
        self.epsilon_max, self.epsilon_start = float(epsilon), float(epsilon_start)
        self.generator = torch.Generator().manual_seed(context.seed)  # delta; saved with the search

    @property
    def epsilon(self) -> float:
        """epsilon of the current epoch: the code's linear ramp (a function of the epoch, so it resumes)."""
        return self.epsilon_start + (self.epsilon_max - self.epsilon_start) * self.epoch / self.context.epochs

    def random_perturbation(self, A: dict, epsilon: float) -> dict:
        """clip(A + delta), delta ~ U[-epsilon, epsilon] per entry."""
        return {k: clip_to_simplex(a + (torch.rand(a.shape, generator=self.generator, dtype=a.dtype) * 2 - 1)
                                   .mul_(epsilon).to(a.device))
                for k, a in A.items()}

    def perturb(self, A: dict, batch) -> dict:
        return self.random_perturbation(A, self.epsilon)

    def w_step(self, batch, arch):
        """DARTS's weight step at the perturbed architecture weights (alpha itself is untouched)."""
        if self.epsilon > 0:
            arch = self.perturb(arch, batch)
        metrics = super().w_step(batch, arch)
        return {**metrics, "epsilon": self.epsilon}

    def state_dict(self):
        return {**super().state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])


class SDARTSADV(SDARTSRS):
    name = "sdarts_adv"
    paper = ("Chen & Hsieh, Stabilizing Differentiable Architecture Search via Perturbation-based "
             "Regularization, ICML 2020 (adversarial)")

    def __init__(self, context, *, attack_steps=7, **rs_options):
        if attack_steps < 1:
            raise ValueError(f"SDARTS-ADV needs attack_steps >= 1, got {attack_steps}")
        super().__init__(context, **rs_options)
        self.attack_steps = int(attack_steps)

    def perturb(self, A: dict, batch) -> dict:
        """PGD on L_train(w, .) in the L_inf ball of radius epsilon around A, from
        a random start, in eval mode; A itself if the attack did not raise the loss."""
        x, y = batch
        epsilon = self.epsilon
        step = 2 * epsilon / self.attack_steps
        training = self.supernet.training
        self.supernet.eval()
        try:
            with torch.no_grad():
                before = self.loss(x, y, A)[0]
            delta_A = self.random_perturbation(A, epsilon)
            for _ in range(self.attack_steps):
                delta_A = {k: a.requires_grad_() for k, a in delta_A.items()}
                loss = self.loss(x, y, delta_A)[0]
                # A table the network never uses (no normal cell when layers=2) gets no gradient: it stays.
                grads = torch.autograd.grad(loss, list(delta_A.values()), allow_unused=True)
                with torch.no_grad():
                    delta_A = {k: clip_to_simplex(A[k] + (a + step * (0 if g is None else g.sign()) - A[k])
                                                  .clamp(-epsilon, epsilon))
                               for (k, a), g in zip(delta_A.items(), grads)}
            with torch.no_grad():
                after = self.loss(x, y, delta_A)[0]
        finally:
            self.supernet.train(training)
        return delta_A if after >= before else A

"""The contract between strategies, the loop and the dashboard: a strategy
written here in a few lines, which the library has never seen, runs in the
one search loop, resumes exactly, and shows in the dashboard without any
change to the dashboard (including a ragged table with a mask)."""
import numpy as np
import pytest
import torch

import nasedu
from nasedu.architecture import Table
from nasedu.strategies import Strategy
from nasedu.viz import Dashboard

from helpers import InterruptAt


class SoftmaxBandit(Strategy):
    """A toy: p(c) = prod_rows softmax(theta_row), theta += lr (R - b) (onehot(c) - p), b a moving average.
    It also shows a ragged table (rows with 2 and 3 options) to exercise masks."""

    name = "softmax-bandit"

    def __init__(self, context, *, lr=2.0, decay=0.9, samples_per_epoch=10):
        super().__init__(context)
        self.theta = {k: torch.zeros(shape) for k, shape in self.space.shapes().items()}
        self.lr, self.decay, self.samples_per_epoch = lr, decay, samples_per_epoch
        self.baseline, self.generator = None, torch.Generator().manual_seed(context.seed)

    def steps_per_epoch(self):
        return self.samples_per_epoch

    def step(self):
        p = {k: t.softmax(-1) for k, t in self.theta.items()}
        c = {k: torch.multinomial(v, 1, generator=self.generator).squeeze(1) for k, v in p.items()}
        R = self.context.true_accuracy(self.space.decode(c))
        self.baseline = R if self.baseline is None else self.decay * self.baseline + (1 - self.decay) * R
        for k in self.theta:
            self.theta[k] += self.lr * (R - self.baseline) * (torch.nn.functional.one_hot(c[k], p[k].shape[1]) - p[k])
        return {"reward": R, "baseline": self.baseline}

    def distributions(self):
        tables = {k: self.space.table(k, t.softmax(-1)) for k, t in self.theta.items()}
        mask = np.array([[True, True, False], [True, True, True]])
        tables["ragged"] = Table(np.where(mask, [[0.5, 0.5, 0], [0.2, 0.3, 0.5]], 0), ["two", "three"],
                                 ["a", "b", "c"], mask, "ragged")
        return tables

    def architecture(self):
        return self.space.derive({k: t.softmax(-1) for k, t in self.theta.items()})

    def state_dict(self):
        return {"theta": {k: t.clone() for k, t in self.theta.items()}, "baseline": self.baseline,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.theta = {k: t.clone() for k, t in state["theta"].items()}
        self.baseline = state["baseline"]
        self.generator.set_state(state["generator"])


BANDIT = dict(space="macro", benchmark="nas-bench-macro", epochs=3, progress=False)


def test_a_new_strategy_runs_in_the_loop_and_learns():
    result = nasedu.search(SoftmaxBandit, **BANDIT)
    assert len(result.history.steps) == 30 and len(result.history.epochs) == 3
    assert result.history.meta["strategy"] == "softmax-bandit"
    assert result.true_acc == nasedu.bench.load("nas-bench-macro").accuracy(result.architecture)
    theta = result.strategy.theta["layers"]
    assert theta.abs().max() > 0.01  # the policy moved
    # Its own metrics are averaged per epoch by the loop, whatever their names.
    first = result.history.epochs[0]
    assert first["reward"] == pytest.approx(np.mean([s["reward"] for s in result.history.steps[:10]]))
    assert "baseline" in first and "supernet_val_acc" not in first


def test_a_new_strategy_resumes_exactly(tmp_path):
    reference = nasedu.search(SoftmaxBandit, **BANDIT)
    stopped = nasedu.search(SoftmaxBandit, out=str(tmp_path), callbacks=[InterruptAt(14)], **BANDIT)
    assert stopped.interrupted and len(stopped.history.steps) == 14
    resumed = nasedu.search(SoftmaxBandit, out=str(tmp_path), **BANDIT)
    assert torch.equal(resumed.strategy.theta["layers"], reference.strategy.theta["layers"])
    assert [s["reward"] for s in resumed.history.steps] == [s["reward"] for s in reference.history.steps]
    assert resumed.architecture == reference.architecture


def test_a_new_strategy_shows_in_the_dashboard_unchanged():
    dash = Dashboard(backend="widget", max_updates_per_second=float("inf"), max_cell_draws_per_second=float("inf"))
    result = nasedu.search(SoftmaxBandit, callbacks=[dash], **BANDIT)
    layout, fig = dash.figure_layout, dash.renderer.figure
    # No plots declared: its numeric metrics get panels of their own.
    assert layout.panels == {"metrics": ["reward", "baseline"]}
    assert len(fig.data[layout.curve_trace["reward"]].x) == 30
    # One heatmap per table, labelled by the table, masked options blank.
    heat = fig.data[layout.heatmap_trace["layers"]]
    assert list(heat.y)[0] == "layer 1 (stride 2)" and list(heat.x) == ["id", "ir_3x3_t3", "ir_5x5_t6"]
    final = result.strategy.distributions()
    assert np.allclose(np.asarray(heat.z, dtype=float), final["layers"].probabilities)
    ragged = fig.data[layout.heatmap_trace["ragged"]]
    assert list(ragged.z[0]) == [0.5, 0.5, None]
    # Entropy per row, over the options that exist: the ragged rows are 1 (uniform) and below 1.
    _, H = dash.state.entropy_series("ragged")
    assert H[-1, 0] == pytest.approx(1.0) and 0.9 < H[-1, 1] < 1.0
    # The architecture is drawn by its space (a NAS-Bench-Macro chain), with its status line.
    cells = dash.renderer.panes["cells"].value
    assert "<svg" in cells and "nasedu-cell-network" in cells
    assert dash.state.architecture == result.architecture
    assert dash.state.status.startswith("finished: step 30/30")

"""The dashboard's data path without a browser: what each panel holds after N
callbacks, the throttle, batched updates, cells redrawn only on change,
replay and the slider, the Colab fallback, and the final state a saved
notebook keeps. (tests/test_browser.py watches it render in JupyterLab.)"""
import json
import math
import re
import sys
import warnings

import numpy as np
import pytest
import torch

import nasedu
from nasedu.genotypes import PRIMITIVES, derive_genotype, genotype_to_json, num_edges
from nasedu.search import History, SearchResult, SearchRun
from nasedu.viz import Dashboard
from nasedu.viz import dashboard as dashboard_module
from nasedu.viz.dashboard import DashboardState, choose_backend, edge_labels

from helpers import InterruptAt

TINY = dict(data="synthetic", C=4, layers=2, steps=2, multiplier=2, epochs=2, batch_size=32, progress=False)
TINY_STEPS = 10  # 5 steps per epoch on the synthetic data, 2 epochs


# ---------------------------------------------------------------------------
# A scripted run: the loop's callbacks without training, with a fake clock
# ---------------------------------------------------------------------------

class ScriptedStrategy:
    """Exposes whatever probabilities the test sets, like any strategy."""

    def __init__(self, steps=2, primitives=PRIMITIVES):
        E, O = num_edges(steps), len(primitives)
        self.P = {k: torch.full((E, O), 1.0 / O) for k in ("normal", "reduce")}
        self.steps, self.primitives = steps, list(primitives)

    def probabilities(self):
        return {k: v.clone() for k, v in self.P.items()}

    def genotype(self):
        return derive_genotype(self.P["normal"], self.P["reduce"], self.steps, self.steps, self.primitives, logits=False)

    def prefer(self, kind, edge, op):
        """Make `op` the strongest operation on `edge` of the `kind` cell."""
        row = torch.full((len(self.primitives),), 0.02)
        row[self.primitives.index(op)] = 1 - 0.02 * (len(self.primitives) - 1)
        self.P[kind][edge] = row


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class Script:
    """Drives a dashboard through on_search_start, N x on_step_end, epoch ends
    and on_search_end, as `nasedu.search` calls them."""

    def __init__(self, dashboard, steps_per_epoch=10, epochs=3, steps=2, seconds_per_step=0.1):
        self.dash, self.clock = dashboard, Clock()
        dashboard.clock = self.clock
        self.strategy = ScriptedStrategy(steps)
        self.seconds_per_step = seconds_per_step
        meta = {"config": {"strategy": "scripted", "data": "none", "epochs": epochs}, "device": "cpu",
                "primitives": list(PRIMITIVES), "steps": steps, "multiplier": steps, "strategy": "scripted"}
        self.run = SearchRun(meta["config"], self.strategy, None, torch.device("cpu"), History(meta=meta),
                             steps_per_epoch, steps_per_epoch * epochs)

    def start(self):
        self.dash.on_search_start(self.run)

    def step(self, n=1):
        run = self.run
        for _ in range(n):
            run.global_step += 1
            self.clock.t = run.global_step * self.seconds_per_step
            run.steps_this_session += 1
            s = run.global_step
            record = {"step": s, "epoch": run.epoch, "train_loss": 2.0 / s, "train_acc": 1 - 1.0 / (s + 1),
                      "arch_loss": 2.5 / s, "arch_acc": 1 - 1.5 / (s + 1), "lr": 0.025}
            run.history.steps.append(record)
            run.history.snapshots.append({"step": s, "epoch": run.epoch, "probabilities":
                                          {k: v.tolist() for k, v in self.strategy.probabilities().items()}})
            self.dash.on_step_end(run, record)
            if s % run.steps_per_epoch == 0:
                self.end_epoch()

    def end_epoch(self):
        run = self.run
        record = {"epoch": run.epoch, "step": run.global_step, "val_loss": 1.0 / (run.epoch + 1),
                  "val_acc": 0.5 + 0.1 * run.epoch, "seconds": 1.0,
                  "genotype": json.loads(genotype_to_json(self.strategy.genotype())),
                  "probabilities": {k: v.tolist() for k, v in self.strategy.probabilities().items()}}
        run.history.epochs.append(record)
        run.epoch += 1
        self.dash.on_epoch_end(run, record)

    def end(self, interrupted=False, out=None):
        self.run.interrupted = interrupted
        result = SearchResult(self.strategy.genotype(), self.run.history, self.strategy, None, interrupted, out)
        self.dash.on_search_end(self.run, result)
        return result


def widget_dashboard(**kwargs):
    """backend="widget" outside a front end: real FigureWidgets, nothing displayed."""
    return Dashboard(backend="widget", **kwargs)


def settle(dash):
    """Wait for the cells being drawn in the worker thread (the next draw shows them)."""
    pending = dash._pending
    if pending and pending[0] is not None:
        pending[0].result()


def trace_length(fig, name_index):
    x = fig.data[name_index].x
    return 0 if x is None else len(x)


# ---------------------------------------------------------------------------
# Names and backend choice
# ---------------------------------------------------------------------------

def test_edge_labels_name_inputs_as_the_paper_does():
    assert edge_labels(2) == ["c_{k-2} -> 0", "c_{k-1} -> 0", "c_{k-2} -> 1", "c_{k-1} -> 1", "0 -> 1"]
    labels = edge_labels(4)
    assert len(labels) == 14 and labels[-1] == "2 -> 3" and labels[5] == "c_{k-2} -> 2"


def test_backend_is_chosen_from_the_environment(monkeypatch):
    assert choose_backend("auto") == "none"  # plain Python: no IPython kernel
    assert Dashboard().backend == "none"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert choose_backend("auto") == "colab"
    assert choose_backend("widget") == "widget"  # forcing wins
    with pytest.raises(ValueError, match="backend must be one of"):
        Dashboard(backend="qt")
    with pytest.raises(ValueError, match="max_updates_per_second"):
        Dashboard(max_updates_per_second=0)


# ---------------------------------------------------------------------------
# No front end: a real search records everything, draws nothing, says nothing
# ---------------------------------------------------------------------------

def test_without_a_front_end_it_records_silently(capsys):
    dash = Dashboard()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = nasedu.search("darts", callbacks=[dash], **TINY)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert dash.backend == "none" and dash.cell_draws == 0
    s = dash.state
    assert s.edge_labels == edge_labels(2) and s.primitives == list(PRIMITIVES)
    for key in ("train_loss", "arch_loss", "train_acc", "arch_acc"):
        assert s.curves[key][0] == list(range(1, TINY_STEPS + 1))
    assert s.curves["train_loss"][1] == [r["train_loss"] for r in result.history.steps]
    assert s.curves["val_acc"][1] == [r["val_acc"] for r in result.history.epochs]
    assert len(s.frames) == TINY_STEPS  # a snapshot per step at this size
    x, H = s.entropy_series("normal")
    assert H.shape == (TINY_STEPS, 5) and np.all((H >= 0) & (H <= 1))
    final = result.strategy.probabilities()
    for kind in ("normal", "reduce"):
        assert np.allclose(s.probabilities[kind], final[kind].numpy())
    assert s.genotype == result.genotype
    assert s.status.startswith(f"finished: step {TINY_STEPS}/{TINY_STEPS}")


def test_an_interrupted_search_says_it_stopped(tmp_path):
    dash = Dashboard(backend="widget")
    result = nasedu.search("darts", out=str(tmp_path), callbacks=[InterruptAt(3), dash], **TINY)
    assert result.interrupted
    expected = "stopped at step 3 (checkpoint saved; run the cell again to resume)"
    assert dash.state.status == expected and expected in dash.renderer.status.value
    assert len(dash.state.curves["train_loss"][0]) == 3
    # Running it again resumes, and the dashboard starts from the recorded history.
    again = Dashboard(backend="none")
    nasedu.search("darts", out=str(tmp_path), callbacks=[again], **TINY)
    assert again.state.curves["train_loss"][0] == list(range(1, TINY_STEPS + 1))


# ---------------------------------------------------------------------------
# What the panels hold, the throttle, batching
# ---------------------------------------------------------------------------

def test_panels_hold_curves_heatmaps_entropy_cells_and_status():
    dash = widget_dashboard()
    script = Script(dash, steps_per_epoch=10, epochs=3)
    script.start()
    fig = dash.renderer.figure
    heat = fig.data[dashboard_module.HEATMAP_TRACE["normal"]]
    assert list(heat.y) == edge_labels(2) and list(heat.x) == list(PRIMITIVES)
    # Colours run from 0 to the largest probability shown, rounded up to 0.05: uniform 1/8 -> 0.15.
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(0.15)
    assert len(fig.data) == dashboard_module.FIRST_ENTROPY_TRACE + 2 * 5  # a line per edge and cell
    script.strategy.prefer("normal", 1, "sep_conv_3x3")  # p = 0.86 on that edge
    script.step(10)  # one epoch
    assert trace_length(fig, 0) == 10 and trace_length(fig, 2) == 1  # per-step curve, one validation point
    assert np.allclose(np.asarray(heat.z), script.strategy.P["normal"].numpy())
    assert fig.layout.coloraxis.cmax == pytest.approx(0.9)
    assert trace_length(fig, dashboard_module.FIRST_ENTROPY_TRACE) == 10
    assert "sep_conv_3x3" in dash.renderer.cells.value and "<svg" in dash.renderer.cells.value
    assert re.fullmatch(r"step 10/30 \u00b7 epoch 2/3 \u00b7 cpu \u00b7 [\d.]+ (steps/s|s/step) \u00b7 \S+ left",
                        dash.state.status), dash.state.status


@pytest.mark.parametrize("steps", [2, 4, 5])
def test_rows_keep_their_pixels_and_entropy_axes_a_readable_span(steps):
    """Heatmaps grow with the cell, the gaps for labels and titles do not
    shrink, and an entropy axis spans at least [0.98, 1.002] (a bare autorange
    zooms into rounding noise when nothing has moved yet)."""
    dash = widget_dashboard()
    Script(dash, steps=steps).start()
    fig = dash.renderer.figure
    plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    tops = [fig.layout[name].domain for name in ("yaxis", "yaxis3", "yaxis5")]
    gaps = [(upper[0] - lower[1]) * plot for upper, lower in zip(tops, tops[1:])]
    assert gaps == [pytest.approx(g) for g in dashboard_module.GAPS_PX]
    heatmap_px = (tops[1][1] - tops[1][0]) * plot
    assert heatmap_px >= dashboard_module.HEATMAP_PX_PER_EDGE * num_edges(steps) - 1e-6
    titles = [a.y for a in fig.layout.annotations]
    assert titles == [pytest.approx(t) for t in (tops[0][1], tops[0][1], tops[1][1], tops[1][1], tops[2][1], tops[2][1])]
    for name in ("yaxis5", "yaxis6"):
        assert fig.layout[name].autorange is True and list(fig.layout[name].autorangeoptions.include) == [0.98, 1.002]


def test_the_throttle_bounds_draws_and_figures_follow_the_last_draw():
    dash = widget_dashboard(max_updates_per_second=4)  # at most one draw per 0.25 s
    script = Script(dash, steps_per_epoch=100, epochs=1, seconds_per_step=0.1)
    script.start()
    assert dash.draws == 1
    fig = dash.renderer.figure
    script.step(2)  # 0.2 s: too soon
    assert dash.draws == 1 and trace_length(fig, 0) == 0 and len(dash.state.curves["train_loss"][0]) == 2
    script.step(1)  # 0.3 s after the last draw
    assert dash.draws == 2 and trace_length(fig, 0) == 3
    script.step(1)
    assert dash.draws == 2 and trace_length(fig, 0) == 3  # the state has 4 points, the figure still 3
    script.step(26)  # 3 s in all: a draw every 3 steps
    assert dash.draws == 11 and trace_length(fig, 0) == 30
    script.step(70)  # ends the epoch: always drawn
    assert trace_length(fig, 0) == 100 and trace_length(fig, 2) == 1
    script.end()
    assert dash.draws <= 1 + math.ceil(10.0 * 4) + 2


def test_each_draw_is_one_batched_message():
    dash = widget_dashboard(max_updates_per_second=math.inf)
    script = Script(dash, steps_per_epoch=50, epochs=1)
    script.start()
    fig = dash.renderer.figure
    sent = []
    for name in ("_send_update_msg", "_send_restyle_msg", "_send_relayout_msg"):
        original = getattr(fig, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            sent.append(_name)
            return _original(*args, **kwargs)

        setattr(fig, name, spy)
    script.step(5)
    assert dash.draws == 1 + 5 and sent == ["_send_update_msg"] * 5


def test_long_series_are_averaged_down_to_the_window():
    dash = widget_dashboard(window=100, max_updates_per_second=math.inf)
    script = Script(dash, steps_per_epoch=1000, epochs=1)
    script.start()
    script.step(1000)
    fig = dash.renderer.figure
    assert len(dash.state.curves["train_loss"][0]) == 1000  # the state keeps everything
    assert trace_length(fig, 0) == 100
    x = np.asarray(fig.data[0].x)
    assert x[0] == pytest.approx(5.5) and x[-1] == pytest.approx(995.5)  # means of runs of 10 steps
    assert trace_length(fig, dashboard_module.FIRST_ENTROPY_TRACE) == 100


def test_cells_are_redrawn_only_when_the_genotype_changes_with_changes_marked():
    dash = widget_dashboard(max_updates_per_second=math.inf, max_cell_draws_per_second=math.inf)
    script = Script(dash, steps_per_epoch=20, epochs=1)
    script.strategy.prefer("normal", 0, "sep_conv_3x3")
    script.strategy.prefer("normal", 1, "max_pool_3x3")
    script.start()
    settle(dash)
    script.step(5)
    assert dash.cell_draws == 2  # normal and reduce, once, however many draws
    first = dash.renderer.cells.value
    assert "changed" not in first
    script.strategy.prefer("normal", 1, "skip_connect")  # c_{k-1} -> 0 changes its operation
    script.step(1)
    settle(dash)
    script.step(1)
    assert dash.cell_draws == 3  # only the normal cell was drawn again
    cells = dash.renderer.cells.value
    assert "c_{k-1} -&gt; 0: max_pool_3x3 \u2192 skip_connect" in cells
    assert cells.count("drop-shadow") == 1  # the changed edge glows
    assert dash.state.changes["normal"] == [("c_{k-1} -> 0", "max_pool_3x3", "skip_connect")]
    script.step(13)  # no change: no more drawing
    assert dash.cell_draws == 3


def test_cell_drawings_are_throttled_and_mark_everything_changed_since_the_last():
    """A genotype changing at every step (0.1 s apart) starts at most one
    drawing a second; the edges marked are all those changed since the cells
    on screen, not only the last step's."""
    dash = widget_dashboard(max_updates_per_second=math.inf, max_cell_draws_per_second=1.0)
    script = Script(dash, steps_per_epoch=100, epochs=1, seconds_per_step=0.1)
    script.start()
    settle(dash)
    script.step(1)
    assert dash.cell_draws == 2 and dash._shown_cells == dash.state.genotype_version
    ops = ["sep_conv_3x3", "max_pool_3x3", "dil_conv_5x5"]
    starts = []
    for i in range(30):  # 3 seconds of steps, the normal cell's edge 0 or 1 changing every step
        script.strategy.prefer("normal", i % 2, ops[i % 3])
        before = dash._painter.draws
        script.step(1)
        settle(dash)
        if dash._painter.draws > before:
            starts.append(script.run.global_step)
    assert 2 <= len(starts) <= 4, starts  # about one a second, not 30
    assert all(b - a >= 10 for a, b in zip(starts, starts[1:])), starts
    script.step(9)  # the throttle lets the last genotype through: the screen catches up
    settle(dash)
    script.step(1)
    assert dash._shown_cells == dash.state.genotype_version
    shown = dash.renderer.cells.value
    assert "changed:" in shown and shown.count("drop-shadow") == len(dash.state.changes["normal"]) >= 1


def test_status_line_when_stopped_without_a_checkpoint():
    dash = Dashboard(backend="none")
    script = Script(dash, steps_per_epoch=10, epochs=2)
    script.start()
    script.step(4)
    script.end(interrupted=True)
    assert dash.state.status.startswith("stopped at step 4 (no checkpoint")
    assert dash.state.interrupted


# ---------------------------------------------------------------------------
# After training: the slider, and replaying a saved run
# ---------------------------------------------------------------------------

def test_slider_scrubs_heatmaps_and_cells_through_the_snapshots():
    dash = widget_dashboard()
    script = Script(dash, steps_per_epoch=5, epochs=2)
    script.start()
    script.step(3)
    early = {k: v.clone() for k, v in script.strategy.P.items()}
    script.strategy.prefer("normal", 4, "dil_conv_3x3")
    script.step(7)
    script.end()
    r = dash.renderer
    assert r.slider_box.layout.display == "flex"
    assert r.slider.max == 9 and r.slider.value == 9  # one snapshot per step
    r.slider.value = 2  # step 3
    heat = r.figure.data[dashboard_module.HEATMAP_TRACE["normal"]]
    assert np.allclose(np.asarray(heat.z), early["normal"].numpy())
    assert "derived at step 3" in r.cells.value and "step 3" in r.slider_label.value
    assert r.figure.layout.shapes[0].x0 == 3  # a marker at that step on the curves
    r.slider.value = 3  # step 4: the edge 0 -> 1 turned to dil_conv_3x3
    assert "0 -&gt; 1: added (dil_conv_3x3)" in r.cells.value
    assert np.allclose(np.asarray(heat.z), script.strategy.P["normal"].numpy())


def test_replay_shows_a_saved_run_without_training(tmp_path):
    result = nasedu.search("darts", record_every=2, **TINY)
    path = tmp_path / "history.json"
    result.history.save(path)
    for source in (result.history, result, str(path)):
        dash = Dashboard.replay(source, backend="widget")
        assert dash.state.curves["train_loss"][0] == list(range(1, TINY_STEPS + 1))
        assert [f["step"] for f in dash.state.frames] == [2, 4, 5, 6, 8, 10]  # snapshots and epoch ends
        assert dash.state.genotype == result.genotype
        assert dash.state.status.startswith("replay of a saved darts run \u00b7 10 steps \u00b7 2 epochs")
        assert trace_length(dash.renderer.figure, 0) == TINY_STEPS
        assert dash.renderer.slider.max == 5 and "<svg" in dash.renderer.cells.value
    mine = Dashboard(backend="none")
    assert mine.replay(result.history) is mine and len(mine.state.frames) == 6


def test_numpy_derivation_is_the_darts_rule_of_derive_cell():
    from nasedu.genotypes import derive_cell
    from nasedu.viz.dashboard import derive_cell_numpy

    g = torch.Generator().manual_seed(0)
    for steps in (1, 2, 4):
        for trial in range(20):
            W = torch.rand(num_edges(steps), len(PRIMITIVES), generator=g)
            if trial % 4 == 0:  # ties: equal rows and equal ops must break as derive_cell does
                W = (W * 2).round() / 2
            if trial % 4 == 1:
                W[:] = 1.0 / len(PRIMITIVES)
            expected = derive_cell(W, steps, PRIMITIVES)
            assert derive_cell_numpy(W.double().numpy(), steps, list(PRIMITIVES)) == expected


def test_state_without_renderer_is_plain_data():
    state = DashboardState()
    state.configure({"primitives": ["none", "skip_connect", "sep_conv_3x3"], "steps": 1, "multiplier": 1})
    state.add_step({"step": 1, "train_loss": 1.0})
    state.add_frame(1, 0, {"normal": [[0.1, 0.2, 0.7], [0.8, 0.1, 0.1]], "reduce": [[1 / 3] * 3, [1 / 3] * 3]})
    _, H = state.entropy_series("reduce")
    assert np.allclose(H, 1.0)  # uniform: undecided
    state.set_probabilities(1, state.frames[0]["probabilities"])
    g = state.derive()
    assert g.normal == [("sep_conv_3x3", 0), ("skip_connect", 1)]  # `none` is never chosen


# ---------------------------------------------------------------------------
# Colab: static figures through display handles, at most once a second
# ---------------------------------------------------------------------------

class FakeHandle:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def update(self, obj):
        self.log.append((self.name, obj))


def test_colab_backend_redraws_static_figures_through_display_handles(monkeypatch):
    import plotly.graph_objects as go

    log, shown = [], []

    def fake_display(obj, display_id=False):
        shown.append(obj)
        return FakeHandle(log, len(shown) - 1) if display_id else None

    monkeypatch.setattr(dashboard_module, "_shell", lambda: object())  # as if in a notebook
    dash = Dashboard(backend="colab", max_updates_per_second=4)
    dash.renderer._display = fake_display
    assert dash.min_interval == 1.0  # Colab draws at most once a second
    script = Script(dash, steps_per_epoch=30, epochs=1, seconds_per_step=0.1)
    script.start()
    assert isinstance(shown[1], go.Figure) and not isinstance(shown[1], go.FigureWidget)
    script.step(25)
    figure_updates = [obj for name, obj in log if name == 1]
    assert len(figure_updates) == 1 + 2  # the start, then at 1.0 s and 2.0 s
    assert len(figure_updates[-1].data[0].x) == 20
    script.step(5)
    script.end()
    assert any(name == 2 and "<svg" in obj.data for name, obj in log)  # the cells, as HTML
    assert "finished" in [obj for name, obj in log if name == 0][-1].data


# ---------------------------------------------------------------------------
# An executed notebook keeps the final state, not the construction-time one
# ---------------------------------------------------------------------------

def _decoded_trace_x(model, trace_index):
    """Length of trace `trace_index`'s x in a saved FigureWidget model (lists
    or binary buffers)."""
    x = model["state"]["_widget_data"][trace_index].get("x")
    if isinstance(x, list):
        return len(x)
    if isinstance(x, dict) and "shape" in x:
        return x["shape"][0]
    return 0


@pytest.mark.notebook
def test_executed_notebook_saves_the_final_widget_state(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 kernel installed (make install registers one)")
    code = (
        "import torch, nasedu, nasedu.viz\n"
        "torch.set_num_threads(1)\n"
        "dashboard = nasedu.viz.Dashboard()\n"
        f"result = nasedu.search('darts', callbacks=[dashboard], **{TINY!r})\n"
        "print(dashboard.backend, len(result.history.steps))"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[-1]["text"].strip() == f"widget {TINY_STEPS}"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    figures = [m for m in state.values() if "_widget_data" in m["state"]]
    assert len(figures) == 1  # one FigureWidget: plotly.js is shipped once
    fig = figures[0]
    assert _decoded_trace_x(fig, 0) == TINY_STEPS  # the final loss curve, not the empty one
    assert _decoded_trace_x(fig, 2) == TINY["epochs"]
    heat = fig["state"]["_widget_data"][dashboard_module.HEATMAP_TRACE["normal"]]
    assert len(heat["z"]) == 5 and len(heat["z"][0]) == len(PRIMITIVES)
    saved = {k: np.asarray(fig["state"]["_widget_data"][i]["z"]) for k, i in dashboard_module.HEATMAP_TRACE.items()}
    assert fig["state"]["_widget_layout"]["coloraxis"]["cmax"] == pytest.approx(dashboard_module._colour_top(saved))
    html_values = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any("finished: step 10/10" in v for v in html_values)
    assert any("<svg" in v for v in html_values)

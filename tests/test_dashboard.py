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
from nasedu.context import SearchContext
from nasedu.genotypes import PRIMITIVES, edge_labels, num_edges
from nasedu.search import History, SearchResult, SearchRun
from nasedu.spaces import DartsCellSpace
from nasedu.strategies import SupernetStrategy
from nasedu.viz import Dashboard, live, panels
from nasedu.viz.dashboard import DashboardState, choose_backend

from helpers import InterruptAt

TINY = dict(data="synthetic", C=4, layers=2, steps=2, multiplier=2, epochs=2, batch_size=32, progress=False)
TINY_STEPS = 10  # 5 steps per epoch on the synthetic data, 2 epochs


# ---------------------------------------------------------------------------
# A scripted run: the loop's callbacks without training, with a fake clock
# ---------------------------------------------------------------------------

class ScriptedStrategy:
    """Shows whatever probabilities the test sets, like any strategy: tables
    of its space and the architecture the space derives from them."""

    def __init__(self, steps=2, primitives=PRIMITIVES):
        self.space = DartsCellSpace(steps=steps, multiplier=steps, primitives=primitives)
        E, O = num_edges(steps), len(primitives)
        self.P = {k: torch.full((E, O), 1.0 / O) for k in ("normal", "reduce")}
        self.primitives = list(primitives)

    def distributions(self):
        return {k: self.space.table(k, v.clone()) for k, v in self.P.items()}

    def architecture(self):
        return self.space.derive(self.P)

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
        space = self.strategy.space
        config = {"strategy": "scripted", "data": "none", "epochs": epochs}
        meta = {"config": config, "device": "cpu", "space": space.config(), "space_title": space.title,
                "strategy": "scripted", "plots": SupernetStrategy.plots, "headline": "supernet_val_acc",
                "tables": {k: t.layout() for k, t in self.strategy.distributions().items()}}
        context = SearchContext(space=space, device="cpu", epochs=epochs)
        self.run = SearchRun(config, self.strategy, context, History(meta=meta), steps_per_epoch,
                             steps_per_epoch * epochs)

    def _shown(self):
        return {k: t.probabilities.tolist() for k, t in self.strategy.distributions().items()}

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
            run.history.snapshots.append({"step": s, "epoch": run.epoch, "distributions": self._shown(),
                                          "architecture": self.strategy.architecture().to_data()})
            self.dash.on_step_end(run, record)
            if s % run.steps_per_epoch == 0:
                self.end_epoch()

    def end_epoch(self):
        run = self.run
        record = {"epoch": run.epoch, "step": run.global_step, "supernet_val_loss": 1.0 / (run.epoch + 1),
                  "supernet_val_acc": 0.5 + 0.1 * run.epoch, "oneshot_val_loss": 1.5, "oneshot_val_acc": 0.4,
                  "seconds": 1.0, "architecture": self.strategy.architecture().to_data(),
                  "distributions": self._shown()}
        run.history.epochs.append(record)
        run.epoch += 1
        self.dash.on_epoch_end(run, record)

    def end(self, interrupted=False, out=None):
        self.run.interrupted = interrupted
        result = SearchResult(self.strategy.architecture(), self.run.history, self.strategy, self.strategy.space,
                              interrupted, out)
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


def curve(dash, key):
    return dash.figure_layout.curve_trace[key]


def heatmap(dash, table):
    return dash.renderer.figure.data[dash.figure_layout.heatmap_trace[table]]


# ---------------------------------------------------------------------------
# Names and backend choice
# ---------------------------------------------------------------------------

def test_edge_labels_name_inputs_as_the_paper_does():  # the rows of the DARTS tables
    assert edge_labels(2) == ["c_{k-2} -> 0", "c_{k-1} -> 0", "c_{k-2} -> 1", "c_{k-1} -> 1", "0 -> 1"]
    labels = edge_labels(4)
    assert len(labels) == 14 and labels[-1] == "2 -> 3" and labels[5] == "c_{k-2} -> 2"


def test_backend_is_chosen_from_the_environment(monkeypatch):
    assert choose_backend("auto") == "none"  # plain Python: no IPython kernel
    assert Dashboard().backend == "none"
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert choose_backend("auto") == "colab" and live.choose_backend is choose_backend
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
    assert s.tables["normal"]["rows"] == edge_labels(2) and s.tables["reduce"]["columns"] == list(PRIMITIVES)
    for key in ("train_loss", "arch_loss", "train_acc", "arch_acc"):
        assert s.curves[key][0] == list(range(1, TINY_STEPS + 1))
    assert s.curves["train_loss"][1] == [r["train_loss"] for r in result.history.steps]
    assert s.epoch_curves["supernet_val_acc"][1] == [r["supernet_val_acc"] for r in result.history.epochs]
    x, y, per_epoch = s.series("oneshot_val_acc")
    assert per_epoch and list(y) == [r["oneshot_val_acc"] for r in result.history.epochs]
    assert len(s.frames) == TINY_STEPS  # a snapshot per step at this size
    x, H = s.entropy_series("normal")
    assert H.shape == (TINY_STEPS, 5) and np.all((H >= 0) & (H <= 1))
    final = result.strategy.distributions()
    for kind in ("normal", "reduce"):
        assert np.allclose(s.probabilities[kind], final[kind].probabilities)
    assert s.architecture == result.architecture
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
    heat = heatmap(dash, "normal")
    assert list(heat.y) == edge_labels(2) and list(heat.x) == list(PRIMITIVES)
    # Colours run from 0 to the largest probability shown, rounded up to 0.05: uniform 1/8 -> 0.15.
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(0.15)
    assert len(fig.data) == 8 + 2 + 2 * 5  # the declared curves, two heatmaps, a line per edge and cell
    script.strategy.prefer("normal", 1, "sep_conv_3x3")  # p = 0.86 on that edge
    script.step(10)  # one epoch
    assert trace_length(fig, curve(dash, "train_loss")) == 10  # per step
    assert trace_length(fig, curve(dash, "supernet_val_loss")) == 1  # one validation point
    assert fig.data[curve(dash, "supernet_val_acc")].mode == "lines+markers"
    assert np.allclose(np.asarray(heat.z), script.strategy.P["normal"].numpy())
    assert fig.layout.coloraxis.cmax == pytest.approx(0.9)
    assert trace_length(fig, dash.figure_layout.entropy_trace[("normal", 0)]) == 10
    cells = dash.renderer.panes["cells"].value
    assert "sep_conv_3x3" in cells and "<svg" in cells
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
    assert gaps == [pytest.approx(g) for g in panels.GAPS_PX]
    heatmap_px = (tops[1][1] - tops[1][0]) * plot
    assert heatmap_px >= panels.HEATMAP_PX_PER_ROW * num_edges(steps) - 1e-6
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
    assert curve(dash, "train_loss") == 0 and curve(dash, "supernet_val_loss") == 2
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
    assert trace_length(fig, dash.figure_layout.entropy_trace[("normal", 0)]) == 100


def test_cells_are_redrawn_only_when_the_genotype_changes_with_changes_marked():
    dash = widget_dashboard(max_updates_per_second=math.inf, max_cell_draws_per_second=math.inf)
    script = Script(dash, steps_per_epoch=20, epochs=1)
    script.strategy.prefer("normal", 0, "sep_conv_3x3")
    script.strategy.prefer("normal", 1, "max_pool_3x3")
    script.start()
    settle(dash)
    script.step(5)
    assert dash.cell_draws == 2  # normal and reduce, once, however many draws
    first = dash.renderer.panes["cells"].value
    assert "changed" not in first
    script.strategy.prefer("normal", 1, "skip_connect")  # c_{k-1} -> 0 changes its operation
    script.step(1)
    settle(dash)
    script.step(1)
    assert dash.cell_draws == 3  # only the normal cell was drawn again
    cells = dash.renderer.panes["cells"].value
    assert "normal cell: c_{k-1} -&gt; 0: max_pool_3x3 \u2192 skip_connect" in cells
    assert cells.count("drop-shadow") == 1  # the changed edge glows
    assert dash.state.changes == [("normal cell: c_{k-1} -> 0", "max_pool_3x3", "skip_connect")]
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
    assert dash.cell_draws == 2 and dash._shown_cells == dash.state.architecture_version
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
    assert dash._shown_cells == dash.state.architecture_version
    shown = dash.renderer.panes["cells"].value
    marked = [c for c in dash.state.changes if c[2] is not None]
    assert "changed:" in shown and shown.count("drop-shadow") == len(marked) >= 1


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
    heat = heatmap(dash, "normal")
    assert np.allclose(np.asarray(heat.z), early["normal"].numpy())
    assert "derived at step 3" in r.panes["cells"].value and "step 3" in r.slider_label.value
    assert r.figure.layout.shapes[0].x0 == 3  # a marker at that step on the curves
    r.slider.value = 3  # step 4: the edge 0 -> 1 turned to dil_conv_3x3
    assert "normal cell: 0 -&gt; 1: added (dil_conv_3x3)" in r.panes["cells"].value
    assert np.allclose(np.asarray(heat.z), script.strategy.P["normal"].numpy())


def test_replay_shows_a_saved_run_without_training(tmp_path):
    result = nasedu.search("darts", record_every=2, **TINY)
    path = tmp_path / "history.json"
    result.history.save(path)
    for source in (result.history, result, str(path)):
        dash = Dashboard.replay(source, backend="widget")
        assert dash.state.curves["train_loss"][0] == list(range(1, TINY_STEPS + 1))
        assert [f["step"] for f in dash.state.frames] == [2, 4, 5, 6, 8, 10]  # snapshots and epoch ends
        assert dash.state.architecture == result.architecture
        assert dash.state.status.startswith("replay of a saved darts run \u00b7 10 steps \u00b7 2 epochs")
        assert trace_length(dash.renderer.figure, 0) == TINY_STEPS
        assert dash.renderer.slider.max == 5 and "<svg" in dash.renderer.panes["cells"].value
    mine = Dashboard(backend="none")
    assert mine.replay(result.history) is mine and len(mine.state.frames) == 6


def test_state_without_renderer_is_plain_data():
    state = DashboardState()
    mask = [[True, True, False], [True, True, True]]
    state.configure({"tables": {"t": {"rows": ["a", "b"], "columns": ["x", "y", "z"], "mask": mask, "title": "t"}}})
    state.add_step({"step": 1, "train_loss": 1.0, "reward": 0.5, "lr": 0.1})
    assert state.plots == {"loss": ["train_loss"], "metrics": ["reward"]}  # none declared: from the metrics
    state.add_frame(1, 0, {"t": [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]})
    _, H = state.entropy_series("t")
    assert np.allclose(H, [[1.0, 0.0]])  # uniform over the two options row a has; row b decided
    state.set_probabilities(1, state.frames[0]["probabilities"])
    assert state.shown_probabilities("t")[0] == [0.5, 0.5, None]  # a masked option is left blank


def test_entropy_is_normalised_by_the_options_a_row_has():
    P = np.array([[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    assert np.allclose(panels.normalised_entropy(P), [1.0, 0.5, 0.0])
    assert np.allclose(panels.normalised_entropy(P, P > 0), [1.0, 1.0, 0.0])


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

    monkeypatch.setattr(live, "_shell", lambda: object())  # as if in a notebook
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
        "import json\n"
        "dashboard = nasedu.viz.Dashboard()\n"
        f"result = nasedu.search('darts', callbacks=[dashboard], **{TINY!r})\n"
        "layout = dashboard.figure_layout\n"
        "print(json.dumps({'backend': dashboard.backend, 'steps': len(result.history.steps),\n"
        "                  'heatmaps': layout.heatmap_trace, 'val_trace': layout.curve_trace['supernet_val_loss']}))"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = json.loads(nb.cells[0].outputs[-1]["text"])
    assert (printed["backend"], printed["steps"]) == ("widget", TINY_STEPS)
    heatmaps, val_trace = printed["heatmaps"], printed["val_trace"]
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    figures = [m for m in state.values() if "_widget_data" in m["state"]]
    assert len(figures) == 1  # one FigureWidget: plotly.js is shipped once
    fig = figures[0]
    assert _decoded_trace_x(fig, 0) == TINY_STEPS  # the final loss curve, not the empty one
    assert _decoded_trace_x(fig, int(val_trace)) == TINY["epochs"]
    heat = fig["state"]["_widget_data"][heatmaps["normal"]]
    assert len(heat["z"]) == 5 and len(heat["z"][0]) == len(PRIMITIVES)
    saved = {k: np.asarray(fig["state"]["_widget_data"][i]["z"]) for k, i in heatmaps.items()}
    assert fig["state"]["_widget_layout"]["coloraxis"]["cmax"] == pytest.approx(panels.colour_top(saved))
    html_values = [m["state"].get("value", "") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert any("finished: step 10/10" in v for v in html_values)
    assert any("<svg" in v for v in html_values)

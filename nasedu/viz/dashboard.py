"""The live dashboard: watch a search think while it trains.

    >>> dashboard = nasedu.viz.Dashboard()
    >>> result = nasedu.search("darts", callbacks=[dashboard])

`Dashboard` is a search callback (see `nasedu.callbacks.Callback`). It draws
whatever the strategy shows, without knowing which strategy or space it is:

- the curves the strategy declares (``strategy.plots``: losses and accuracies
  of the weight split, the architecture split and validation for DARTS; reward
  and best reward for random search);
- a heatmap per distribution table (``strategy.distributions()``:
  softmax(alpha) for DARTS, theta for SNAS and ASNG, a controller's policy),
  rows and columns labelled as the table says, masked options left blank;
- the entropy of every row over time (1: every option equally likely, 0: the
  row has decided), where convergence and collapse show;
- the architecture the strategy derives right now (``strategy.architecture()``),
  drawn by its space, redrawn when it changes, with the changed decisions marked;
- a status line (step, epoch, device, speed, time left; "stopped" after an interrupt).

After the search a slider scrubs through the recorded snapshots, and
`Dashboard.replay(history)` shows a saved run without training.

How it stays cheap: the callbacks only append numbers to a `DashboardState`
(plain Python and numpy, no drawing); a `nasedu.viz.live.LiveView` pushes it
to the front end at most `max_updates_per_second` times (one batched message
per push) and always at the end of each epoch and of the search. Architectures
are drawn by graphviz in a worker thread, at most `max_cell_draws_per_second`,
only when they change.
"""
from __future__ import annotations

import html
import math
import numbers
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..architecture import changed_decisions
from ..callbacks import Callback
from ..history import History
from .diagram import inline_svg, mark_changed
from .live import BACKENDS, LiveView, Throttle, choose_backend
from .panels import FigureLayout, apply_state, build_figure, normalised_entropy

__all__ = ["Dashboard", "DashboardState", "choose_backend", "BACKENDS", "default_plots"]


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def _duration(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _downsample(x: np.ndarray, y: np.ndarray, window: int):
    """At most `window` points: means over equal runs of consecutive points
    (a long noisy loss curve becomes its running average, whole run kept)."""
    n = len(x)
    if n <= window:
        return x, y
    k = -(-n // window)
    m = n // k
    xs, ys = x[:m * k].reshape(m, k).mean(axis=1), y[:m * k].reshape(m, k, *y.shape[1:]).mean(axis=1)
    if m * k < n:
        xs = np.concatenate([xs, [x[m * k:].mean()]])
        ys = np.concatenate([ys, y[m * k:].mean(axis=0, keepdims=True)])
    return xs, ys


def _numeric(record: dict) -> dict:
    return {k: float(v) for k, v in record.items() if k not in ("step", "epoch", "seconds")
            and isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)}


def default_plots(keys) -> dict:
    """Panels for a strategy that declares none: losses, accuracies, the rest."""
    keys = [k for k in keys if k != "lr"]
    panels = {"loss": [k for k in keys if k.endswith("_loss")], "accuracy": [k for k in keys if k.endswith("_acc")]}
    panels["metrics"] = [k for k in keys if k not in panels["loss"] + panels["accuracy"]]
    return {title: ks for title, ks in panels.items() if ks}


def _describe_change(key, old, new) -> str:
    if old is None:
        return f"{key}: added ({new})"
    if new is None:
        return f"{key}: dropped ({old})"
    return f"{key}: {old} \u2192 {new}"


# ---------------------------------------------------------------------------
# What the panels show, as plain data
# ---------------------------------------------------------------------------

class DashboardState:
    """Everything the dashboard shows, kept as plain Python and numpy data.

    The callbacks update it; renderers only read it. Tests inspect it directly.

    - ``tables``: ``{name: layout}`` (rows, columns, mask, title); ``plots``:
      ``{panel: [metric keys]}``; ``space``: the search space (parses architectures);
    - ``curves[key] = (steps, values)`` per step and ``epoch_curves[key]`` per epoch;
    - ``frames``: the recorded snapshots, ``{"step", "epoch", "probabilities":
      {table: array}, "architecture": data}`` sorted by step;
    - ``entropy_steps`` and ``entropy[table]`` (``[len(entropy_steps), rows]``);
    - ``probabilities``/``probabilities_step``: what the heatmaps show now;
    - ``architecture``, ``architecture_step``, ``changes`` (``[(key, old, new)]``
      since the architecture drawn before) and ``architecture_version`` (+1 per change);
    - ``status``: the status line.
    """

    def __init__(self):
        self.reset()

    def reset(self):
        self.meta: dict = {}
        self.tables: dict = {}
        self.plots: dict | None = None
        self.space = None
        self.total_steps = None
        self.epochs = None
        self.curves: dict = {}
        self.epoch_curves: dict = {}
        self.frames: list[dict] = []
        self._frame_steps: dict[int, int] = {}
        self.entropy_steps: list[int] = []
        self.entropy: dict = {}
        self.probabilities = None
        self.probabilities_step = None
        self.architecture = None
        self.architecture_step = None
        self.changes: list = []
        self.architecture_version = 0
        self.drawn_architecture = None
        self.curves_version = 0  # +1 per change, so renderers resend only what changed
        self.frames_version = 0
        self.layout_version = 0  # +1 when the panels or tables change shape
        self.status = "waiting for the search to start"
        self.finished = False
        self.interrupted = False

    # -- set-up ----------------------------------------------------------------
    def configure(self, meta: dict):
        """Read the tables, the panels and the space from a history's `meta`."""
        self.meta = dict(meta)
        self.tables = {k: dict(v) for k, v in (meta.get("tables") or {}).items()}
        self.plots = {k: list(v) for k, v in meta["plots"].items()} if meta.get("plots") else None
        self.entropy = {k: [] for k in self.tables}
        self.epochs = meta.get("config", {}).get("epochs")
        if meta.get("space"):
            from ..spaces import get_space

            self.space = get_space(meta["space"])
        self.layout_version += 1

    def load_history(self, history: History):
        """Take in everything `history` already holds (a resumed or a saved run)."""
        for record in history.steps:
            self.add_step(record)
        for snapshot in history.snapshots:
            self.add_frame(snapshot["step"], snapshot.get("epoch"), snapshot["distributions"],
                           snapshot.get("architecture"), snapshot.get("layout"))
        for record in history.epochs:
            self.add_epoch(record)

    # -- updates (called by the callbacks: cheap) -----------------------------
    def add_step(self, record: dict):
        self.curves_version += 1
        numeric = _numeric(record)
        if self.plots is None and numeric:
            self.plots = default_plots(numeric)
            self.layout_version += 1
        for key, value in numeric.items():
            xs, ys = self.curves.setdefault(key, ([], []))
            xs.append(record["step"])
            ys.append(value)

    def add_epoch(self, record: dict):
        self.curves_version += 1
        for key, value in _numeric(record).items():
            xs, ys = self.epoch_curves.setdefault(key, ([], []))
            xs.append(record["step"])
            ys.append(value)
        if record.get("distributions"):
            self.add_frame(record["step"], record.get("epoch"), record["distributions"], record.get("architecture"))

    def add_frame(self, step: int, epoch, distributions: dict, architecture=None, layout=None):
        """Record a snapshot of the distributions (once per step)."""
        if step in self._frame_steps:
            return
        if layout is not None and layout != self.tables:  # the strategy's tables changed shape
            self.tables = {k: dict(v) for k, v in layout.items()}
            self.entropy_steps, self.entropy = [], {k: [] for k in self.tables}
            self.layout_version += 1
        self.frames_version += 1
        probs = {k: np.asarray(P, dtype=np.float64) for k, P in distributions.items()}
        frame = {"step": step, "epoch": epoch, "probabilities": probs, "architecture": architecture}
        if self.frames and step < self.frames[-1]["step"]:  # out of order: keep sorted
            self.frames.append(frame)
            self.frames.sort(key=lambda f: f["step"])
            self._frame_steps = {f["step"]: i for i, f in enumerate(self.frames)}
            self._rebuild_entropy()
            return
        self._frame_steps[step] = len(self.frames)
        self.frames.append(frame)
        self.entropy_steps.append(step)
        for name in self.tables:
            self.entropy.setdefault(name, []).append(self._entropy(name, probs))

    def _entropy(self, name, probs):
        mask = self.tables[name].get("mask")
        P = probs.get(name)
        if P is None or P.shape != (len(self.tables[name]["rows"]), len(self.tables[name]["columns"])):
            return np.full(len(self.tables[name]["rows"]), np.nan)
        return normalised_entropy(P, None if mask is None else np.asarray(mask, dtype=bool))

    def _rebuild_entropy(self):
        self.entropy_steps = [f["step"] for f in self.frames]
        self.entropy = {name: [self._entropy(name, f["probabilities"]) for f in self.frames] for name in self.tables}

    def set_probabilities(self, step: int, probabilities: dict):
        """What the heatmaps show: ``{table: [rows, options]}`` at `step`."""
        self.probabilities = {k: np.asarray(P, dtype=np.float64) for k, P in probabilities.items()}
        self.probabilities_step = step

    def shown_probabilities(self, name: str):
        """Table `name` as the heatmap shows it: masked options blank (None)."""
        P = self.probabilities[name]
        mask = self.tables.get(name, {}).get("mask")
        if mask is None:
            return P
        return [[float(p) if ok else None for p, ok in zip(row, mrow)] for row, mrow in zip(P, mask)]

    def set_architecture(self, architecture, step) -> bool:
        """Show `architecture`; returns whether it differs from the one shown.
        The decisions that differ from the last drawn one go into `changes`."""
        if self.architecture is not None and architecture.to_data() == self.architecture.to_data():
            return False
        self.architecture, self.architecture_step = architecture, step
        self.changes = changed_decisions(self.drawn_architecture, architecture)
        self.architecture_version += 1
        return True

    def mark_drawn(self, architecture=None) -> list:
        """`architecture` (default: the current one) is on screen: later changes
        are counted from it. Returns its decisions changed since the one drawn before."""
        architecture = self.architecture if architecture is None else architecture
        if architecture is None:
            return []
        drawn = changed_decisions(self.drawn_architecture, architecture)
        self.drawn_architecture = architecture
        if self.architecture is not None and architecture.to_data() == self.architecture.to_data():
            self.changes = drawn
        else:  # an older architecture's drawing: the current one's changes now count from it
            self.changes = changed_decisions(architecture, self.architecture)
        return drawn

    def frame_architecture(self, index: int):
        data = self.frames[index].get("architecture")
        return None if data is None or self.space is None else self.space.from_data(data)

    # -- reading ----------------------------------------------------------------
    def series(self, key: str, window: int | None = None):
        """``(x, y, per_epoch)`` of metric `key`: per step when the steps report
        it, else per epoch; averaged down to `window` points."""
        per_epoch = not self.curves.get(key, ([], []))[0]
        xs, ys = (self.epoch_curves if per_epoch else self.curves).get(key, ([], []))
        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if window:
            x, y = _downsample(x, y, window)
        return x, y, per_epoch

    def entropy_series(self, name: str, window: int | None = None):
        """``(steps, [T, rows] entropies)`` of table `name`, averaged down to `window` points."""
        x = np.asarray(self.entropy_steps, dtype=np.float64)
        R = len(self.tables[name]["rows"])
        values = self.entropy.get(name, [])
        y = np.asarray(values, dtype=np.float64).reshape(len(values), R) if values else np.zeros((0, R))
        x = x[len(x) - len(y):]
        return _downsample(x, y, window) if window else (x, y)

    def frame_index(self, step: int) -> int | None:
        return self._frame_steps.get(step)


# ---------------------------------------------------------------------------
# Status lines
# ---------------------------------------------------------------------------

def _speed(rate: float) -> str:
    return f"{rate:.1f} steps/s" if rate >= 0.95 else f"{1 / rate:.1f} s/step"


def _status_running(run) -> str:
    epochs = run.config.get("epochs", "?")
    epoch = min(run.epoch + 1, epochs) if isinstance(epochs, int) else run.epoch + 1
    parts = [f"step {run.global_step}/{run.total_steps}", f"epoch {epoch}/{epochs}", str(run.device.type)]
    rate = run.steps_per_second
    if rate > 0:
        parts.append(_speed(rate))
        parts.append(f"{_duration(run.seconds_left)} left")
    return " \u00b7 ".join(parts)


def _headline(meta, record) -> str | None:
    key = meta.get("headline")
    value = record.get(key) if key else None
    return f"{key.replace('_', ' ')} {value:.3f}" if isinstance(value, float) else None


def _status_finished(run, result) -> str:
    if result.error:
        return f"diverged at step {run.global_step}: {result.error}"
    if result.interrupted:
        if result.out:
            return f"stopped at step {run.global_step} (checkpoint saved; run the cell again to resume)"
        return (f"stopped at step {run.global_step} (no checkpoint: give search(..., out='a folder') "
                "to be able to resume)")
    parts = [f"finished: step {run.global_step}/{run.total_steps}", f"{run.config.get('epochs', '?')} epochs",
             str(run.device.type)]
    if run.steps_per_second > 0:
        parts.append(_speed(run.steps_per_second))
    headline = _headline(result.history.meta, result.metrics)
    if headline:
        parts.append(headline)
    return " \u00b7 ".join(parts)


def _status_replay(history: History) -> str:
    meta = history.meta
    steps = history.steps[-1]["step"] if history.steps else 0
    parts = [f"replay of a saved {meta.get('strategy', 'search')} run", f"{steps} steps", f"{len(history.epochs)} epochs"]
    if meta.get("device"):
        parts.append(f"trained on {meta['device']}")
    headline = _headline(meta, history.epochs[-1]) if history.epochs else None
    if headline:
        parts.append(headline)
    return " \u00b7 ".join(parts)


# ---------------------------------------------------------------------------
# Architectures: SVG drawn in a worker thread, cached per part
# ---------------------------------------------------------------------------

def _text_part(architecture, part: str) -> str:
    """The part as text, where no SVG can be drawn (no graphviz `dot`, no kaleido)."""
    rows = [f"{k}: {v}" for k, v in architecture.part_decisions(part).items()]
    return ("<pre style='margin:0'>" + html.escape("\n".join(rows)) +
            "\n(install graphviz to see the drawing)</pre>")


class _Painter:
    """Draws architectures off the training thread: `dot` runs in a subprocess
    from a worker thread, so the search keeps stepping while it draws. Results
    are picked up by the caller at its next draw; SVGs are cached per part."""

    CACHE = 128

    def __init__(self):
        self._pool = None
        self._cache: OrderedDict = OrderedDict()
        self.draws = 0  # SVGs actually drawn (cache misses)

    @staticmethod
    def _key(architecture, part):
        # What the part's drawing shows, so a change elsewhere (the other cell) keeps this part's drawing.
        return repr(architecture.diagram(part))

    def _draw(self, architecture, part) -> str:
        try:
            return inline_svg(architecture.svg(part))
        except Exception:  # no dot and no kaleido, or dot failing: fall back to text
            return _text_part(architecture, part)

    def cached(self, architecture):
        return all(self._key(architecture, p) in self._cache for p in architecture.parts)

    def submit(self, architecture):
        """Start drawing every part of `architecture`; returns a future of ``{part: svg}``."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nasedu-cells")
        return self._pool.submit(self.svgs, architecture)

    def svgs(self, architecture) -> dict:
        out = {}
        for part in architecture.parts:
            key = self._key(architecture, part)
            svg = self._cache.get(key)
            if svg is None:
                svg = self._draw(architecture, part)
                self.draws += 1
                self._cache[key] = svg
                while len(self._cache) > self.CACHE:
                    self._cache.popitem(last=False)
            out[part] = svg
        return out


def _cells_html(svgs: dict, architecture, changes: list, step, note: str = "") -> str:
    """Every part side by side, with the changed decisions highlighted and listed."""
    marked = [key for key, _, new in changes if new is not None]
    figures = []
    for part in architecture.parts:
        svg = mark_changed(svgs[part], marked) if marked else svgs[part]
        figures.append(
            f'<figure class="nasedu-cell nasedu-cell-{part}" style="margin:0;display:flex;flex-direction:column;'
            f'align-items:center">{svg}<figcaption style="font-family:sans-serif;font-size:13px">'
            f'{html.escape(architecture.part_titles.get(part, part))}</figcaption></figure>')
    where = f"derived at step {step}" if step is not None else "derived architecture"
    caption = html.escape(where + (f" {note}" if note else ""))
    if changes:
        caption += ("<br><span style='color:#b35900'>changed: "
                    + "<br>".join(html.escape(_describe_change(*c)) for c in changes) + "</span>")
    return ('<div class="nasedu-cells"><div style="display:flex;flex-wrap:wrap;gap:24px;align-items:flex-end">'
            + "".join(figures) + f'</div><div class="nasedu-cells-caption" style="font-family:sans-serif;'
            f'font-size:13px;margin-top:4px">{caption}</div></div>')


# ---------------------------------------------------------------------------
# The callback
# ---------------------------------------------------------------------------

class _hybridmethod:
    """`Dashboard.replay(h)` builds a dashboard; `dashboard.replay(h)` uses that one."""

    def __init__(self, func):
        self.func = func

    def __get__(self, obj, cls):
        def bound(*args, **kwargs):
            return self.func(cls, obj, *args, **kwargs)
        bound.__doc__ = self.func.__doc__
        return bound


class Dashboard(Callback):
    """A live view of a search, attached as a callback.

    Parameters
    ----------
    backend : "auto" (default), "widget", "colab" or "none"
        "auto" picks "colab" on Google Colab, "widget" in a Jupyter kernel
        (JupyterLab, Notebook 7, VS Code) and "none" elsewhere (the state is
        recorded, nothing is drawn).
    max_updates_per_second : float
        Upper bound on pushes to the front end while steps run (the end of
        each epoch and of the search always draw). Colab draws at most once
        a second.
    max_cell_draws_per_second : float
        Upper bound on starting a new drawing of the derived architecture while
        steps run (default 0.5, one every two seconds; the end of each epoch
        and of the search always draw). `dot` runs in a subprocess and
        competes with the search for the CPU, and early in a search the
        architecture can change at every step. It is drawn only when it
        changed; the decisions marked are those changed since the drawing on screen.
    window : int
        Long series are averaged down to this many points before they are sent.
    title : str
        Figure title (default: strategy and data set).

    ``dashboard.state`` holds what the panels show (see `DashboardState`);
    ``dashboard.figure_layout`` says which trace shows what;
    ``dashboard.draws`` counts pushes to the front end.
    """

    def __init__(self, backend: str = "auto", max_updates_per_second: float = 4.0, window: int = 500,
                 title: str | None = None, max_cell_draws_per_second: float = 0.5):
        for name, rate in (("max_updates_per_second", max_updates_per_second),
                           ("max_cell_draws_per_second", max_cell_draws_per_second)):
            if not rate or rate <= 0:
                raise ValueError(f"{name} must be > 0 (math.inf for no limit), got {rate!r}")
        if int(window) < 2:
            raise ValueError(f"window must be at least 2 points, got {window!r}")
        self.window = int(window)
        self.title = title
        self.state = DashboardState()
        self.figure_layout = FigureLayout({}, {})
        self.view = LiveView(None, panes=("cells",), backend=backend,
                             max_updates_per_second=max_updates_per_second, css_class="nasedu-dashboard")
        self.cell_throttle = Throttle(max_cell_draws_per_second)
        self._drawn: dict = {}
        self._painter = _Painter()
        self._pending = None  # (future, architecture version, step, architecture) being drawn
        self._shown_cells = None  # architecture version whose drawing is on screen
        self._frame_architectures: dict = {}
        self._snapshots_seen = 0
        self._layout_version = None

    # -- what it is ----------------------------------------------------------------
    @property
    def backend(self) -> str:
        return self.view.backend

    @property
    def renderer(self):
        return self.view.renderer

    @property
    def draws(self) -> int:
        return self.view.draws

    @property
    def max_updates_per_second(self) -> float:
        return self.view.throttle.rate

    @property
    def max_cell_draws_per_second(self) -> float:
        return self.cell_throttle.rate

    @property
    def min_interval(self) -> float:
        return self.view.min_interval

    @property
    def clock(self):
        return self.view.throttle.clock

    @clock.setter
    def clock(self, clock):  # tests drive both throttles with a fake clock
        self.view.throttle.clock = self.cell_throttle.clock = clock

    @property
    def cell_draws(self) -> int:
        """How many SVGs were drawn (graphviz runs; cached drawings do not count)."""
        return self._painter.draws

    def display(self):
        """Show the dashboard in the notebook (nothing without a front end)."""
        self.view.display()

    def _ipython_display_(self):
        # `Dashboard.replay(h)` as a cell's last line displays itself; do not show it twice.
        if not self.view.displayed_in_this_cell():
            self.display()

    def __repr__(self):
        return (f"Dashboard(backend={self.backend!r}, max_updates_per_second={self.max_updates_per_second:g}, "
                f"max_cell_draws_per_second={self.max_cell_draws_per_second:g})")

    # -- callbacks ----------------------------------------------------------------
    def on_search_start(self, run):
        self._reset(run.history)
        self.state.total_steps = run.total_steps
        self.state.status = _status_running(run)
        if not self.view.displayed:
            self.display()
        self._draw_live(run, wait_cells=False)

    def on_step_end(self, run, record):
        self.state.add_step(record)
        self._take_snapshots(run.history)
        if self.view.ready():
            self._draw_live(run)

    def on_epoch_end(self, run, record):
        self._take_snapshots(run.history)
        self.state.add_epoch(record)
        self._draw_live(run, wait_cells=True)

    def on_search_end(self, run, result):
        self._take_snapshots(run.history)
        self.state.finished, self.state.interrupted = True, bool(result.interrupted)
        if result.error is None:
            self._read_strategy(run)
        self.state.status = _status_finished(run, result)
        self._draw(wait_cells=True)
        self._show_slider()
        self.renderer.finish()

    # -- replay -----------------------------------------------------------------
    @_hybridmethod
    def replay(cls, self, history, **kwargs):
        """Show a saved run: a `History`, a `SearchResult`, a dict or a
        ``history.json`` path. Called on the class, builds a dashboard
        (keyword arguments as for `Dashboard`); on an instance, uses it.
        Displays it and returns it; the slider scrubs through the snapshots."""
        if self is None:
            self = cls(**kwargs)
        elif kwargs:
            raise TypeError("dashboard.replay(history) takes no options; give them to Dashboard(...)")
        history = _as_history(history)
        self._reset(history)
        self.state.finished = True
        frames = self.state.frames
        if frames:
            last = frames[-1]
            self.state.set_probabilities(last["step"], last["probabilities"])
            architecture = self.state.frame_architecture(len(frames) - 1)
            if architecture is not None:
                self.state.set_architecture(architecture, last["step"])
        self.state.status = _status_replay(history)
        if not self.view.displayed:
            self.display()
        self._draw(wait_cells=True)
        self._show_slider()
        self.renderer.finish()
        return self

    # -- scrubbing ----------------------------------------------------------------
    def _frame_label(self, index: int) -> str:
        frame = self.state.frames[index]
        epoch = frame.get("epoch")
        return html.escape(f"step {frame['step']}" + (f" (epoch {epoch + 1})" if epoch is not None else ""))

    def _frame_architecture(self, index: int):
        if index not in self._frame_architectures:
            self._frame_architectures[index] = self.state.frame_architecture(index)
        return self._frame_architectures[index]

    def show_frame(self, index: int):
        """Show recorded snapshot `index`: its heatmaps, its architecture (with
        the decisions changed since the snapshot before marked) and a marker at
        its step on the curves."""
        frames = self.state.frames
        index = max(0, min(int(index), len(frames) - 1))
        frame = frames[index]
        self.state.set_probabilities(frame["step"], frame["probabilities"])
        architecture = self._frame_architecture(index)
        cells = None
        if architecture is not None:
            previous = self._frame_architecture(index - 1) if index > 0 else None
            changes = changed_decisions(previous, architecture)
            cells = _cells_html(self._painter.svgs(architecture), architecture, changes, frame["step"],
                                "(scrubbing: changes since the snapshot before)")
        self._push(curves=False, cells=cells, marker=frame["step"])

    def _show_slider(self):
        self.renderer.show_slider(len(self.state.frames), self.show_frame, self._frame_label)

    # -- internals ----------------------------------------------------------------
    def _reset(self, history: History):
        self.state.reset()
        self.state.configure(history.meta)
        self.state.load_history(history)
        self._snapshots_seen = len(history.snapshots)
        self._frame_architectures = {}
        self._pending = None
        self._shown_cells = None
        self.view.throttle.reset()
        self.cell_throttle.reset()
        self._configure_figure()

    def _configure_figure(self):
        """Build the figure again when the panels or the tables changed shape."""
        state = self.state
        self._layout_version = state.layout_version
        layout = FigureLayout(dict(state.plots or {}), {k: dict(v) for k, v in state.tables.items()})
        meta = state.meta
        title = self.title or " \u00b7 ".join(
            str(s) for s in (meta.get("strategy"), meta.get("space_title"),
                             meta.get("config", {}).get("data") or meta.get("config", {}).get("benchmark")) if s)
        if self.backend == "none":  # nothing is drawn: no figure to build
            self.figure_layout, self._drawn = layout, {}
            return
        if layout.same_shape(self.figure_layout) and self.renderer.figure is not None:
            self.renderer.figure.layout.title.text = title or "search"
            self._drawn = {}
            return
        self.figure_layout = layout
        self.renderer.set_figure(build_figure(layout, title))
        self._drawn = {}

    def _take_snapshots(self, history: History):
        snapshots = history.snapshots
        while self._snapshots_seen < len(snapshots):
            s = snapshots[self._snapshots_seen]
            self.state.add_frame(s["step"], s.get("epoch"), s["distributions"], s.get("architecture"), s.get("layout"))
            self._snapshots_seen += 1

    def _read_strategy(self, run):
        """The distributions and the architecture now: from the snapshot of this
        step if there is one (no second derivation), else from the strategy."""
        state = self.state
        frames = state.frames
        if frames and frames[-1]["step"] == run.global_step and frames[-1].get("architecture") is not None:
            state.set_probabilities(run.global_step, frames[-1]["probabilities"])
            architecture = self._frame_architecture(len(frames) - 1)
        else:
            tables = run.strategy.distributions()
            state.set_probabilities(run.global_step, {k: t.probabilities for k, t in tables.items()})
            architecture = run.strategy.architecture()
        state.set_architecture(architecture, run.global_step)

    def _draw_live(self, run, wait_cells=False):
        self._read_strategy(run)
        self.state.status = _status_running(run)
        self._draw(wait_cells=wait_cells)

    def _draw(self, wait_cells=False):
        """Push the state; the architecture's drawing only when a new one is ready."""
        if self.state.layout_version != self._layout_version:
            self._configure_figure()
        if self.backend == "none":
            cells = None
            self.state.mark_drawn()
        else:
            cells = self._cells_update(wait_cells)
        self._push(cells=cells)

    def _push(self, curves=True, cells=None, marker=None):
        state, layout, window, drawn = self.state, self.figure_layout, self.window, self._drawn
        self.view.draw(lambda fig: apply_state(fig, layout, state, window, drawn, marker, curves),
                       status=state.status, panes=None if cells is None else {"cells": cells})

    def _cells_update(self, wait: bool):
        """HTML of the architecture if it changed since it was last drawn and its
        SVGs are ready (or `wait`), else None. Starts drawing a changed
        architecture in the worker thread, at most `max_cell_draws_per_second`."""
        state = self.state
        if state.architecture is None or self._shown_cells == state.architecture_version:
            return None
        pending = self._pending
        if pending is None or pending[1] != state.architecture_version:
            cached = self._painter.cached(state.architecture)
            if cached or wait or self.cell_throttle.ready():
                future = None if cached else self._painter.submit(state.architecture)
                if future is not None:
                    self.cell_throttle.mark()
                pending = self._pending = (future, state.architecture_version, state.architecture_step,
                                           state.architecture)
        if pending is None:
            return None  # the throttle holds this architecture back; a later draw starts it
        future, version, step, architecture = pending
        if future is not None and not future.done() and not wait:
            return None
        # An older architecture's drawing may finish first: it is shown as what it is.
        svgs = future.result() if future is not None else self._painter.svgs(architecture)
        self._pending, self._shown_cells = None, version
        changes = state.mark_drawn(architecture)
        return _cells_html(svgs, architecture, changes, step)


def _as_history(history) -> History:
    if isinstance(history, History):
        return history
    if hasattr(history, "history") and isinstance(history.history, History):  # a SearchResult
        return history.history
    if isinstance(history, dict):
        return History.from_dict(history)
    return History.load(history)

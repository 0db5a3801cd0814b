"""The live dashboard: watch a search think while it trains.

    >>> dashboard = nasedu.viz.Dashboard()
    >>> result = nasedu.search("darts", callbacks=[dashboard])

`Dashboard` is a search callback (see `nasedu.search.Callback`). While the
search runs it shows

- the loss and accuracy on the split that trains the weights `w` and on the
  split that trains the architecture, and on validation data every epoch;
- the strategy's per-edge operation probabilities for the normal and the
  reduction cell (softmax(alpha) for DARTS, theta for SNAS and ASNG, a
  controller's marginals for ENAS: whatever `strategy.probabilities()` gives);
- the per-edge entropy of those probabilities over time (1: every operation
  equally likely, 0: the edge has decided), where convergence and collapse show;
- the cells derived from the probabilities by the DARTS rule, redrawn when
  they change, with the edges that changed marked;
- a status line (step, epoch, device, speed, time left; "stopped" after an
  interrupt).

After the search a slider scrubs through the recorded snapshots, and
`Dashboard.replay(history)` shows a saved run without training.

How it stays cheap: the callbacks only append numbers to a `DashboardState`
(plain Python and numpy, no drawing); a renderer pushes that state to the
front end at most `max_updates_per_second` times (one batched message per
push) and always at the end of each epoch and of the search. Cells are drawn
by graphviz in a worker thread, only when the derived genotype changes.

Backends: "widget" (plotly `FigureWidget` inside ipywidgets: JupyterLab,
Notebook 7, VS Code), "colab" (static plotly figures and SVG redrawn through
display handles, at most once a second: Colab's FigureWidget support is
unreliable), "none" (no front end: the state is recorded, nothing is drawn).
"auto" picks one from the environment.
"""
from __future__ import annotations

import html
import json
import math
import re
import sys
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from copy import deepcopy

import numpy as np
from plotly.basedatatypes import Undefined  # "leave this trace as it is" in a plotly_update

from ..genotypes import PRIMITIVES, Genotype, edge_endpoints, genotype_from_json
from ..search import Callback, History

__all__ = ["Dashboard", "DashboardState", "edge_labels", "choose_backend", "BACKENDS"]

BACKENDS = ("auto", "widget", "colab", "none")
COLAB_MAX_UPDATES_PER_SECOND = 1.0
KINDS = ("normal", "reduce")
KIND_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}

# Curves: (state key, legend name, colour, split). Loss and accuracy share colours per split.
CURVES = (
    ("train_loss", "w split (train)", "#4e79a7"),
    ("arch_loss", "architecture split", "#f28e2b"),
    ("val_loss", "validation", "#59a14f"),
    ("train_acc", "w split (train)", "#4e79a7"),
    ("arch_acc", "architecture split", "#f28e2b"),
    ("val_acc", "validation", "#59a14f"),
)
EPOCH_CURVES = ("val_loss", "val_acc")
# Trace order in the figure: the six curves, the two heatmaps, then one entropy line per edge and cell.
HEATMAP_TRACE = {"normal": 6, "reduce": 7}
FIRST_ENTROPY_TRACE = 8
# Entropy lines are coloured by the node the edge enters (Tableau 10).
NODE_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")
CHANGED_GLOW = "#ff9f1c"


# ---------------------------------------------------------------------------
# Names and small helpers
# ---------------------------------------------------------------------------

def _state_name(j: int) -> str:
    """Input j of a cell as the DARTS paper names it: c_{k-2}, c_{k-1}, then node j-2."""
    return ("c_{k-2}", "c_{k-1}")[j] if j < 2 else str(j - 2)


def edge_labels(steps: int) -> list[str]:
    """Readable labels of a cell's edges in `edge_endpoints` order, e.g. ``c_{k-1} -> 0``."""
    return [f"{_state_name(j)} -> {i - 2}" for j, i in edge_endpoints(steps)]


def _in_colab() -> bool:
    return "google.colab" in sys.modules


def _shell():
    """The running IPython shell, or None (plain Python)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # an IPython too broken to ask: treat as no front end
        return None


def _has_front_end() -> bool:
    """True in a Jupyter kernel (JupyterLab, Notebook, VS Code): a shell that talks ZMQ."""
    shell = _shell()
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell" for c in type(shell).__mro__)


def choose_backend(backend: str = "auto") -> str:
    """Resolve `backend`: "auto" gives "colab" on Colab, "widget" in a Jupyter
    kernel with a front end, else "none"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    if _in_colab():
        return "colab"
    return "widget" if _has_front_end() else "none"


def _duration(seconds) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _normalised_entropy(P: np.ndarray) -> np.ndarray:
    """Entropy of each row of `P` divided by log(#ops): 1 = uniform, 0 = one-hot."""
    n_ops = P.shape[1]
    if n_ops < 2:
        return np.zeros(P.shape[0])
    Q = np.clip(P, 1e-12, 1.0)
    # Clipped: float32 rows need not sum to exactly 1.
    return np.clip(-(P * np.log(Q)).sum(axis=1) / math.log(n_ops), 0.0, 1.0)


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


def derive_cell_numpy(P: np.ndarray, steps: int, primitives) -> list[tuple[str, int]]:
    """`nasedu.genotypes.derive_cell` (the DARTS rule) in numpy.

    The same rule and tie-breaking; numpy because a dashboard derives a cell
    several times a second, and a small torch op on a busy CPU can wait
    milliseconds for torch's thread pool. tests/test_dashboard.py checks it
    against `derive_cell`."""
    candidates = [k for k, name in enumerate(primitives) if name != "none"]
    gene, start = [], 0
    for i in range(steps):
        rows = P[start:start + i + 2][:, candidates]
        strength = rows.max(axis=1)
        # Stable sort: equal strengths keep the lower input first; argmax takes the lower op on ties.
        for j in np.argsort(-strength, kind="stable")[:2]:
            gene.append((primitives[candidates[int(np.argmax(rows[j]))]], int(j)))
        start += i + 2
    return gene


def _cell_edges(genotype: Genotype, kind: str) -> dict:
    """{(input j, node index): op} of the `kind` cell."""
    return {(j, k // 2 + 2): op for k, (op, j) in enumerate(getattr(genotype, kind))}


def cell_changes(old: Genotype | None, new: Genotype, kind: str) -> list[tuple[str, str | None, str | None]]:
    """Edges of the `kind` cell that differ between `old` and `new`:
    ``(edge label, old op or None, new op or None)``, in edge order."""
    if old is None:
        return []
    before, after = _cell_edges(old, kind), _cell_edges(new, kind)
    changes = []
    for key in sorted(set(before) | set(after), key=lambda e: (e[1], e[0])):
        if before.get(key) != after.get(key):
            j, i = key
            changes.append((f"{_state_name(j)} -> {i - 2}", before.get(key), after.get(key)))
    return changes


def _describe_change(label, old, new) -> str:
    if old is None:
        return f"{label}: added ({new})"
    if new is None:
        return f"{label}: dropped ({old})"
    return f"{label}: {old} \u2192 {new}"


# ---------------------------------------------------------------------------
# What the panels show, as plain data
# ---------------------------------------------------------------------------

class DashboardState:
    """Everything the dashboard shows, kept as plain Python and numpy data.

    The callbacks update it; renderers only read it. Tests inspect it directly.

    - ``curves[key] = (steps, values)`` for train_loss, arch_loss, train_acc,
      arch_acc (per step) and val_loss, val_acc (per epoch);
    - ``frames``: the recorded probability snapshots, ``{"step", "epoch",
      "probabilities": {"normal": [E, O] array, "reduce": ...}}`` sorted by step;
    - ``entropy_steps`` and ``entropy[kind]`` (``[len(entropy_steps), E]``);
    - ``probabilities``/``probabilities_step``: what the heatmaps show now;
    - ``genotype``, ``genotype_step``, ``changes[kind]`` (edges changed since
      the previous drawn genotype) and ``genotype_version`` (+1 per change);
    - ``status``: the status line.
    """

    CURVE_KEYS = ("train_loss", "arch_loss", "train_acc", "arch_acc", "val_loss", "val_acc")

    def __init__(self):
        self.reset()

    def reset(self):
        self.meta: dict = {}
        self.primitives: list[str] = []
        self.steps = 0
        self.multiplier = 0
        self.edge_labels: list[str] = []
        self.total_steps = None
        self.epochs = None
        self.curves = {k: ([], []) for k in self.CURVE_KEYS}
        self.frames: list[dict] = []
        self._frame_steps: dict[int, int] = {}
        self.entropy_steps: list[int] = []
        self.entropy = {k: [] for k in KINDS}
        self.probabilities = None
        self.probabilities_step = None
        self.genotype = None
        self.genotype_step = None
        self.changes = {k: [] for k in KINDS}
        self.genotype_version = 0
        self.drawn_genotype = None
        self.curves_version = 0  # +1 per change, so renderers resend only what changed
        self.frames_version = 0
        self.status = "waiting for the search to start"
        self.finished = False
        self.interrupted = False

    # -- set-up ----------------------------------------------------------------
    def configure(self, meta: dict):
        """Read the cell shape and operation names from a history's `meta`."""
        config = meta.get("config", {})
        self.meta = dict(meta)
        self.primitives = list(meta.get("primitives") or config.get("primitives") or PRIMITIVES)
        self.steps = int(meta.get("steps") or config.get("steps") or 4)
        self.multiplier = int(meta.get("multiplier") or config.get("multiplier") or self.steps)
        self.edge_labels = edge_labels(self.steps)
        self.epochs = config.get("epochs")

    def load_history(self, history: History):
        """Take in everything `history` already holds (a resumed or a saved run)."""
        for record in history.steps:
            self.add_step(record)
        for snapshot in history.snapshots:
            self.add_frame(snapshot["step"], snapshot.get("epoch"), snapshot["probabilities"])
        for record in history.epochs:
            self.add_epoch(record)

    # -- updates (called by the callbacks: cheap) -----------------------------
    def add_step(self, record: dict):
        self.curves_version += 1
        step = record["step"]
        for key in ("train_loss", "arch_loss", "train_acc", "arch_acc"):
            value = record.get(key)
            if value is not None:
                xs, ys = self.curves[key]
                xs.append(step)
                ys.append(float(value))

    def add_epoch(self, record: dict):
        self.curves_version += 1
        step = record["step"]
        for key in EPOCH_CURVES:
            value = record.get(key)
            if value is not None:
                xs, ys = self.curves[key]
                xs.append(step)
                ys.append(float(value))
        if record.get("probabilities"):
            self.add_frame(step, record.get("epoch"), record["probabilities"])

    def add_frame(self, step: int, epoch, probabilities: dict):
        """Record a snapshot of the per-edge probabilities (once per step)."""
        if step in self._frame_steps:
            return
        self.frames_version += 1
        probs = {k: np.asarray(probabilities[k], dtype=np.float64) for k in KINDS}
        frame = {"step": step, "epoch": epoch, "probabilities": probs}
        if self.frames and step < self.frames[-1]["step"]:  # out of order: keep sorted
            self.frames.append(frame)
            self.frames.sort(key=lambda f: f["step"])
            self._frame_steps = {f["step"]: i for i, f in enumerate(self.frames)}
            self._rebuild_entropy()
            return
        self._frame_steps[step] = len(self.frames)
        self.frames.append(frame)
        self.entropy_steps.append(step)
        for k in KINDS:
            self.entropy[k].append(_normalised_entropy(probs[k]))

    def _rebuild_entropy(self):
        self.entropy_steps = [f["step"] for f in self.frames]
        self.entropy = {k: [_normalised_entropy(f["probabilities"][k]) for f in self.frames] for k in KINDS}

    def set_probabilities(self, step: int, probabilities: dict):
        """What the heatmaps show: ``{"normal": [E, O], "reduce": [E, O]}`` at `step`."""
        self.probabilities = {k: np.asarray(probabilities[k], dtype=np.float64) for k in KINDS}
        self.probabilities_step = step

    def derive(self, probabilities: dict | None = None) -> Genotype:
        """The genotype the DARTS rule derives from `probabilities` (default: the current ones)."""
        P = self.probabilities if probabilities is None else probabilities
        concat = list(range(2 + self.steps - self.multiplier, self.steps + 2))
        normal, reduce = (derive_cell_numpy(np.asarray(P[k], dtype=np.float64), self.steps, self.primitives)
                          for k in KINDS)
        return Genotype(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=list(concat))

    def set_genotype(self, genotype: Genotype, step) -> bool:
        """Show `genotype`; returns whether it differs from the one shown. The
        edges that differ from the last drawn genotype go into `changes`."""
        genotype = Genotype(*genotype)
        if self.genotype is not None and _same_genotype(genotype, self.genotype):
            return False
        self.genotype, self.genotype_step = genotype, step
        self.changes = {k: cell_changes(self.drawn_genotype, genotype, k) for k in KINDS}
        self.genotype_version += 1
        return True

    def mark_drawn(self, genotype: Genotype | None = None) -> dict:
        """`genotype` (default: the current one) is on screen: later changes
        are counted from it. Returns its edges changed since the cells drawn
        before, ``{kind: [(edge, old op, new op), ...]}``."""
        genotype = self.genotype if genotype is None else genotype
        if genotype is None:
            return {k: [] for k in KINDS}
        drawn = {k: cell_changes(self.drawn_genotype, genotype, k) for k in KINDS}
        self.drawn_genotype = genotype
        if _same_genotype(genotype, self.genotype):
            self.changes = drawn
        else:  # an older genotype's drawing: the current one's changes now count from it
            self.changes = {k: cell_changes(genotype, self.genotype, k) for k in KINDS}
        return drawn

    # -- reading ----------------------------------------------------------------
    def series(self, key: str, window: int | None = None):
        """``(x, y)`` float arrays of curve `key`, averaged down to `window` points."""
        xs, ys = self.curves[key]
        x, y = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        return _downsample(x, y, window) if window else (x, y)

    def entropy_series(self, kind: str, window: int | None = None):
        """``(steps, [T, E] entropies)`` of the `kind` cell, averaged down to `window` points."""
        x = np.asarray(self.entropy_steps, dtype=np.float64)
        E = len(self.edge_labels)
        y = np.asarray(self.entropy[kind], dtype=np.float64).reshape(len(x), E) if len(x) else np.zeros((0, E))
        return _downsample(x, y, window) if window else (x, y)

    def frame_index(self, step: int) -> int | None:
        return self._frame_steps.get(step)


def _same_genotype(a: Genotype, b: Genotype) -> bool:
    return all(list(map(tuple, getattr(a, f))) == list(map(tuple, getattr(b, f))) if f in KINDS
               else list(getattr(a, f)) == list(getattr(b, f)) for f in Genotype._fields)


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


def _status_finished(run, result) -> str:
    if result.interrupted:
        if result.out:
            return f"stopped at step {run.global_step} (checkpoint saved; run the cell again to resume)"
        return (f"stopped at step {run.global_step} (no checkpoint: give search(..., out='a folder') "
                "to be able to resume)")
    parts = [f"finished: step {run.global_step}/{run.total_steps}", f"{run.config.get('epochs', '?')} epochs",
             str(run.device.type)]
    if run.steps_per_second > 0:
        parts.append(_speed(run.steps_per_second))
    if result.val_acc is not None:
        parts.append(f"val acc {result.val_acc:.3f}")
    return " \u00b7 ".join(parts)


def _status_replay(history: History) -> str:
    meta = history.meta
    steps = history.steps[-1]["step"] if history.steps else 0
    parts = [f"replay of a saved {meta.get('strategy', 'search')} run", f"{steps} steps", f"{len(history.epochs)} epochs"]
    if meta.get("device"):
        parts.append(f"trained on {meta['device']}")
    if history.epochs and history.epochs[-1].get("val_acc") is not None:
        parts.append(f"val acc {history.epochs[-1]['val_acc']:.3f}")
    return " \u00b7 ".join(parts)


# ---------------------------------------------------------------------------
# Cells: SVG drawn in a worker thread, cached per cell
# ---------------------------------------------------------------------------

def _inline_svg(svg: str) -> str:
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


_GROUP_START = re.compile(r'<g id="(?:edge|node)\d+" class="[^"]*">')


def mark_changed_edges(svg: str, changed: set) -> str:
    """Highlight the edges of a `cell_svg` drawing whose ``(tail, head, op)``
    is in `changed` (names as drawn: ``c_{k-1}``, ``0``): thicker pen, a glow,
    bold label."""
    if not changed:
        return svg
    starts = [m.start() for m in _GROUP_START.finditer(svg)] + [len(svg)]
    pieces, last = [svg[:starts[0]]], starts[0]
    for a, b in zip(starts, starts[1:]):
        part = svg[a:b]
        title = re.search(r'xlink:title="([^"]*)"', part)
        if part.startswith('<g id="edge') and title:
            op, _, ends = html.unescape(title.group(1)).partition(": ")
            tail, _, head = ends.partition(" -> ")
            if (tail, head, op) in changed:
                part = part.replace('class="edge', f'style="filter: drop-shadow(0 0 3px {CHANGED_GLOW})" class="edge', 1)
                part = re.sub(r'stroke-width="[\d.]+"', 'stroke-width="4"', part)
                part = part.replace("<text ", '<text font-weight="bold" ')
        pieces.append(part)
        last = b
    return "".join(pieces) + svg[last:]


def _text_cell(genotype: Genotype, kind: str) -> str:
    """The cell as text, where no SVG can be drawn (no graphviz `dot`, no kaleido)."""
    rows = [f"{_state_name(j)} -> {k // 2}: {op}" for k, (op, j) in enumerate(getattr(genotype, kind))]
    return ("<pre style='margin:0'>" + html.escape("\n".join(rows)) +
            "\n(install graphviz to see the drawing)</pre>")


class _CellPainter:
    """Draws cells off the training thread: `dot` runs in a subprocess from a
    worker thread, so the search keeps stepping while it draws. Results are
    picked up by the caller at its next draw; SVGs are cached per cell."""

    CACHE = 128

    def __init__(self):
        self._pool = None
        self._cache: OrderedDict = OrderedDict()
        self.draws = 0  # SVGs actually drawn (cache misses)

    @staticmethod
    def _key(genotype, kind):
        return kind, tuple(map(tuple, getattr(genotype, kind))), tuple(getattr(genotype, f"{kind}_concat"))

    def _draw(self, genotype, kind) -> str:
        from .cells import cell_svg

        try:
            return _inline_svg(cell_svg(genotype, kind))
        except Exception:  # no dot and no kaleido, or dot failing: fall back to text
            return _text_cell(genotype, kind)

    def cached(self, genotype, kind):
        return self._cache.get(self._key(genotype, kind))

    def submit(self, genotype):
        """Start drawing both cells of `genotype`; returns a future of ``{kind: svg}``."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nasedu-cells")
        return self._pool.submit(self.svgs, genotype)

    def svgs(self, genotype) -> dict:
        out = {}
        for kind in KINDS:
            key = self._key(genotype, kind)
            svg = self._cache.get(key)
            if svg is None:
                svg = self._draw(genotype, kind)
                self.draws += 1
                self._cache[key] = svg
                while len(self._cache) > self.CACHE:
                    self._cache.popitem(last=False)
            out[kind] = svg
        return out


def _cells_html(svgs: dict, genotype: Genotype, changes: dict, step, note: str = "") -> str:
    """Both cells side by side, with the changed edges highlighted and listed."""
    figures = []
    for kind in KINDS:
        changed = {(label.split(" -> ")[0], label.split(" -> ")[1], new) for label, _, new in changes.get(kind, [])
                   if new is not None}
        svg = mark_changed_edges(svgs[kind], changed) if changed else svgs[kind]
        figures.append(
            f'<figure class="nasedu-cell nasedu-cell-{kind}" style="margin:0;display:flex;flex-direction:column;'
            f'align-items:center">{svg}<figcaption style="font-family:sans-serif;font-size:13px">'
            f'{KIND_TITLES[kind]}</figcaption></figure>')
    lines = [f"{KIND_TITLES[k]}: " + "; ".join(_describe_change(*c) for c in changes[k]) for k in KINDS if changes.get(k)]
    where = f"derived at step {step}" if step is not None else "derived cells"
    caption = html.escape(where + (f" {note}" if note else ""))
    if lines:
        caption += "<br><span style='color:#b35900'>changed: " + "<br>".join(html.escape(s) for s in lines) + "</span>"
    return ('<div class="nasedu-cells"><div style="display:flex;flex-wrap:wrap;gap:24px;align-items:flex-end">'
            + "".join(figures) + f'</div><div class="nasedu-cells-caption" style="font-family:sans-serif;'
            f'font-size:13px;margin-top:4px">{caption}</div></div>')


def _status_html(text: str) -> str:
    return (f'<div class="nasedu-status" style="font-family:monospace;font-size:13px;padding:2px 0">'
            f"{html.escape(text)}</div>")


# ---------------------------------------------------------------------------
# The figure: curves, heatmaps and entropy in one plotly figure
# ---------------------------------------------------------------------------
# One figure rather than several: each FigureWidget ships plotly.js (~5 MB) to
# the page and into the saved notebook.

# Rows in pixels rather than fractions of the figure: the rotated operation names under the
# heatmaps and the titles above each row keep their room whatever the number of edges.
CURVES_ROW_PX, ENTROPY_ROW_PX = 200, 180
HEATMAP_PX_PER_EDGE, HEATMAP_MIN_PX = 20, 140
GAPS_PX = (70, 110)  # under the curves (their ticks, the heatmap titles); under the heatmaps (op names, titles)
MARGIN = dict(l=70, r=20, t=70, b=50)
# An entropy axis spans at least [ENTROPY_AXIS_FLOOR, 1]: early in a search every edge sits just
# below 1, where a fixed [0, 1] axis would draw flat lines and a bare autorange would zoom into
# rounding noise (every tick labelled "1").
ENTROPY_AXIS_FLOOR = 0.98
ENTROPY_AXIS_TOP = 1.002  # a little headroom: lines at 1 stay visible, the top tick clear of the title


def _base_figure(title: str | None, n_edges: int = 14):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=3, cols=2, horizontal_spacing=0.08,
        subplot_titles=("loss", "accuracy", "normal cell: p(operation | edge)", "reduction cell: p(operation | edge)",
                        "normal cell: entropy per edge", "reduction cell: entropy per edge"),
    )
    for n, (key, name, colour) in enumerate(CURVES):
        epochly = key in EPOCH_CURVES
        fig.add_trace(go.Scatter(
            x=[], y=[], name=name, legendgroup=name, showlegend=n < 3, mode="lines+markers" if epochly else "lines",
            line=dict(color=colour, width=2.5 if epochly else 1.5), marker=dict(size=6),
            hovertemplate=f"{name}<br>step %{{x:.0f}}: %{{y:.3f}}<extra></extra>",
        ), row=1, col=1 if n < 3 else 2)
    for col, kind in enumerate(KINDS, start=1):
        fig.add_trace(go.Heatmap(
            z=[], x=[], y=[], coloraxis="coloraxis", xgap=1, ygap=1, name=KIND_TITLES[kind],
            hovertemplate=f"{KIND_TITLES[kind]}<br>edge %{{y}}<br>%{{x}}: %{{z:.3f}}<extra></extra>",
        ), row=2, col=col)
    fig.update_layout(
        title=dict(text=title or "search", x=0.01), margin=MARGIN,
        template="plotly_white", legend=dict(orientation="h", x=1.0, xanchor="right", yanchor="bottom"),
        # The colour scale runs from 0 to just above the largest probability shown (set at each
        # draw): probabilities near uniform (1/8) would all look alike on a [0, 1] scale.
        coloraxis=dict(cmin=0.0, cmax=1.0, colorscale="Viridis",
                       colorbar=dict(title=dict(text="p"), thickness=12, yanchor="middle")),
        hovermode="closest", uirevision="nasedu",
    )
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    for col in (1, 2):
        fig.update_yaxes(autorange=True, autorangeoptions=dict(include=[ENTROPY_AXIS_FLOOR, ENTROPY_AXIS_TOP]),
                         tickformat=".3~f", row=3, col=col)
        fig.update_yaxes(autorange="reversed", type="category", row=2, col=col)
        fig.update_xaxes(tickangle=-35, type="category", row=2, col=col)
        fig.update_xaxes(title_text="step", row=3, col=col)
    fig.update_yaxes(showticklabels=False, row=2, col=2)  # same edges as the left heatmap, same rows
    # On the left only: between the columns it would cover the left plot.
    fig.update_yaxes(title=dict(text="1 = undecided", font=dict(size=11)), row=3, col=1)
    _layout_rows(fig, n_edges)
    return fig


def _layout_rows(fig, n_edges: int):
    """Height of the figure, each row's place and its titles, in pixels: the
    heatmaps grow with the number of edges, the other rows and the gaps do not."""
    rows = (CURVES_ROW_PX, max(HEATMAP_MIN_PX, HEATMAP_PX_PER_EDGE * n_edges), ENTROPY_ROW_PX)
    plot = sum(rows) + sum(GAPS_PX)
    fig.layout.height = plot + MARGIN["t"] + MARGIN["b"]
    fig.layout.legend.y = 1 + 30 / plot  # above the row titles, beside the figure's title
    top = plot
    for row, height in enumerate(rows):
        domain = [(top - height) / plot, top / plot]
        for col in (1, 2):
            n = 2 * row + col  # plotly numbers the axes row by row: y, y2, ..., y6
            fig.layout["yaxis" if n == 1 else f"yaxis{n}"].domain = domain
            fig.layout.annotations[n - 1].y = domain[1]  # the subplot's title sits on its top edge
        if row == 1:
            fig.layout.coloraxis.colorbar.update(y=sum(domain) / 2, len=domain[1] - domain[0])
        top -= height + (GAPS_PX[row] if row < len(GAPS_PX) else 0)


def _colour_top(probabilities: dict) -> float:
    """Top of the heatmaps' colour scale: the largest probability shown, rounded up to 0.05."""
    largest = max(float(np.max(P)) for P in probabilities.values() if np.size(P))
    return min(1.0, max(0.05, math.ceil(largest * 20 - 1e-9) / 20))


def _entropy_traces(state: DashboardState):
    import plotly.graph_objects as go

    traces = []
    for col, kind in enumerate(KINDS, start=1):
        xaxis, yaxis = f"x{4 + col}", f"y{4 + col}"  # row 3 holds subplots 5 and 6
        for e, ((_, i), label) in enumerate(zip(edge_endpoints(state.steps), state.edge_labels)):
            traces.append(go.Scatter(
                x=[], y=[], mode="lines", name=label, showlegend=False, xaxis=xaxis, yaxis=yaxis,
                line=dict(color=NODE_COLOURS[(i - 2) % len(NODE_COLOURS)], width=1.2),
                hovertemplate=f"{KIND_TITLES[kind]}<br>{label}<br>step %{{x:.0f}}: %{{y:.2f}}<extra></extra>",
            ))
    return traces


def _marker_shapes(step) -> list:
    """A vertical line at `step` on the curves and entropy plots (while scrubbing)."""
    if step is None:
        return []
    line = dict(color="#555555", width=1, dash="dot")
    return [dict(type="line", xref=f"x{n}" if n > 1 else "x", yref=f"y{n} domain" if n > 1 else "y domain",
                 x0=step, x1=step, y0=0, y1=1, line=line) for n in (1, 2, 5, 6)]


def _apply_state(fig, state: DashboardState, window: int, drawn: dict, marker=None, curves: bool = True):
    """Write what changed in `state` since `drawn` (the versions last written,
    updated here) into `fig` as ONE `plotly_update`: a FigureWidget sends it
    to the front end as a single message, as `fig.batch_update()` would, but
    without re-validating every array (plotly's validation, not the message,
    is what costs time here)."""
    props: dict[int, dict] = {}
    if curves and drawn.get("curves") != state.curves_version:
        for n, (key, _, _) in enumerate(CURVES):
            x, y = state.series(key, window)
            props[n] = {"x": x, "y": y}
        drawn["curves"] = state.curves_version
    if curves and drawn.get("frames") != state.frames_version:
        E = len(state.edge_labels)
        for n, kind in enumerate(KINDS):
            x, Y = state.entropy_series(kind, window)
            for e in range(E):
                props[FIRST_ENTROPY_TRACE + n * E + e] = {"x": x, "y": np.ascontiguousarray(Y[:, e])}
        drawn["frames"] = state.frames_version
    relayout = {}
    if state.probabilities is not None and drawn.get("probabilities") is not state.probabilities:
        for kind in KINDS:
            props[HEATMAP_TRACE[kind]] = {"z": state.probabilities[kind]}
        relayout["coloraxis.cmax"] = _colour_top(state.probabilities)
        drawn["probabilities"] = state.probabilities
    if props:
        indexes = sorted(props)
        keys = sorted({k for p in props.values() for k in p})
        restyle = {k: [props[i].get(k, Undefined) for i in indexes] for k in keys}
        fig.plotly_update(restyle_data=restyle, relayout_data=relayout or None, trace_indexes=indexes)
    if drawn.get("marker") != marker:  # only while scrubbing: through the layout object, validated
        fig.layout.shapes = _marker_shapes(marker)
        drawn["marker"] = marker


def _configure_figure(fig, state: DashboardState, title: str | None):
    """Labels and per-edge traces, which depend on the searched cell."""
    for kind in KINDS:
        trace = fig.data[HEATMAP_TRACE[kind]]
        trace.update(x=list(state.primitives), y=list(state.edge_labels), z=None)
    if len(fig.data) != FIRST_ENTROPY_TRACE + 2 * len(state.edge_labels):
        fig.data = fig.data[:FIRST_ENTROPY_TRACE]
        fig.add_traces(_entropy_traces(state))
    meta = state.meta
    text = title or " \u00b7 ".join(str(s) for s in (meta.get("strategy"), meta.get("config", {}).get("data")) if s)
    fig.layout.title.text = text or "search"
    _layout_rows(fig, len(state.edge_labels))


def _sync_saved_state(fig):
    """Make the widget's synced state hold the current figure.

    A FigureWidget sends later edits as restyle messages, so the state a
    notebook saves (and an HTML export shows) would keep the construction-time
    figure; assigning these two traits syncs the final one."""
    fig._widget_data = deepcopy(fig._data)
    fig._widget_layout = deepcopy(fig._layout_obj._props)


# ---------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------

class _NullRenderer:
    """No front end: nothing is created or drawn."""

    min_interval_floor = 0.0

    def show(self):
        return False

    def configure(self, state):
        pass

    def draw(self, state, *, curves=True, cells=None, marker=None):
        pass

    def show_slider(self, dashboard):
        pass

    def finish(self):
        pass


class _WidgetRenderer:
    """plotly FigureWidget + ipywidgets: live updates as small messages."""

    min_interval_floor = 0.0

    def __init__(self, title, window):
        import ipywidgets as widgets
        import plotly.graph_objects as go

        self.title, self.window = title, window
        self.status = widgets.HTML(_status_html("waiting for the search to start"))
        self.figure = go.FigureWidget(_base_figure(title))
        self.cells = widgets.HTML("", layout=widgets.Layout(min_height="40px"))
        self.slider = widgets.IntSlider(value=0, min=0, max=0, description="snapshot", continuous_update=True, readout=False,
                                        layout=widgets.Layout(width="60%"))
        self.slider_label = widgets.HTML("")
        self.slider_box = widgets.HBox([self.slider, self.slider_label], layout=widgets.Layout(display="none"))
        self.box = widgets.VBox([self.status, self.slider_box, self.figure, self.cells])
        self.box.add_class("nasedu-dashboard")
        self._observer = None
        self._drawn = {}

    def show(self):
        from IPython.display import display

        display(self.box)
        return True

    def configure(self, state):
        _configure_figure(self.figure, state, self.title)
        self._drawn = {}
        self.slider_box.layout.display = "none"

    def draw(self, state, *, curves=True, cells=None, marker=None):
        _apply_state(self.figure, state, self.window, self._drawn, marker, curves)
        self.status.value = _status_html(state.status)
        if cells is not None:
            self.cells.value = cells

    def show_slider(self, dashboard):
        frames = dashboard.state.frames
        if not frames:
            return
        if self._observer is not None:
            self.slider.unobserve(self._observer, names="value")
        self.slider.max = len(frames) - 1
        self.slider.value = len(frames) - 1
        self.slider_label.value = dashboard._frame_label(len(frames) - 1)

        def on_change(change):
            dashboard.show_frame(change["new"])
            self.slider_label.value = dashboard._frame_label(change["new"])

        self._observer = on_change
        self.slider.observe(on_change, names="value")
        self.slider_box.layout.display = "flex"

    def finish(self):
        _sync_saved_state(self.figure)


class _StaticRenderer:
    """Colab: a static plotly figure, the cells and the status line redrawn
    through display handles (no custom widget needed)."""

    min_interval_floor = 1.0 / COLAB_MAX_UPDATES_PER_SECOND

    def __init__(self, title, window, display=None):
        import plotly.graph_objects as go

        self.title, self.window = title, window
        self.figure = go.Figure(_base_figure(title))
        self._display = display
        self.handles = None
        self.slider = None
        self._drawn = {}
        self._cells = ""
        self._status = "waiting for the search to start"

    def _display_fn(self):
        if self._display is not None:
            return self._display
        from IPython.display import display

        return display

    def show(self):
        from IPython.display import HTML

        display = self._display_fn()
        self.handles = {
            "status": display(HTML(_status_html(self._status)), display_id=True),
            "figure": display(self.figure, display_id=True),
            "cells": display(HTML(self._cells or "<div></div>"), display_id=True),
        }
        return True

    def configure(self, state):
        _configure_figure(self.figure, state, self.title)
        self._drawn = {}

    def draw(self, state, *, curves=True, cells=None, marker=None):
        from IPython.display import HTML

        _apply_state(self.figure, state, self.window, self._drawn, marker, curves)
        self._status = state.status
        if cells is not None:
            self._cells = cells
        if self.handles:
            self.handles["status"].update(HTML(_status_html(self._status)))
            self.handles["figure"].update(self.figure)
            if cells is not None:
                self.handles["cells"].update(HTML(cells))

    def show_slider(self, dashboard):
        frames = dashboard.state.frames
        if not frames or self.handles is None:
            return
        import ipywidgets as widgets

        self.slider = widgets.IntSlider(value=len(frames) - 1, min=0, max=len(frames) - 1, description="snapshot",
                                        continuous_update=False, layout=widgets.Layout(width="60%"))
        self.slider.observe(lambda change: dashboard.show_frame(change["new"]), names="value")
        self._display_fn()(self.slider)

    def finish(self):
        pass


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
        Upper bound on starting a new drawing of the derived cells while
        steps run (default 0.5, one every two seconds; the end of each epoch
        and of the search always draw). `dot` runs in a subprocess and
        competes with the search for the CPU, and early in a search the
        genotype can change at every step. Cells are drawn only when the
        genotype changed; the edges marked are those changed since the cells
        last drawn.
    window : int
        Long series are averaged down to this many points before they are sent.
    title : str
        Figure title (default: strategy and data set).

    ``dashboard.state`` holds what the panels show (see `DashboardState`);
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
        self.backend = choose_backend(backend)
        self.max_updates_per_second = float(max_updates_per_second)
        self.max_cell_draws_per_second = float(max_cell_draws_per_second)
        self.window = int(window)
        self.title = title
        self.state = DashboardState()
        self.draws = 0
        self.clock = time.perf_counter  # tests replace it to drive the throttle
        self._last_draw = -math.inf
        self._last_cell_start = -math.inf
        self._displayed = False
        self._displayed_in = None
        self._snapshots_seen = 0
        self._painter = _CellPainter()
        self._pending = None  # (future, genotype version, step) of cells being drawn
        self._shown_cells = None  # genotype version whose cells are on screen
        self._frame_genotypes: dict[int, Genotype] = {}
        if self.backend == "widget":
            self.renderer = _WidgetRenderer(title, self.window)
        elif self.backend == "colab":
            self.renderer = _StaticRenderer(title, self.window)
        else:
            self.renderer = _NullRenderer()

    # -- throttle -------------------------------------------------------------
    @property
    def min_interval(self) -> float:
        return max(1.0 / self.max_updates_per_second, self.renderer.min_interval_floor)

    @property
    def cell_draws(self) -> int:
        """How many cell SVGs were drawn (graphviz runs; cached cells do not count)."""
        return self._painter.draws

    # -- display ----------------------------------------------------------------
    def display(self):
        """Show the dashboard in the notebook (nothing without a front end)."""
        if self.backend == "none" or _shell() is None:
            return
        if self.renderer.show():
            self._displayed = True
            shell = _shell()
            self._displayed_in = getattr(shell, "execution_count", None)

    def _ipython_display_(self):
        shell = _shell()
        # `Dashboard.replay(h)` as a cell's last line displays itself; do not show it twice.
        if self._displayed and shell is not None and self._displayed_in == getattr(shell, "execution_count", None):
            return
        self.display()

    def __repr__(self):
        return (f"Dashboard(backend={self.backend!r}, max_updates_per_second={self.max_updates_per_second:g}, "
                f"max_cell_draws_per_second={self.max_cell_draws_per_second:g})")

    # -- callbacks ----------------------------------------------------------------
    def on_search_start(self, run):
        self._reset(run.history)
        self.state.total_steps = run.total_steps
        self.state.status = _status_running(run)
        self.renderer.configure(self.state)
        if not self._displayed:
            self.display()
        self._draw_live(run, force=True)

    def on_step_end(self, run, record):
        self.state.add_step(record)
        self._take_snapshots(run.history)
        if self.clock() - self._last_draw >= self.min_interval:
            self._draw_live(run)

    def on_epoch_end(self, run, record):
        self._take_snapshots(run.history)
        self.state.add_epoch(record)
        self._draw_live(run, force=True, wait_cells=True)

    def on_search_end(self, run, result):
        self._take_snapshots(run.history)
        self.state.finished, self.state.interrupted = True, bool(result.interrupted)
        self.state.set_probabilities(run.global_step, self._probabilities(run))
        self.state.set_genotype(result.genotype, run.global_step)
        self.state.status = _status_finished(run, result)
        self._draw(wait_cells=True)
        self.renderer.show_slider(self)
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
        final = history.epochs[-1] if history.epochs else None
        frames = self.state.frames
        if frames:
            last = frames[-1]
            self.state.set_probabilities(last["step"], last["probabilities"])
        if final and final.get("genotype"):
            self.state.set_genotype(genotype_from_json(json.dumps(final["genotype"])), final["step"])
        elif frames:
            self.state.set_genotype(self.state.derive(), frames[-1]["step"])
        self.state.status = _status_replay(history)
        self.renderer.configure(self.state)
        if not self._displayed:
            self.display()
        self._draw(wait_cells=True)
        self.renderer.show_slider(self)
        self.renderer.finish()
        return self

    # -- scrubbing ----------------------------------------------------------------
    def _frame_genotype(self, index: int) -> Genotype:
        genotype = self._frame_genotypes.get(index)
        if genotype is None:
            genotype = self.state.derive(self.state.frames[index]["probabilities"])
            self._frame_genotypes[index] = genotype
        return genotype

    def _frame_label(self, index: int) -> str:
        frame = self.state.frames[index]
        epoch = frame.get("epoch")
        return html.escape(f"step {frame['step']}" + (f" (epoch {epoch + 1})" if epoch is not None else ""))

    def show_frame(self, index: int):
        """Show recorded snapshot `index`: its heatmaps, its derived cells (with
        the edges changed since the snapshot before marked) and a marker at
        its step on the curves."""
        frames = self.state.frames
        index = max(0, min(int(index), len(frames) - 1))
        frame = frames[index]
        genotype = self._frame_genotype(index)
        previous = self._frame_genotype(index - 1) if index > 0 else None
        changes = {k: cell_changes(previous, genotype, k) for k in KINDS}
        self.state.set_probabilities(frame["step"], frame["probabilities"])
        svgs = self._painter.svgs(genotype)
        cells = _cells_html(svgs, genotype, changes, frame["step"], "(scrubbing: edges changed since the snapshot before)")
        self.renderer.draw(self.state, curves=False, cells=cells, marker=frame["step"])
        self.draws += 1

    # -- internals ----------------------------------------------------------------
    def _reset(self, history: History):
        self.state.reset()
        self.state.configure(history.meta)
        self.state.load_history(history)
        self._snapshots_seen = len(history.snapshots)
        self._frame_genotypes = {}
        self._pending = None
        self._shown_cells = None
        self._last_draw = -math.inf
        self._last_cell_start = -math.inf

    def _take_snapshots(self, history: History):
        snapshots = history.snapshots
        while self._snapshots_seen < len(snapshots):
            s = snapshots[self._snapshots_seen]
            self.state.add_frame(s["step"], s.get("epoch"), s["probabilities"])
            self._snapshots_seen += 1

    @staticmethod
    def _probabilities(run) -> dict:
        probs = run.strategy.probabilities()
        return {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in probs.items()}

    def _draw_live(self, run, force=False, wait_cells=False):
        state = self.state
        state.set_probabilities(run.global_step, self._probabilities(run))
        state.set_genotype(state.derive(), run.global_step)
        state.status = _status_running(run)
        self._draw(wait_cells=wait_cells)

    def _draw(self, wait_cells=False):
        """Push the state to the renderer; cells only when a new drawing is ready."""
        if self.backend == "none":
            cells = None
            self.state.mark_drawn()
        else:
            cells = self._cells_update(wait_cells)
        self.renderer.draw(self.state, cells=cells)
        self.draws += 1
        self._last_draw = self.clock()

    def _cells_update(self, wait: bool):
        """HTML of the cells if the genotype changed since they were last drawn
        and its SVGs are ready (or `wait`), else None. Starts drawing a changed
        genotype in the worker thread, at most `max_cell_draws_per_second`."""
        state = self.state
        if state.genotype is None or self._shown_cells == state.genotype_version:
            return None
        pending = self._pending
        if pending is None or pending[1] != state.genotype_version:
            cached = all(self._painter.cached(state.genotype, k) for k in KINDS)
            if cached or wait or self.clock() - self._last_cell_start >= 1.0 / self.max_cell_draws_per_second:
                future = None if cached else self._painter.submit(state.genotype)
                if future is not None:
                    self._last_cell_start = self.clock()
                pending = self._pending = (future, state.genotype_version, state.genotype_step, state.genotype)
        if pending is None:
            return None  # the cell throttle holds this genotype back; a later draw starts it
        future, version, step, genotype = pending
        if future is not None and not future.done() and not wait:
            return None
        # An older genotype's drawing may finish first: it is shown as what it is.
        svgs = future.result() if future is not None else self._painter.svgs(genotype)
        self._pending, self._shown_cells = None, version
        changes = state.mark_drawn(genotype)
        return _cells_html(svgs, genotype, changes, step)


def _as_history(history) -> History:
    if isinstance(history, History):
        return history
    if hasattr(history, "history") and isinstance(history.history, History):  # a SearchResult
        return history.history
    if isinstance(history, dict):
        return History.from_dict(history)
    return History.load(history)

"""The search figure: metric curves, a heatmap per distribution table, and the
entropy of every row over time, in one plotly figure.

One figure rather than several: each FigureWidget ships plotly.js (~5 MB) to
the page and into the saved notebook. What the figure holds depends only on
what a strategy declares and shows: its curve panels (``strategy.plots``:
``{"loss": ["train_loss", ...], ...}``) and its tables (``{name: Table}``,
each with row and column labels and a mask); nothing here knows a strategy or
a space.

`FigureLayout` says which trace shows what; `build_figure` makes the figure
and `apply_state` writes a `DashboardState` into it as one batched update.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from plotly.basedatatypes import Undefined  # "leave this trace as it is" in a plotly_update

__all__ = ["FigureLayout", "build_figure", "apply_state", "colour_top", "curve_style", "normalised_entropy",
           "CURVES_ROW_PX", "ENTROPY_ROW_PX", "HEATMAP_PX_PER_ROW", "HEATMAP_MIN_PX", "GAPS_PX", "MARGIN",
           "ENTROPY_AXIS_FLOOR", "ENTROPY_AXIS_TOP"]

# Rows in pixels rather than fractions of the figure: the rotated option names under the heatmaps
# and the titles above each row keep their room whatever the number of rows of a table.
CURVES_ROW_PX, ENTROPY_ROW_PX = 200, 180
HEATMAP_PX_PER_ROW, HEATMAP_MIN_PX = 20, 140
GAPS_PX = (70, 110)  # under the curves (their ticks, the heatmap titles); under the heatmaps (option names, titles)
MARGIN = dict(l=70, r=20, t=130, b=50)  # the top holds the title, and under it the legend (two lines fit)
TITLE_PX, LEGEND_GAP_PX = 12, 36  # the title's distance from the top; the legend's bottom above the first row
# An entropy axis spans at least [ENTROPY_AXIS_FLOOR, 1]: early in a search every row sits just
# below 1, where a fixed [0, 1] axis would draw flat lines and a bare autorange would zoom into
# rounding noise (every tick labelled "1").
ENTROPY_AXIS_FLOOR = 0.98
ENTROPY_AXIS_TOP = 1.002  # a little headroom: lines at 1 stay visible, the top tick clear of the title

# Curves are coloured by what they measure on (the key without _loss/_acc), so a split's loss and
# accuracy share a colour and one legend entry. Known splits get readable names.
SPLITS = {
    "train": ("w split", "#4e79a7"),
    "arch": ("arch split", "#f28e2b"),
    "supernet_val": ("val: supernet (mixture)", "#59a14f"),
    "oneshot_val": ("val: one-shot (derived)", "#b07aa1"),
    "val": ("validation", "#59a14f"),
    "true": ("true (table)", "#e15759"),
}
PALETTE = ("#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac", "#4e79a7", "#f28e2b", "#e15759")
# Entropy lines are coloured by the row's group: the node an edge enters, else the row itself.
ROW_COLOURS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")


def curve_style(key: str, index: int = 0) -> tuple[str, str, str]:
    """``(legend group, legend name, colour)`` of metric `key`."""
    split = key[: -len("_loss")] if key.endswith("_loss") else key[: -len("_acc")] if key.endswith("_acc") else key
    name, colour = SPLITS.get(split, (split.replace("_", " "), PALETTE[index % len(PALETTE)]))
    return split, name, colour


def normalised_entropy(P: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Entropy of each row of `P` over its options (the unmasked ones) divided
    by the log of their number: 1 = uniform, 0 = one-hot."""
    P = np.asarray(P, dtype=np.float64)
    valid = np.ones_like(P, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    n = valid.sum(axis=1)
    Q = np.where(valid, np.clip(P, 1e-12, 1.0), 1.0)
    H = -(np.where(valid, P, 0.0) * np.log(Q)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(n > 1, H / np.log(np.maximum(n, 2)), 0.0)
    return np.clip(out, 0.0, 1.0)  # clipped: float32 rows need not sum to exactly 1


def colour_top(probabilities: dict) -> float:
    """Top of the heatmaps' colour scale: the largest probability shown, rounded up to 0.05."""
    largest = max((float(np.nanmax(P)) for P in probabilities.values() if np.size(P)), default=1.0)
    return min(1.0, max(0.05, math.ceil(largest * 20 - 1e-9) / 20))


def _row_group(label: str) -> str:
    """The node an edge label enters (``"c_{k-1} -> 2"`` -> ``"2"``), else the label."""
    return label.rsplit("->", 1)[-1].strip() if "->" in label else label


@dataclass
class FigureLayout:
    """What the figure shows and which trace shows it.

    - `panels`: ``{title: [metric keys]}``, one subplot per panel in the first row;
    - `tables`: ``{name: layout dict}`` (rows, columns, mask, title), one heatmap
      each in the second row and one entropy subplot each in the third.
    """

    panels: dict
    tables: dict
    curve_trace: dict = field(default_factory=dict)     # key -> trace index
    heatmap_trace: dict = field(default_factory=dict)   # table -> trace index
    entropy_trace: dict = field(default_factory=dict)   # (table, row) -> trace index
    axes: dict = field(default_factory=dict)            # (row, col) -> ("xaxis3", "yaxis3")

    @property
    def columns(self) -> int:
        return max(1, len(self.panels), len(self.tables))

    @property
    def table_rows(self) -> int:
        return max((len(t["rows"]) for t in self.tables.values()), default=0)

    def same_shape(self, other) -> bool:
        return other is not None and self.panels == other.panels and self.tables == other.tables


def build_figure(layout: FigureLayout, title: str | None = None):
    """A `go.Figure` with every trace of `layout` (empty) and the rows laid out
    in pixels. Fills in the layout's trace indices."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols, panels, tables = layout.columns, list(layout.panels), list(layout.tables)
    specs = [[{} if c < len(panels) else None for c in range(cols)],
             [{} if c < len(tables) else None for c in range(cols)],
             [{} if c < len(tables) else None for c in range(cols)]]
    titles = ([p for p in panels] + [""] * (cols - len(panels))
              + [f"{_title(layout, t)}: p(option | row)" for t in tables] + [""] * (cols - len(tables))
              + [f"{_title(layout, t)}: entropy per row" for t in tables] + [""] * (cols - len(tables)))
    fig = make_subplots(rows=3, cols=cols, specs=specs, horizontal_spacing=0.08 if cols > 1 else 0.0,
                        subplot_titles=[t for t in titles if t] or None)
    layout.axes = {(r, c): (fig.get_subplot(r, c).xaxis.plotly_name, fig.get_subplot(r, c).yaxis.plotly_name)
                   for r in range(1, 4) for c in range(1, cols + 1) if specs[r - 1][c - 1] is not None}
    n = 0
    seen_groups = set()
    for col, (panel, keys) in enumerate(layout.panels.items(), start=1):
        for i, key in enumerate(keys):
            group, name, colour = curve_style(key, i)
            fig.add_trace(go.Scatter(
                x=[], y=[], name=name, legendgroup=group, showlegend=group not in seen_groups, mode="lines",
                line=dict(color=colour, width=1.5), marker=dict(size=6),
                hovertemplate=f"{key}<br>step %{{x:.0f}}: %{{y:.3f}}<extra></extra>",
            ), row=1, col=col)
            seen_groups.add(group)
            layout.curve_trace[key] = n
            n += 1
    for col, name in enumerate(tables, start=1):
        t = layout.tables[name]
        fig.add_trace(go.Heatmap(
            z=None, x=list(t["columns"]), y=list(t["rows"]), coloraxis="coloraxis", xgap=1, ygap=1, name=_title(layout, name),
            hovertemplate=f"{_title(layout, name)}<br>%{{y}}<br>%{{x}}: %{{z:.3f}}<extra></extra>",
        ), row=2, col=col)
        layout.heatmap_trace[name] = n
        n += 1
    for col, name in enumerate(tables, start=1):
        t = layout.tables[name]
        groups = list(dict.fromkeys(_row_group(r) for r in t["rows"]))
        for r, label in enumerate(t["rows"]):
            colour = ROW_COLOURS[groups.index(_row_group(label)) % len(ROW_COLOURS)]
            fig.add_trace(go.Scatter(
                x=[], y=[], mode="lines", name=label, showlegend=False, line=dict(color=colour, width=1.2),
                hovertemplate=f"{_title(layout, name)}<br>{label}<br>step %{{x:.0f}}: %{{y:.2f}}<extra></extra>",
            ), row=3, col=col)
            layout.entropy_trace[(name, r)] = n
            n += 1
    fig.update_layout(
        title=dict(text=title or "search", x=0.01, xanchor="left", yref="container", y=1, yanchor="top",
                   pad=dict(t=TITLE_PX)),
        margin=MARGIN, template="plotly_white",
        # Under the title rather than beside it: four or more entries would wrap over a long title.
        legend=dict(orientation="h", x=0.0, xanchor="left", yanchor="bottom"),
        # The colour scale runs from 0 to just above the largest probability shown (set at each
        # draw): probabilities near uniform (1/8) would all look alike on a [0, 1] scale.
        coloraxis=dict(cmin=0.0, cmax=1.0, colorscale="Viridis",
                       colorbar=dict(title=dict(text="p"), thickness=12, yanchor="middle")),
        hovermode="closest", uirevision="nasedu",
    )
    for col, keys in enumerate(layout.panels.values(), start=1):
        if keys and all(k.endswith("_acc") for k in keys):
            fig.update_yaxes(range=[0, 1.02], row=1, col=col)
    for col in range(1, len(tables) + 1):
        fig.update_yaxes(autorange=True, autorangeoptions=dict(include=[ENTROPY_AXIS_FLOOR, ENTROPY_AXIS_TOP]),
                         tickformat=".3~f", row=3, col=col)
        fig.update_yaxes(autorange="reversed", type="category", row=2, col=col)
        fig.update_xaxes(tickangle=-35, type="category", row=2, col=col)
        fig.update_xaxes(title_text="step", row=3, col=col)
        if col > 1 and layout.tables[tables[col - 1]]["rows"] == layout.tables[tables[0]]["rows"]:
            fig.update_yaxes(showticklabels=False, row=2, col=col)  # the same rows as the left heatmap
    if tables:
        # On the left only: between the columns it would cover the left plot.
        fig.update_yaxes(title=dict(text="1 = undecided", font=dict(size=11)), row=3, col=1)
    _layout_rows(fig, layout)
    return fig


def _title(layout, name) -> str:
    return layout.tables[name].get("title") or name


def _layout_rows(fig, layout: FigureLayout):
    """Height of the figure, each row's place and its titles, in pixels: the
    heatmaps grow with the number of rows, the other rows and the gaps do not."""
    rows = (CURVES_ROW_PX, max(HEATMAP_MIN_PX, HEATMAP_PX_PER_ROW * layout.table_rows), ENTROPY_ROW_PX)
    plot = sum(rows) + sum(GAPS_PX)
    fig.layout.height = plot + MARGIN["t"] + MARGIN["b"]
    fig.layout.legend.y = 1 + LEGEND_GAP_PX / plot  # above the row titles, under the figure's title
    titles = {a.text: a for a in fig.layout.annotations}
    top = plot
    for row, height in enumerate(rows, start=1):
        domain = [(top - height) / plot, top / plot]
        for col in range(1, layout.columns + 1):
            if (row, col) in layout.axes:
                fig.layout[layout.axes[(row, col)][1]].domain = domain
        if row == 2:
            fig.layout.coloraxis.colorbar.update(y=sum(domain) / 2, len=domain[1] - domain[0])
        for text in _row_titles(layout, row):
            if text in titles:
                titles[text].y = domain[1]  # the subplot's title sits on its top edge
        top -= height + (GAPS_PX[row - 1] if row - 1 < len(GAPS_PX) else 0)


def _row_titles(layout, row):
    if row == 1:
        return list(layout.panels)
    suffix = ": p(option | row)" if row == 2 else ": entropy per row"
    return [f"{_title(layout, t)}{suffix}" for t in layout.tables]


def marker_shapes(layout: FigureLayout, step) -> list:
    """A vertical line at `step` on the curves and entropy plots (while scrubbing)."""
    if step is None:
        return []
    line = dict(color="#555555", width=1, dash="dot")
    shapes = []
    for row, count in ((1, len(layout.panels)), (3, len(layout.tables))):
        for col in range(1, count + 1):
            x, y = layout.axes[(row, col)]
            xref, yref = x.replace("axis", ""), y.replace("axis", "")
            shapes.append(dict(type="line", xref=xref, yref=f"{yref} domain", x0=step, x1=step, y0=0, y1=1, line=line))
    return shapes


def apply_state(fig, layout: FigureLayout, state, window: int, drawn: dict, marker=None, curves: bool = True):
    """Write what changed in `state` since `drawn` (the versions last written,
    updated here) into `fig` as ONE `plotly_update`: a FigureWidget sends it
    to the front end as a single message, as `fig.batch_update()` would, but
    without re-validating every array (plotly's validation, not the message,
    is what costs time here)."""
    props: dict[int, dict] = {}
    if curves and drawn.get("curves") != state.curves_version:
        for key, n in layout.curve_trace.items():
            x, y, per_epoch = state.series(key, window)
            props[n] = {"x": x, "y": y, "mode": "lines+markers" if per_epoch else "lines"}
        drawn["curves"] = state.curves_version
    if curves and drawn.get("frames") != state.frames_version:
        for name in layout.tables:
            x, Y = state.entropy_series(name, window)
            for r in range(Y.shape[1]):
                n = layout.entropy_trace.get((name, r))
                if n is not None:
                    props[n] = {"x": x, "y": np.ascontiguousarray(Y[:, r])}
        drawn["frames"] = state.frames_version
    relayout = {}
    if state.probabilities is not None and drawn.get("probabilities") is not state.probabilities:
        for name, n in layout.heatmap_trace.items():
            if name in state.probabilities:
                props[n] = {"z": state.shown_probabilities(name)}
        relayout["coloraxis.cmax"] = colour_top(state.probabilities)
        drawn["probabilities"] = state.probabilities
    if props:
        indexes = sorted(props)
        keys = sorted({k for p in props.values() for k in p})
        restyle = {k: [props[i].get(k, Undefined) for i in indexes] for k in keys}
        fig.plotly_update(restyle_data=restyle, relayout_data=relayout or None, trace_indexes=indexes)
    if drawn.get("marker") != marker:  # only while scrubbing: through the layout object, validated
        fig.layout.shapes = marker_shapes(layout, marker)
        drawn["marker"] = marker

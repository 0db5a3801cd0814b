"""Live views that never hold training back: a plotly figure, HTML panes and a
status line, pushed to the front end at a bounded rate.

`LiveView` is the machinery; `nasedu.viz.Dashboard` is one use of it (the
search figure and the derived cells), and a notebook can build others (a
scatter that fills in, a table of results) on the same machinery:

    >>> view = LiveView(go.Figure(...), panes=("table",))
    >>> view.display()
    >>> for ...:
    ...     if view.throttle.ready():
    ...         view.draw(lambda fig: fig.data[0].update(x=xs, y=ys), panes={"table": html})
    >>> view.finish()

Backends: "widget" (plotly `FigureWidget` inside ipywidgets: JupyterLab,
Notebook 7, VS Code), "colab" (static plotly figures and HTML redrawn through
display handles, at most once a second: Colab's FigureWidget support is
unreliable), "none" (no front end: nothing is drawn). "auto" picks one.
"""
from __future__ import annotations

import html
import math
import sys
import time
from copy import deepcopy

__all__ = ["LiveView", "Throttle", "choose_backend", "BACKENDS", "status_html"]

BACKENDS = ("auto", "widget", "colab", "none")
COLAB_MAX_UPDATES_PER_SECOND = 1.0


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


def status_html(text: str) -> str:
    return (f'<div class="nasedu-status" style="font-family:monospace;font-size:13px;padding:2px 0">'
            f"{html.escape(text)}</div>")


class Throttle:
    """At most `rate` events per second: ``ready()`` says whether enough time
    has passed since the last ``mark()``. `clock` can be replaced (tests)."""

    def __init__(self, rate: float, clock=time.perf_counter):
        if not rate or rate <= 0:
            raise ValueError(f"rate must be > 0 (math.inf for no limit), got {rate!r}")
        self.rate, self.clock = float(rate), clock
        self.last = -math.inf

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    def ready(self, interval: float | None = None) -> bool:
        return self.clock() - self.last >= (self.interval if interval is None else interval)

    def mark(self):
        self.last = self.clock()

    def reset(self):
        self.last = -math.inf


def _sync_saved_state(fig):
    """Make a FigureWidget's synced state hold the current figure.

    A FigureWidget sends later edits as restyle messages, so the state a
    notebook saves (and an HTML export shows) would keep the construction-time
    figure; assigning these two traits syncs the final one."""
    fig._widget_data = deepcopy(fig._data)
    fig._widget_layout = deepcopy(fig._layout_obj._props)


class _NullRenderer:
    """No front end: nothing is created or drawn."""

    min_interval_floor = 0.0
    figure = None

    def show(self):
        return False

    def set_figure(self, figure):
        pass

    def draw(self, apply=None, status=None, panes=None):
        pass

    def show_slider(self, count, on_change, label):
        pass

    def finish(self):
        pass


class _WidgetRenderer:
    """plotly FigureWidget + ipywidgets: live updates as small messages."""

    min_interval_floor = 0.0

    def __init__(self, figure, panes, css_class):
        import ipywidgets as widgets
        import plotly.graph_objects as go

        self._go = go
        self.status = widgets.HTML(status_html("waiting to start"))
        self.figure = go.FigureWidget(figure) if figure is not None else go.FigureWidget()
        self.panes = {name: widgets.HTML("", layout=widgets.Layout(min_height="40px")) for name in panes}
        self.slider = widgets.IntSlider(value=0, min=0, max=0, description="snapshot", continuous_update=True,
                                        readout=False, layout=widgets.Layout(width="60%"))
        self.slider_label = widgets.HTML("")
        self.slider_box = widgets.HBox([self.slider, self.slider_label], layout=widgets.Layout(display="none"))
        self.box = widgets.VBox([self.status, self.slider_box, self.figure, *self.panes.values()])
        self.box.add_class(css_class)
        self._observer = None

    def show(self):
        from IPython.display import display

        display(self.box)
        return True

    def set_figure(self, figure):
        """Replace the figure's traces and layout (a new layout of panels), in place."""
        with self.figure.batch_update():
            self.figure.data = []
            self.figure.add_traces(list(figure.data))
            self.figure.layout = figure.layout
        self.slider_box.layout.display = "none"

    def draw(self, apply=None, status=None, panes=None):
        if apply is not None:
            apply(self.figure)
        if status is not None:
            self.status.value = status_html(status)
        for name, value in (panes or {}).items():
            self.panes[name].value = value

    def show_slider(self, count, on_change, label):
        if count < 1:
            return
        if self._observer is not None:
            self.slider.unobserve(self._observer, names="value")
        self.slider.max = count - 1
        self.slider.value = count - 1
        self.slider_label.value = label(count - 1)

        def observer(change):
            on_change(change["new"])
            self.slider_label.value = label(change["new"])

        self._observer = observer
        self.slider.observe(observer, names="value")
        self.slider_box.layout.display = "flex"

    def finish(self):
        _sync_saved_state(self.figure)


class _StaticRenderer:
    """Colab: a static plotly figure, the panes and the status line redrawn
    through display handles (no custom widget needed)."""

    min_interval_floor = 1.0 / COLAB_MAX_UPDATES_PER_SECOND

    def __init__(self, figure, panes, css_class, display=None):
        import plotly.graph_objects as go

        self.figure = go.Figure(figure) if figure is not None else go.Figure()
        self._display = display
        self.handles = None
        self.slider = None
        self._status = "waiting to start"
        self._panes = {name: "" for name in panes}

    def _display_fn(self):
        if self._display is not None:
            return self._display
        from IPython.display import display

        return display

    def show(self):
        from IPython.display import HTML

        display = self._display_fn()
        self.handles = {"status": display(HTML(status_html(self._status)), display_id=True),
                        "figure": display(self.figure, display_id=True)}
        for name, value in self._panes.items():
            self.handles[name] = display(HTML(value or "<div></div>"), display_id=True)
        return True

    def set_figure(self, figure):
        import plotly.graph_objects as go

        self.figure = go.Figure(figure)

    def draw(self, apply=None, status=None, panes=None):
        from IPython.display import HTML

        if apply is not None:
            apply(self.figure)
        if status is not None:
            self._status = status
        self._panes.update(panes or {})
        if self.handles:
            self.handles["status"].update(HTML(status_html(self._status)))
            self.handles["figure"].update(self.figure)
            for name, value in (panes or {}).items():
                self.handles[name].update(HTML(value))

    def show_slider(self, count, on_change, label):
        if count < 1 or self.handles is None:
            return
        import ipywidgets as widgets

        self.slider = widgets.IntSlider(value=count - 1, min=0, max=count - 1, description="snapshot",
                                        continuous_update=False, layout=widgets.Layout(width="60%"))
        self.slider.observe(lambda change: on_change(change["new"]), names="value")
        self._display_fn()(self.slider)

    def finish(self):
        pass


class LiveView:
    """A figure, named HTML `panes` and a status line, drawn by the chosen
    backend at most `max_updates_per_second` times a second while work runs
    (`throttle.ready()`; Colab: at most once a second)."""

    def __init__(self, figure=None, panes=(), backend: str = "auto", max_updates_per_second: float = 4.0,
                 css_class: str = "nasedu-live"):
        self.backend = choose_backend(backend)
        self.throttle = Throttle(max_updates_per_second)
        if self.backend == "widget":
            self.renderer = _WidgetRenderer(figure, panes, css_class)
        elif self.backend == "colab":
            self.renderer = _StaticRenderer(figure, panes, css_class)
        else:
            self.renderer = _NullRenderer()
        self.draws = 0
        self._displayed = False
        self._displayed_in = None

    @property
    def min_interval(self) -> float:
        return max(self.throttle.interval, self.renderer.min_interval_floor)

    def ready(self) -> bool:
        """Whether a draw now stays within the rate."""
        return self.throttle.ready(self.min_interval)

    @property
    def displayed(self) -> bool:
        return self._displayed

    def display(self):
        """Show the view in the notebook (nothing without a front end)."""
        if self.backend == "none" or _shell() is None:
            return
        if self.renderer.show():
            self._displayed = True
            self._displayed_in = getattr(_shell(), "execution_count", None)

    def displayed_in_this_cell(self) -> bool:
        shell = _shell()
        return self._displayed and shell is not None and self._displayed_in == getattr(shell, "execution_count", None)

    def draw(self, apply=None, status=None, panes=None):
        """Push one update: ``apply(figure)`` edits the figure (one batched message), `status` and `panes` replace text."""
        self.renderer.draw(apply, status, panes)
        self.draws += 1
        self.throttle.mark()

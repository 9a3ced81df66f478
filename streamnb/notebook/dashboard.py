"""The live dashboard of a run: a thin ipywidgets + matplotlib view over :class:`RunFrame`.

It shows only what the run's snapshots say (monitors' stage table, buffer gauges, concurrent
stages with a cluster link, resilient sources' reconnects and failures, gRPC call counters),
never a live object of the run.

Every decision (texts, colours, fractions, what to plot, when to redraw) comes from the pure
helpers in :mod:`streamnb.notebook._format`; this module only copies their results into
widgets. The runner calls :meth:`Dashboard.update` from a timer a few times a second (never per
item); each widget's changes are grouped with ``hold_sync`` and traitlets only sends traits
whose value changed, so a refresh costs a handful of comm messages whatever the item rate. The
throughput plot is drawn with matplotlib's Agg canvas (no pyplot, no global figure) into an
``ipywidgets.Image`` at most once a second and never more than 2 % of the time.

Example (in a notebook; normally :func:`streamnb.notebook.start` builds it for you)::

    dash = Dashboard("etl", on_stop=run.stop, on_pause=run.toggle_pause)
    display(dash.widget)
    dash.update(frame)
"""

from __future__ import annotations

import html
import io
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar, cast

import ipywidgets as widgets
from ipywidgets.widgets.widget_int import ProgressStyle
from ipywidgets.widgets.widget_string import HTMLStyle

from ._format import (
    FINISHED,
    RunFrame,
    Throttle,
    ThroughputHistory,
    buffer_gauges,
    buffer_gauges_html,
    concurrent_html,
    progress_for,
    recovery_html,
    stage_rows,
    stage_table_html,
    window_table_html,
)

__all__ = ["Dashboard"]

_PLOT_MIN_SPAN = 1.0  # seconds of history before a throughput plot is drawn
_PLOT_SPAN = 60.0  # seconds of throughput history on the plot
_STATUS_COLOUR = {
    "pending": "#666",
    "running": "#1565c0",
    "paused": "#ef6c00",
    "done": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#ef6c00",
}


_SHARED: dict[str, Any] = {}
_W = TypeVar("_W", bound=widgets.Widget)


def _shared(key: str, factory: Callable[[], _W]) -> _W:
    """One widget model per ``key`` for the whole kernel (static layouts and styles).

    Recreated if it was closed (``Widget.close_all()``, a cleared output area's comm).
    """
    model = _SHARED.get(key)
    if model is None or getattr(model, "comm", None) is None:
        model = _SHARED[key] = factory()
    return cast(_W, model)


def _preload_matplotlib() -> None:
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401
    import PIL.Image  # noqa: F401


def _start_preload() -> threading.Thread | None:
    """Import matplotlib in a short-lived thread so that the first plot does not freeze the
    event loop for the ~0.6 s the import takes (once per kernel); the thread ends by itself."""
    if "matplotlib.backends.backend_agg" in sys.modules:
        return None
    thread = threading.Thread(
        target=_preload_matplotlib, name="streamnb-matplotlib-import", daemon=True
    )
    thread.start()
    return thread


class Dashboard:
    """One run's widget: progress bar, pause/stop, status line, stages, buffer gauges, plot, tail.

    ``on_stop`` / ``on_pause`` are called by the buttons (in the kernel, when the frontend sends
    the click). ``refresh`` (Hz) sizes the throughput history; ``plot_interval`` (s) is the
    shortest gap between two plot redraws; ``show_window`` rows of the window tail are shown.
    """

    def __init__(
        self,
        name: str,
        *,
        on_stop: Callable[[], None] | None = None,
        on_pause: Callable[[], None] | None = None,
        refresh: float = 4.0,
        plot_interval: float = 1.0,
        show_window: int = 5,
    ) -> None:
        self.name = name
        self.history = ThroughputHistory(maxlen=max(8, int(_PLOT_SPAN * refresh) + 2))
        self.plot_throttle = Throttle(min_interval=plot_interval, duty=0.02)
        self.show_window = show_window
        self._plotted_version = -1
        self._figure: Any = None
        self._axes: Any = None
        self._canvas: Any = None
        self._lines: dict[str, Any] = {}
        self._t0: float | None = None
        self._on_stop = on_stop
        self._on_pause = on_pause
        self.closed = False
        self._preload = _start_preload()

        # Every widget is a comm opened when the run starts (~0.5 ms of kernel CPU each, more
        # on a busy machine), and each would make its own Layout/Style widgets too. So: few
        # widgets, and the static Layout/Style models are shared by every dashboard.
        self.bar = widgets.FloatProgress(
            value=0.0,
            min=0.0,
            max=1.0,
            bar_style="",
            description=name,
            style=_shared("progress-style", lambda: ProgressStyle(description_width="initial")),
            layout=_shared("bar", lambda: widgets.Layout(width="420px")),
        )
        button = _shared("button", lambda: widgets.Layout(width="90px"))
        button_style = _shared("button-style", widgets.ButtonStyle)
        self.pause_button = widgets.Button(
            description="Pause",
            icon="pause",
            tooltip="stop pulling items (backpressure)",
            layout=button,
            style=button_style,
        )
        self.stop_button = widgets.Button(
            description="Stop",
            icon="stop",
            button_style="danger",
            tooltip="end the run",
            layout=button,
            style=button_style,
        )
        self.pause_button.on_click(self._pause_clicked)
        self.stop_button.on_click(self._stop_clicked)
        plain = _shared("plain", widgets.Layout)
        html_style = _shared("html-style", HTMLStyle)
        #: status and counts line (red with the error on failure)
        self.info = widgets.HTML(
            value=self._info_html("pending", "starting…"), layout=plain, style=html_style
        )
        #: stage table, buffer gauges and window tail, as one HTML fragment
        self.body = widgets.HTML(value="", layout=plain, style=html_style)
        #: the throughput plot, created (and added below the tables) at the first redraw
        self.plot: widgets.Image | None = None
        header = widgets.HBox(
            [self.bar, self.pause_button, self.stop_button],
            layout=_shared("row", lambda: widgets.Layout(align_items="center")),
        )
        self.widget = widgets.VBox([header, self.info, self.body], layout=plain)
        self.widget.add_class("streamnb-dashboard")

    # -- buttons ----------------------------------------------------------------------------
    def _pause_clicked(self, _button: Any) -> None:
        if self._on_pause is not None:
            self._on_pause()

    def _stop_clicked(self, _button: Any) -> None:
        if self._on_stop is not None:
            self._on_stop()

    @staticmethod
    def _info_html(status: str, text: str) -> str:
        colour = _STATUS_COLOUR.get(status, "#666")
        body = "#c62828" if status == "failed" else "inherit"
        return (
            f'<span style="font-family:monospace"><b style="color:{colour}">{status}</b> '
            f'<span style="color:{body}">{html.escape(text)}</span></span>'
        )

    # -- refresh ----------------------------------------------------------------------------
    def update(self, frame: RunFrame) -> None:
        """Show ``frame``: one grouped sync per widget, the plot when the throttle allows."""
        if self.closed:
            return
        self._show(frame, final=frame.status in FINISHED)

    def close(self, frame: RunFrame) -> None:
        """Show the final state (plot included) and disable the buttons; idempotent."""
        if self.closed:
            return
        self._show(frame, final=True)
        self.closed = True

    def _show(self, frame: RunFrame, *, final: bool) -> None:
        view = progress_for(frame)
        if self._t0 is None:
            self._t0 = frame.taken_at
        counts = {name: snap.items for name, snap in frame.stages.items()}
        if not counts:
            counts = {self.name: frame.items}
        self.history.add(frame.taken_at, counts)
        parts = [
            stage_table_html(stage_rows(frame.stages)),
            buffer_gauges_html(buffer_gauges(frame.buffers)),
            concurrent_html(frame.concurrent.values()),
            recovery_html(frame.resilient.values(), frame.calls.values()),
        ]
        if self.show_window and frame.window_tail:
            parts.append(window_table_html(frame.window_tail[-self.show_window :]))
        paused = frame.status == "paused"
        with ExitStack() as stack:
            for w in (self.bar, self.info, self.body, self.pause_button, self.stop_button):
                stack.enter_context(w.hold_sync())
            self.bar.value = view.fraction if view.fraction is not None else 0.0
            self.bar.bar_style = view.bar_style
            self.info.value = self._info_html(frame.status, view.text)
            self.body.value = "".join(parts)
            self.pause_button.description = "Resume" if paused else "Pause"
            self.pause_button.icon = "play" if paused else "pause"
            if final:
                self.pause_button.disabled = True
                self.stop_button.disabled = True
        if final or self.plot_throttle.ready(frame.taken_at):
            self._redraw_plot(frame.taken_at)

    def _redraw_plot(self, now: float) -> None:
        if self.history.version == self._plotted_version or self.history.depth() < 2:
            return
        if self.history.span() < _PLOT_MIN_SPAN:
            # a run shorter than this gets its summary but no plot: a rate curve over a
            # fraction of a second says nothing, and rendering one costs ~25 ms of the loop
            return
        if self._figure is None:
            if self._preload is not None:
                self._preload.join()  # normally long finished by the first plot
                self._preload = None
            self._setup_figure()  # one-time set-up: not part of the redraw cost
        started = time.perf_counter()
        png = self._render_png(now)
        self._plotted_version = self.history.version
        if self.plot is None:
            self.plot = widgets.Image(
                value=png,
                format="png",
                layout=_shared("plot", lambda: widgets.Layout(max_width="560px")),
            )
            self.widget.children = (*self.widget.children, self.plot)
        else:
            self.plot.value = png
        self.plot_throttle.done(now, cost=time.perf_counter() - started)

    def _setup_figure(self) -> None:
        # a bare Figure on an Agg canvas: no pyplot, no global state, no inline-backend capture
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._figure = Figure(figsize=(7, 1.9), dpi=72)
        self._canvas = FigureCanvasAgg(self._figure)
        self._axes = self._figure.add_subplot()
        self._axes.set_ylabel("items/s", fontsize=8)
        self._axes.set_xlabel("seconds ago", fontsize=7)
        self._axes.tick_params(labelsize=7)
        self._axes.grid(alpha=0.3)
        self._figure.subplots_adjust(left=0.1, right=0.98, bottom=0.22, top=0.95)

    def _render_png(self, now: float) -> bytes:
        ax = self._axes
        series = self.history.series()
        for name, (ts, rates) in series.items():
            line = self._lines.get(name)
            if line is None:
                (line,) = ax.plot([], [], lw=1.3, label=name)
                self._lines[name] = line
                ax.legend(loc="upper left", fontsize=7, frameon=False)
            line.set_data([t - now for t in ts], rates)
        first = min((ts[0] for ts, _ in series.values() if ts), default=now)
        ax.set_xlim(-min(_PLOT_SPAN, max(10.0, now - first)), 0.0)
        top = max((max(rates) for _, rates in series.values() if rates), default=0.0)
        ax.set_ylim(0.0, top * 1.1 if top > 0 else 1.0)  # set explicitly: autoscale stays off
        self._canvas.draw()
        from PIL import Image

        width, height = self._canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), self._canvas.buffer_rgba())
        out = io.BytesIO()
        image.save(out, format="png", compress_level=1)
        return out.getvalue()

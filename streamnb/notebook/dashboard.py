"""The live dashboard of a run: a thin ipywidgets view over :class:`RunFrame`.

It shows only what the run's snapshots say (monitors' stage table, buffer gauges, concurrent
stages with a cluster link, resilient sources' reconnects and failures, gRPC call counters,
keyed window stages' windows, keys, late items and watermark), never a live object of the run.

Every decision (texts, colours, fractions, what to plot, when to redraw) comes from the pure
helpers in :mod:`streamnb.notebook._format`; this module only copies their results into
widgets. The runner calls :meth:`Dashboard.update` from a timer a few times a second (never per
item); each widget's changes are grouped with ``hold_sync`` and traitlets only sends traits
whose value changed, so a refresh costs a handful of comm messages whatever the item rate. The
throughput plot is a :class:`~streamnb.notebook.chart.LiveChart` (anywidget, a canvas in the
browser): each refresh adds one rate point per stage and the chart sends only those new points,
at most ``MAX_RATE`` times a second, keeping a bounded history (``_PLOT_SPAN`` seconds).

Example (in a notebook; normally :func:`streamnb.notebook.start` builds it for you)::

    dash = Dashboard("etl", on_stop=run.stop, on_pause=run.toggle_pause)
    display(dash.widget)
    dash.update(frame)
"""

from __future__ import annotations

import html
import math
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
    ThroughputHistory,
    buffer_gauges,
    buffer_gauges_html,
    concurrent_html,
    keyed_rows,
    keyed_table_html,
    progress_for,
    recovery_html,
    stage_rows,
    stage_table_html,
    window_table_html,
)
from .chart import MAX_RATE, LiveChart

__all__ = ["Dashboard"]

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


class Dashboard:
    """One run's widget: progress bar, pause/stop, status line, stages, buffer gauges, plot, tail.

    ``on_stop`` / ``on_pause`` are called by the buttons (in the kernel, when the frontend sends
    the click). ``refresh`` (Hz) sizes the throughput history and the chart's bound;
    ``show_window`` rows of the window tail are shown.
    """

    def __init__(
        self,
        name: str,
        *,
        on_stop: Callable[[], None] | None = None,
        on_pause: Callable[[], None] | None = None,
        refresh: float = 4.0,
        show_window: int = 5,
    ) -> None:
        self.name = name
        self.history = ThroughputHistory(maxlen=max(8, int(_PLOT_SPAN * refresh) + 2))
        self.show_window = show_window
        self._refresh_rate = refresh
        self._plotted: dict[str, float] = {}  # stage -> time of its last point given the chart
        self._on_stop = on_stop
        self._on_pause = on_pause
        self.closed = False

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
        #: the throughput chart, created (and added below the tables) with the first rate point
        self.chart: LiveChart | None = None
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
        counts = {name: snap.items for name, snap in frame.stages.items()}
        if not counts:
            counts = {self.name: frame.items}
        self.history.add(frame.taken_at, counts)
        parts = [
            stage_table_html(stage_rows(frame.stages)),
            buffer_gauges_html(buffer_gauges(frame.buffers)),
            concurrent_html(frame.concurrent.values()),
            keyed_table_html(keyed_rows(frame.keyed.values())),
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
        self._plot(frame.taken_at, final=final)

    def _plot(self, now: float, *, final: bool) -> None:
        """Give the chart the rate points it has not had yet (one per stage per refresh)."""
        series = self.history.series()
        if not series:
            return
        if self.chart is None:
            self.chart = LiveChart(
                x="t",
                y="rate",
                by="stage",
                title="throughput (items/s)",
                max_points=self.history.maxlen,
                rate=min(MAX_RATE, self._refresh_rate),
                height=150,
                time_axis=True,
            )
            self.widget.children = (*self.widget.children, self.chart.widget)
        offset = time.time() - now  # monotonic -> wall clock, for the chart's time axis
        for name, (ts, rates) in series.items():
            last = self._plotted.get(name, -math.inf)
            start = len(ts)
            while start > 0 and ts[start - 1] > last:
                start -= 1
            for t, r in zip(ts[start:], rates[start:], strict=True):
                self.chart.add({"t": t + offset, "rate": r, "stage": name})
            if start < len(ts):
                self._plotted[name] = ts[-1]
        if final:
            self.chart.flush()

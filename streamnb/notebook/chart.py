"""A live line/bar chart of *your* columns, for every notebook frontend.

:class:`LiveChart` plots ``y`` against ``x`` for rows you give it (dicts: the rows a keyed
window emits, or any item), one line (or bar group) per value of ``by``. It is an
ipywidgets-protocol widget built with anywidget and a small ES module (``chart.js``, a
``<canvas>``, no CDN), so it works in JupyterLab 4, Notebook 7, VS Code and Colab.

Cost model: :meth:`LiveChart.add` only appends the point to two bounded buffers; the points
go to the browser at a fixed rate (``rate`` <= 4 Hz) as one custom message holding *only the
new points*. Nothing is redrawn per item and the series is never resent per refresh, so the
number of messages depends on how long the run lasts, not on how many rows it has
(``benchmarks/bench_windows.py``: ``chart_messages``). Both sides keep at most
``max_points`` points per series and ``max_series`` series; a view that (re)renders asks
for the bounded history once.

A saved notebook keeps no live state: :meth:`LiveChart.plot` draws the same points with
matplotlib (a static ``Figure``, no pyplot) and :meth:`LiveChart.to_pandas` gives the table.

Example (in a notebook)::

    chart = LiveChart(x="window_end", y="count", by="kind", title="events per second")
    chart                                   # display it
    engine = KeyedWindows(tumbling(1.0), by="kind", time="ts")
    task = asyncio.create_task(chart.feed(keyed_windows(events, engine)))   # it moves
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import math
import time
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anywidget
import traitlets

from .._log import get_logger
from .._validate import check_choice, check_int, check_number
from ..errors import ArgumentTypeError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["MAX_RATE", "ChartWidget", "LiveChart"]

_log = get_logger("streamnb.notebook.chart")

#: The highest refresh rate a chart accepts (messages per second).
MAX_RATE = 4.0
_ESM = Path(__file__).with_name("chart.js")


class ChartWidget(anywidget.AnyWidget):
    """The widget half of :class:`LiveChart` (configuration traits; points go as messages)."""

    _esm = _ESM
    kind = traitlets.Unicode("line").tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    y_label = traitlets.Unicode("").tag(sync=True)
    time_axis = traitlets.Bool(False).tag(sync=True)
    max_points = traitlets.Int(1000).tag(sync=True)
    height = traitlets.Int(240).tag(sync=True)
    hidden_series = traitlets.Int(0).tag(sync=True)


def _as_float(value: Any) -> float | None:
    if value.__class__ is float or value.__class__ is int:
        return float(value)
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)  # numpy scalars, Decimal, ...
    except (TypeError, ValueError):
        raise ArgumentTypeError(
            f"LiveChart: expected a number or a datetime, got {value!r} ({type(value).__name__})"
        ) from None


def _getter(arg: str, spec: Any) -> Callable[[Any], Any]:
    if isinstance(spec, str):
        key = spec
        return lambda row: row[key]
    if callable(spec):
        fn: Callable[[Any], Any] = spec
        return fn
    raise ArgumentTypeError(f"LiveChart({arg}={spec!r}): expected a column name or a function")


class LiveChart:
    """A live chart of ``y`` against ``x`` per ``by`` value (see the module docstring).

    ``x``/``y``/``by`` are column names of dict rows or functions of the row. ``kind`` is
    ``"line"`` or ``"bar"``. ``time_axis`` formats x as wall-clock time (epoch seconds or
    datetimes); by default it is on when ``x`` names a time column (``window_*``, ``*time*``,
    ``*_at``). Rows whose ``y`` is None/NaN are counted in ``skipped`` and not drawn.
    """

    def __init__(
        self,
        x: str | Callable[[Any], Any] = "window_end",
        y: str | Callable[[Any], Any] = "count",
        by: str | Callable[[Any], Any] | None = None,
        *,
        kind: Literal["line", "bar"] = "line",
        title: str | None = None,
        max_points: int = 1000,
        max_series: int = 12,
        rate: float = MAX_RATE,
        height: int = 240,
        time_axis: bool | None = None,
    ) -> None:
        self._x = _getter("x", x)
        self._y = _getter("y", y)
        self._by = None if by is None else _getter("by", by)
        check_choice("LiveChart", "kind", kind, ("line", "bar"))
        self.max_points = check_int("LiveChart", "max_points", max_points, minimum=2)
        self.max_series = check_int("LiveChart", "max_series", max_series, minimum=1)
        self.rate = check_number(
            "LiveChart", "rate", rate, minimum=0.0, exclusive=True, maximum=MAX_RATE
        )
        check_int("LiveChart", "height", height, minimum=80)
        if time_axis is None:
            name = x if isinstance(x, str) else ""
            time_axis = name.startswith("window_") or "time" in name or name.endswith("_at")
        if not isinstance(time_axis, bool):
            raise ArgumentTypeError(f"LiveChart(time_axis={time_axis!r}): expected a bool")
        self._scale = 1000.0 if time_axis else 1.0  # the ES module takes milliseconds for time
        y_label = y if isinstance(y, str) else getattr(y, "__name__", "y")
        self.widget = ChartWidget(
            kind=kind,
            title=title if title is not None else f"{y_label} by {by}" if by else y_label,
            y_label=y_label,
            time_axis=time_axis,
            max_points=max_points,
            height=height,
        )
        self.widget.on_msg(self._on_msg)
        self._series: dict[Any, int] = {}
        self._names: list[Any] = []
        self._new_names: list[Any] = []
        self._hidden: set[Any] = set()  # keys beyond max_series (bounded by what they cost)
        self._history: list[deque[tuple[float, float]]] = []
        self._pending: deque[tuple[int, float, float]] = deque(
            maxlen=self.max_points * self.max_series
        )
        self._last_send = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        #: Rows received, rows not drawn (y missing), rows of series beyond max_series.
        self.rows = 0
        self.skipped = 0
        self.hidden_rows = 0
        #: Custom messages sent to the browser (points and history replies).
        self.messages = 0

    # -- feeding (the per-row path: two appends and a timer check) ----------------------------
    def add(self, row: Any) -> None:
        """Queue one row's point; it reaches the browser at the next refresh (<= ``rate`` Hz)."""
        self.rows += 1
        y = _as_float(self._y(row))
        if y is None or y != y:
            self.skipped += 1
            return
        key = None if self._by is None else self._by(row)
        s = self._series.get(key)
        if s is None:
            s = self._new_series(key)
            if s < 0:
                return
        x = _as_float(self._x(row))
        if x is None or x != x:
            self.skipped += 1
            return
        x *= self._scale
        self._pending.append((s, x, y))
        self._history[s].append((x, y))
        if self._timer is None:
            self._schedule()

    def extend(self, rows: Iterable[Any]) -> None:
        """:meth:`add` every row."""
        for row in rows:
            self.add(row)

    async def feed(self, rows: AsyncIterable[Any]) -> int:
        """Add every row of an async iterable (a Stream, a generator); returns the count."""
        n = 0
        async for row in rows:
            self.add(row)
            n += 1
        self.flush()
        return n

    def _new_series(self, key: Any) -> int:
        if len(self._names) >= self.max_series:
            self.hidden_rows += 1
            if key not in self._hidden:
                self._hidden.add(key)
                self.widget.hidden_series = len(self._hidden)
            return -1
        s = len(self._names)
        self._series[key] = s
        self._names.append(key)
        self._new_names.append(key)
        self._history.append(deque(maxlen=self.max_points))
        return s

    def _schedule(self) -> None:
        now = time.monotonic()
        delay = self._last_send + 1.0 / self.rate - now
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a plain script): send when the rate allows
            if delay <= 0:
                self.flush()
            return
        self._timer = loop.call_later(max(0.0, delay), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Send the queued points now (one message; nothing if none are queued)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending or self._closed:
            return
        pts = list(self._pending)
        self._pending.clear()
        msg: dict[str, Any] = {
            "type": "points",
            "s": [p[0] for p in pts],
            "x": [p[1] for p in pts],
            "y": [p[2] for p in pts],
        }
        if self._new_names:
            msg["series"] = [_label(n) for n in self._names]
            self._new_names = []
        self._send(msg)

    def _send(self, msg: dict[str, Any]) -> None:
        self._last_send = time.monotonic()
        self.messages += 1
        self.widget.send(msg)

    def _on_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "hello":
            # a view (re)rendered: give it the bounded history, once
            s: list[int] = []
            xs: list[float] = []
            ys: list[float] = []
            for i, hist in enumerate(self._history):
                for x, y in hist:
                    s.append(i)
                    xs.append(x)
                    ys.append(y)
            self._pending.clear()
            self._new_names = []
            self._send(
                {
                    "type": "reset",
                    "series": [_label(n) for n in self._names],
                    "s": s,
                    "x": xs,
                    "y": ys,
                }
            )

    # -- reading ---------------------------------------------------------------------------
    @property
    def points(self) -> int:
        """Points kept (at most ``max_points`` per series)."""
        return sum(len(h) for h in self._history)

    def to_pandas(self) -> pd.DataFrame:
        """The kept points: columns ``series``, ``x``, ``y`` (x as UTC times on a time axis)."""
        import pandas as pd

        rows = [
            (name, x / self._scale, y)
            for name, hist in zip(self._names, self._history, strict=True)
            for x, y in hist
        ]
        df = pd.DataFrame(rows, columns=["series", "x", "y"])
        if self._scale != 1.0:
            df["x"] = pd.to_datetime(df["x"], unit="s", utc=True)
        return df

    def plot(self) -> Figure:
        """The kept points as a static matplotlib Figure (the saved-notebook picture)."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(7, 2.8), dpi=100)
        ax = fig.add_subplot(1, 1, 1)
        df = self.to_pandas()
        for name, part in df.groupby("series", sort=False, dropna=False):
            label = _label(name)
            if self.widget.kind == "bar":
                ax.bar(part["x"], part["y"], label=label, alpha=0.8)
            else:
                ax.plot(part["x"], part["y"], label=label, marker="." if len(part) < 60 else "")
        ax.set_title(self.widget.title)
        ax.set_ylabel(self.widget.y_label)
        if len(self._names) > 1:
            ax.legend(loc="upper left", fontsize="small")
        fig.tight_layout()
        return fig

    def close(self) -> None:
        """Send what is queued, stop refreshing and close the widget."""
        self.flush()
        self._closed = True
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return (
            f"LiveChart(rows={self.rows}, points={self.points}, series={len(self._names)}, "
            f"messages={self.messages})"
        )


def _label(name: Any) -> Any:
    if name is None or isinstance(name, str | int | float | bool):
        return name
    return str(name)

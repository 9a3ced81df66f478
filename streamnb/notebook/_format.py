"""Pure formatting and state for the run views (dashboard widget, text line).

Nothing here imports Jupyter, ipywidgets or matplotlib and nothing does I/O: each function
turns plain values (counts, seconds, the run's frozen snapshots from
:mod:`streamnb.metrics` - ``MetricsSnapshot``, ``BufferSnapshot``, ``ConcurrencySnapshot``,
``ResilientSnapshot``, ``CallSnapshot``, ``KeyedWindowSnapshot``) into strings or small
frozen records that the thin views copy into widgets or print. No live object of a run (a
buffer, a worker pool, a call) is ever read here: only its snapshot. That keeps every
decision (what the bar says, which colour it is, when to redraw) unit-testable without a kernel.

Example::

    view = progress_view(status="running", items=500, elapsed=2.0, total=1000)
    view.fraction            # 0.5
    view.text                # '500/1,000 items · 250/s · 0:02 elapsed · ETA 0:02'
"""

from __future__ import annotations

import html
import math
import numbers
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import InvalidTransitionError
from ..metrics import (
    BufferSnapshot,
    CallSnapshot,
    ConcurrencySnapshot,
    KeyedWindowSnapshot,
    MetricsSnapshot,
    ResilientSnapshot,
    TaskSnapshot,
)
from ..recovery import safe_repr
from ..window import flatten_item

__all__ = [
    "BarStyle",
    "BufferGauge",
    "InvalidTransitionError",
    "KeyedRow",
    "ProgressView",
    "RunFrame",
    "RunStatus",
    "StageRow",
    "Throttle",
    "ThroughputHistory",
    "buffer_gauges",
    "buffer_gauges_html",
    "call_lines",
    "check_transition",
    "concurrent_html",
    "concurrent_lines",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_epoch_time",
    "format_latency",
    "format_rate",
    "format_value",
    "format_watermark",
    "keyed_lines",
    "keyed_rows",
    "keyed_table_html",
    "progress_for",
    "progress_view",
    "recovery_html",
    "resilient_lines",
    "stage_rows",
    "stage_table_html",
    "task_figures",
    "window_table_html",
]

RunStatus = Literal["pending", "running", "paused", "done", "failed", "cancelled"]
BarStyle = Literal["", "info", "success", "warning", "danger"]

#: Which status a run may move to from each status (finished runs never change again).
_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"running", "done", "failed", "cancelled"}),
    "running": frozenset({"paused", "done", "failed", "cancelled"}),
    "paused": frozenset({"running", "done", "failed", "cancelled"}),
    "done": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled"})

_BAR_STYLE: dict[str, BarStyle] = {
    "pending": "",
    "running": "info",
    "paused": "warning",
    "done": "success",
    "failed": "danger",
    "cancelled": "warning",
}


def check_transition(old: RunStatus, new: RunStatus) -> RunStatus:
    """Return ``new`` if a run in status ``old`` may move to it, else raise.

    Example::

        check_transition("running", "paused")   # 'paused'
        check_transition("done", "running")     # raises InvalidTransitionError
    """
    if new not in _TRANSITIONS[old]:
        raise InvalidTransitionError(
            f"run status cannot change from {old!r} to {new!r} "
            f"(allowed from {old!r}: {sorted(_TRANSITIONS[old]) or 'none, it is finished'})"
        )
    return new


# -- numbers -----------------------------------------------------------------------------------
def format_count(n: int) -> str:
    """An item count with thousands separators: ``1234567`` -> ``'1,234,567'``."""
    return f"{n:,}"


def _si(x: float) -> str:
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor * 0.9995:
            return f"{x / factor:.3g}{suffix}"
    if x == 0 or abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def format_rate(rate: float | None, unit: str = "/s") -> str:
    """A rate with an SI suffix and 3 significant digits: ``12345.6`` -> ``'12.3k/s'``."""
    if rate is None or math.isnan(rate):
        return "?" + unit
    return _si(rate) + unit


def format_duration(seconds: float | None) -> str:
    """``m:ss`` or ``h:mm:ss``, like a clock; ``None`` (unknown) -> ``'?'``."""
    if seconds is None or math.isnan(seconds) or math.isinf(seconds):
        return "?"
    s = max(0, round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_latency(seconds: float | None) -> str:
    """A latency in µs, ms or s with 3 significant digits; ``None`` -> ``'-'``."""
    if seconds is None:
        return "-"
    a = abs(seconds)
    if a < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if a < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def format_bytes(n: float) -> str:
    """A byte count in B, kB, MB, GB (powers of 1000)."""
    return _si(n) + "B"


#: significant digits a table cell shows of a float
_SIG_DIGITS = 6


def format_value(value: Any) -> str | None:
    """A number as a table cell shows it, or None when ``value`` is not a number.

    Floats get at most 6 significant digits (never ``0.30000000000000004``), with thousands
    separators from 10,000 up and an exponent only below 1e-4 or from 1e15; ints get thousands
    separators from 10,000 up (an id or a year below that stays plain). Bools are not numbers
    here. Why: the window tail is read by a person, a 16-digit float is noise.

    Example::

        format_value(0.1 + 0.2)          # '0.3'
        format_value(12345.678901)       # '12,345.7'
        format_value(1234)               # '1234'
        format_value(1234567)            # '1,234,567'
        format_value("x")                # None
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        n = int(value)
        return f"{n:,}" if abs(n) >= 10_000 else str(n)
    x = float(value)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    a = abs(x)
    if a == 0.0:
        return "0"
    if a < 1e-4 or a >= 1e15:
        return f"{x:.{_SIG_DIGITS}g}"
    digits = math.floor(math.log10(a)) + 1  # digits before the point (<= 0 below 1)
    decimals = max(0, _SIG_DIGITS - digits)
    text = f"{x:,.{decimals}f}" if a >= 10_000 else f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# -- the progress bar --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProgressView:
    """What the progress bar shows: ``fraction`` in [0, 1] (None: no total, indeterminate)."""

    status: RunStatus
    fraction: float | None
    bar_style: BarStyle
    label: str
    text: str
    error: str | None


def progress_view(
    *,
    status: RunStatus,
    items: int,
    elapsed: float,
    total: int | None = None,
    rate: float | None = None,
    error: str | None = None,
    name: str | None = None,
) -> ProgressView:
    """The progress bar's content for a run that has delivered ``items`` in ``elapsed`` s.

    ``rate`` defaults to the mean rate; ETA is shown while running with a known total. A done
    run fills the bar (green), a failed one turns red and carries the error message.

    Example::

        progress_view(status="failed", items=3, elapsed=1.0, error="ValueError: bad")
        # ProgressView(status='failed', fraction=None, bar_style='danger', ...)
    """
    if rate is None:
        rate = items / elapsed if elapsed > 0 else 0.0
    fraction: float | None = None
    if total is not None and total > 0:
        fraction = min(1.0, items / total)
    elif total == 0:
        fraction = 1.0
    if status == "done" and fraction is None:
        fraction = 1.0
    count = (
        f"{format_count(items)}/{format_count(total)}"
        if total is not None
        else (format_count(items))
    )
    parts = [f"{count} items", format_rate(rate), f"{format_duration(elapsed)} elapsed"]
    if status in ("running", "paused") and total is not None:
        eta = max(0.0, (total - items) / rate) if rate > 0 else None
        parts.append(f"ETA {format_duration(eta)}")
    text = " · ".join(parts)
    if error:
        text = f"{text} — {error}"
    label = name or "run"
    return ProgressView(
        status=status,
        fraction=fraction,
        bar_style=_BAR_STYLE[status],
        label=label,
        text=text,
        error=error,
    )


@dataclass(frozen=True, slots=True)
class RunFrame:
    """Everything a view shows at one refresh: a plain, immutable record built by the runner.

    ``items`` counts what the stream delivered to the run; the snapshot mappings hold what
    the run registered, by kind and in pipeline order (``it.snapshots(kind)``): ``stages`` the
    monitors, ``buffers``, ``concurrent`` stages, ``resilient`` sources and gRPC ``calls``.
    ``window_tail`` the last ``(wall_time, item)`` pairs of the run's window (empty without
    one); ``taken_at`` is ``time.monotonic()``.
    """

    name: str
    status: RunStatus
    items: int
    elapsed: float
    total: int | None
    error: str | None
    stages: Mapping[str, MetricsSnapshot]
    taken_at: float
    window_tail: tuple[tuple[float, Any], ...] = ()
    buffers: Mapping[str, BufferSnapshot] = field(default_factory=dict)
    concurrent: Mapping[str, ConcurrencySnapshot] = field(default_factory=dict)
    resilient: Mapping[str, ResilientSnapshot] = field(default_factory=dict)
    calls: Mapping[str, CallSnapshot] = field(default_factory=dict)
    #: the keyed window stages (``it.snapshots("window")``)
    keyed: Mapping[str, KeyedWindowSnapshot] = field(default_factory=dict)


# -- concurrent stages, resilient sources, gRPC calls: one compact line each ------------------
def _concurrent_figures(c: ConcurrencySnapshot) -> str:
    text = (
        f"{c.in_flight}/{c.concurrency} in flight (max {c.max_in_flight}), "
        f"{format_count(c.completed)} done"
    )
    if c.failed:
        text += f", {format_count(c.failed)} failed"
    if c.executor:
        text += f" · {c.executor}"
    if c.tasks is not None:
        text += f": {task_figures(c.tasks)}"
    return text


def task_figures(t: TaskSnapshot) -> str:
    """How a stage's executor grouped its calls into tasks, in a few words: ``40 tasks
    (10.0 per task, 51.2 ms each, ~6.1 ms overhead), 4 on the cluster``; the means appear
    once a task finished, the overhead once the executor estimated it."""
    text = f"{format_count(t.sent)} task{'' if t.sent == 1 else 's'}"
    per = []
    if t.items_per_task is not None:
        per.append(f"{t.items_per_task:.1f} per task")
    if t.task_seconds is not None:
        per.append(f"{format_latency(t.task_seconds)} each")
    if t.overhead_seconds is not None:
        per.append(f"~{format_latency(t.overhead_seconds)} overhead")
    if per:
        text += f" ({', '.join(per)})"
    return f"{text}, {format_count(t.in_flight)} on the cluster"


def concurrent_lines(snaps: Iterable[ConcurrencySnapshot]) -> list[str]:
    """``map(f): 3/4 in flight (max 4), 120 done, 1 failed · dask`` per concurrent stage,
    then, for an executor that groups calls into tasks, ``: 12 tasks (10.0 per task, ...)``
    (:func:`task_figures`)."""
    return [f"{c.name}: {_concurrent_figures(c)}" for c in snaps]


def concurrent_html(snaps: Iterable[ConcurrencySnapshot]) -> str:
    """:func:`concurrent_lines` as HTML, with a link to the cluster's dashboard when the
    stage's executor has one (a Dask cluster); nothing here imports Dask."""
    out = []
    for c in snaps:
        link = ""
        if c.dashboard_link:
            url = html.escape(c.dashboard_link, quote=True)
            link = f' · <a href="{url}" target="_blank">cluster dashboard</a>'
        out.append(
            f'<div class="streamnb-concurrent"><code>{html.escape(c.name)}</code>: '
            f"{html.escape(_concurrent_figures(c))}{link}</div>"
        )
    return "".join(out)


def resilient_lines(snaps: Iterable[ResilientSnapshot]) -> list[str]:
    """``feed: 3,000 delivered · 2 reconnects after 2 failures (last: ...)`` per source."""
    lines = []
    for r in snaps:
        line = f"{r.name}: {format_count(r.delivered)} delivered"
        line += f" · {format_count(r.reconnects)} reconnect{'s' if r.reconnects != 1 else ''}"
        line += f" after {format_count(r.failures)} failure{'s' if r.failures != 1 else ''}"
        if r.last_error:
            line += f" (last: {_short(r.last_error, 80)})"
        lines.append(line)
    return lines


def call_lines(snaps: Iterable[CallSnapshot]) -> list[str]:
    """``/pkg.Svc/Method (server_stream): 3,000 received (1.2k/s), 1 sent, ... OK`` per call."""
    lines = []
    for c in snaps:
        line = (
            f"{c.method or c.name} ({c.shape}): {format_count(c.received)} received "
            f"({format_rate(c.rate)}, {format_bytes(c.bytes_received)}), "
            f"{format_count(c.sent)} sent"
        )
        if c.errors or c.decode_errors:
            line += f", {format_count(c.errors)} errors ({format_count(c.decode_errors)} decode)"
        if c.reconnects:
            line += f", {format_count(c.reconnects)} reconnects"
        line += f" · {c.code or 'running'}"
        lines.append(line)
    return lines


def recovery_html(resilient: Iterable[ResilientSnapshot], calls: Iterable[CallSnapshot]) -> str:
    """The resilient sources' and gRPC calls' lines as HTML; a source that has failed is
    orange, a call that ended with an error code red; '' when there are none."""
    out = []
    for r, line in zip(rs := list(resilient), resilient_lines(rs), strict=True):
        colour = "color:#ef6c00;" if r.failures else ""
        out.append(f'<div class="streamnb-resilient" style="{colour}">{html.escape(line)}</div>')
    for c, line in zip(cs := list(calls), call_lines(cs), strict=True):
        colour = "color:#c62828;" if c.code not in (None, "OK") else ""
        out.append(f'<div class="streamnb-call" style="{colour}">{html.escape(line)}</div>')
    if not out:
        return ""
    return '<div style="font-family:monospace;font-size:12px;">' + "".join(out) + "</div>"


def progress_for(frame: RunFrame) -> ProgressView:
    """The progress bar of a frame.

    With the run's own ``total`` the bar counts delivered items; without one, the first
    monitored stage that knows its total (``monitor(total=...)``) drives the bar; otherwise the
    bar only fills when the run is done.
    """
    items, total, rate = frame.items, frame.total, None
    if total is None:
        for snap in frame.stages.values():
            if snap.total is not None:
                items, total, rate = snap.items, snap.total, snap.rate
                break
    return progress_view(
        status=frame.status,
        items=items,
        elapsed=frame.elapsed,
        total=total,
        rate=rate,
        error=frame.error,
        name=frame.name,
    )


# -- stages and buffers ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StageRow:
    """One monitored stage, formatted for the stage table."""

    name: str
    status: str
    items: str
    rate: str
    errors: str
    dropped: str
    latency: str
    failed: bool


def stage_rows(snapshots: Mapping[str, MetricsSnapshot]) -> list[StageRow]:
    """One :class:`StageRow` per snapshot, in pipeline order (the mapping's order)."""
    rows = []
    for snap in snapshots.values():
        rate = snap.window_rate if snap.status == "running" else snap.rate
        rows.append(
            StageRow(
                name=snap.name,
                status=snap.status,
                items=format_count(snap.items),
                rate=format_rate(rate),
                errors=format_count(snap.errors),
                dropped=format_count(snap.dropped),
                latency=format_latency(snap.latency),
                failed=snap.status == "failed",
            )
        )
    return rows


_TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px;"
_CELL = "padding:1px 10px;text-align:right;"
_HEAD = _CELL + "border-bottom:1px solid #999;"


def stage_table_html(rows: Sequence[StageRow]) -> str:
    """The stage table as an HTML fragment (escaped); empty string when there is no stage."""
    if not rows:
        return ""
    heads = ("stage", "status", "items", "rate", "errors", "dropped", "latency")
    out = [f'<table class="streamnb-stages" style="{_TABLE_STYLE}"><tr>']
    out += [f'<th style="{_HEAD}">{h}</th>' for h in heads]
    out.append("</tr>")
    for r in rows:
        colour = "color:#c62828;" if r.failed else ""
        cells = (r.name, r.status, r.items, r.rate, r.errors, r.dropped, r.latency)
        out.append("<tr>")
        out += [f'<td style="{_CELL}{colour}">{html.escape(c)}</td>' for c in cells]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class BufferGauge:
    """One buffer's fill level: ``fraction`` = depth/capacity in [0, 1]."""

    name: str
    depth: int
    capacity: int
    high_water: int
    fraction: float
    text: str
    bar_style: BarStyle


def buffer_gauges(snapshots: Mapping[str, BufferSnapshot]) -> list[BufferGauge]:
    """A gauge per buffer of the run (``it.snapshots("buffer")``), in pipeline order."""
    gauges = []
    for snap in snapshots.values():
        cap = snap.capacity
        depth = snap.depth
        high = snap.high_water
        frac = min(1.0, depth / cap) if cap > 0 else 0.0
        style: BarStyle = "danger" if frac >= 1.0 else ("warning" if frac >= 0.8 else "info")
        text = f"{format_count(depth)}/{format_count(cap)} · high-water {format_count(high)}"
        if snap.dropped:
            text += f" · dropped {format_count(snap.dropped)}"
        gauges.append(BufferGauge(snap.name, depth, cap, high, frac, text, style))
    return gauges


_GAUGE_COLOUR = {"info": "#42a5f5", "warning": "#ffa726", "danger": "#ef5350", "": "#90a4ae"}


def buffer_gauges_html(gauges: Sequence[BufferGauge], *, width: int = 200) -> str:
    """The gauges as HTML bars (fill = depth, a dark tick = high-water); '' without buffers.

    Plain HTML in one widget rather than a progress widget per buffer: one message per refresh
    for all buffers, nothing to create when a buffer appears.
    """
    if not gauges:
        return ""
    out = ['<div class="streamnb-buffers" style="font-family:monospace;font-size:12px;">']
    for g in gauges:
        fill = round(g.fraction * width)
        mark = round(min(1.0, g.high_water / g.capacity) * width) if g.capacity else 0
        colour = _GAUGE_COLOUR[g.bar_style]
        out.append(
            '<div style="display:flex;align-items:center;gap:8px;margin:2px 0;">'
            f'<span style="min-width:90px">{html.escape(g.name)}</span>'
            f'<span style="position:relative;display:inline-block;width:{width}px;height:10px;'
            'background:#eceff1;border-radius:2px;">'
            f'<span style="position:absolute;left:0;top:0;height:10px;width:{fill}px;'
            f'background:{colour};border-radius:2px;"></span>'
            f'<span title="high-water" style="position:absolute;left:{max(0, mark - 2)}px;top:-2px;'
            'width:2px;height:14px;background:#37474f;"></span></span>'
            f"<span>{html.escape(g.text)}</span></div>"
        )
    out.append("</div>")
    return "".join(out)


# -- keyed window stages ----------------------------------------------------------------------
#: a watermark at least this large is taken for epoch seconds (1973 on) and shown as a time
_EPOCH_FROM = 1e8
_EPOCH_UNTIL = 1e11  # year 5138: beyond it a number is not epoch seconds
_TIME_SUFFIXES = ("_time", "_start", "_end", "_at", "_ts", "timestamp")


def format_watermark(watermark: float | None) -> str:
    """A keyed stage's watermark: ``'-'`` before the first item; epoch seconds as the local
    time of day (``'12:00:01.500'``, like the window tail's arrival times); other event times
    (seconds from your own origin) as a number (``'12.5'``).

    Example::

        format_watermark(None)         # '-'
        format_watermark(12.5)         # '12.5'
    """
    if watermark is None:
        return "-"
    text = format_epoch_time(watermark)
    if text is not None:
        return text
    number = format_value(watermark)
    return number if number is not None else str(watermark)


def format_epoch_time(value: Any) -> str | None:
    """A number that looks like epoch seconds (1973 on) as the local time of day with
    milliseconds, else None. Why: ``window_end=1796186721.25`` read as ``1,796,186,721`` hides
    the only part that differs between rows.

    Example::

        format_epoch_time(12.5)                     # None (not epoch seconds)
        format_epoch_time(1_700_000_000.25)[-4:]    # '.250'
    """
    import datetime as _dt

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    x = float(value)
    if not (math.isfinite(x) and _EPOCH_FROM <= x < _EPOCH_UNTIL):
        return None
    return _dt.datetime.fromtimestamp(x).strftime("%H:%M:%S.%f")[:-3]


def _is_time_column(name: str) -> bool:
    """A column named for a point in time (``timestamp``, ``window_end``, ``sent_at``, ``t``)."""
    n = name.rsplit(".", 1)[-1].lower()
    return n in ("t", "ts", "time", "timestamp") or n.endswith(_TIME_SUFFIXES)


@dataclass(frozen=True, slots=True)
class KeyedRow:
    """One keyed window stage, formatted for the keyed table; ``has_late`` / ``has_evicted``
    say whether its late / evicted cells are highlighted."""

    name: str
    shape: str
    items: str
    closed: str
    open: str
    keys: str
    late: str
    evicted: str
    watermark: str
    has_late: bool
    has_evicted: bool


def keyed_rows(snaps: Iterable[KeyedWindowSnapshot]) -> list[KeyedRow]:
    """One :class:`KeyedRow` per keyed stage (``it.snapshots("window")``), in pipeline order.

    ``keys`` reads ``'<keys with open windows>/<max_keys>'``: how close the stage is to its
    bound.
    """
    return [
        KeyedRow(
            name=k.name,
            shape=k.shape,
            items=format_count(k.items),
            closed=format_count(k.closed),
            open=format_count(k.open),
            keys=f"{format_count(k.keys)}/{format_count(k.max_keys)}",
            late=format_count(k.late),
            evicted=format_count(k.evicted),
            watermark=format_watermark(k.watermark),
            has_late=k.late > 0,
            has_evicted=k.evicted > 0,
        )
        for k in snaps
    ]


def keyed_lines(snaps: Iterable[KeyedWindowSnapshot]) -> list[str]:
    """``per-second tumbling(1): 5,000 items, 42 closed, 3 open over 3/10,000 keys, 2 late,
    0 evicted, watermark 41.9`` per keyed stage (the text view's summary)."""
    return [
        f"{r.name} {r.shape}: {r.items} items, {r.closed} closed, {r.open} open over "
        f"{r.keys} keys, {r.late} late, {r.evicted} evicted, watermark {r.watermark}"
        for r in keyed_rows(snaps)
    ]


_LATE_CELL = "color:#c62828;font-weight:bold;"
_EVICTED_CELL = "color:#ef6c00;"


def keyed_table_html(rows: Sequence[KeyedRow]) -> str:
    """The keyed stages as an escaped HTML table, late items in bold red and evicted windows
    in orange once there are any; '' when the run has no keyed stage."""
    if not rows:
        return ""
    heads = (
        "keyed stage",
        "shape",
        "items",
        "closed",
        "open",
        "keys",
        "late",
        "evicted",
        "watermark",
    )
    out = [f'<table class="streamnb-keyed" style="{_TABLE_STYLE}margin-top:4px;"><tr>']
    out += [f'<th style="{_HEAD}">{h}</th>' for h in heads]
    out.append("</tr>")
    for r in rows:
        cells = (
            (r.name, ""),
            (r.shape, ""),
            (r.items, ""),
            (r.closed, ""),
            (r.open, ""),
            (r.keys, ""),
            (r.late, _LATE_CELL if r.has_late else ""),
            (r.evicted, _EVICTED_CELL if r.has_evicted else ""),
            (r.watermark, ""),
        )
        out.append("<tr>")
        out += [f'<td style="{_CELL}{extra}">{html.escape(c)}</td>' for c, extra in cells]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


# -- throughput history ------------------------------------------------------------------------
@dataclass(slots=True)
class ThroughputHistory:
    """Items/s per stage over the recent past, from successive snapshots (bounded).

    Each :meth:`add` takes the item counts of one refresh. The rate of a stage at a refresh is
    its item delta over the last ``smooth`` seconds of refreshes (at least one interval), not
    over the last interval alone: counts are read from the event loop, so a loop that was busy
    for half a second (a cell starting, a widget being built, an import) delivers the items
    that arrived meanwhile in one burst, and a single 0.25 s interval would show that catch-up
    as a spike of several times the true rate (the tour showed 2,800/s for a 1,000/s feed).
    A refresh right before such a burst is never the base of a later rate either. At most
    ``maxlen`` points are kept per stage.

    Example::

        h = ThroughputHistory(maxlen=240)
        h.add(0.0, {"src": 0}); h.add(1.0, {"src": 500})
        h.series()["src"]      # ([1.0], [500.0])
    """

    maxlen: int = 240
    #: refreshes closer than this to the previous point are merged into the next one: the
    #: final refresh right after a periodic one would otherwise draw a spike from a tiny dt
    min_dt: float = 0.05
    #: seconds of refreshes a rate is measured over (a stall and its catch-up burst cancel)
    smooth: float = 1.0
    _samples: dict[str, deque[tuple[float, int, bool]]] = field(default_factory=dict)
    _points: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)
    version: int = 0

    def add(self, t: float, counts: Mapping[str, int]) -> None:
        """Record the item counts of every stage at time ``t`` (seconds, monotonic)."""
        for name, items in counts.items():
            samples = self._samples.get(name)
            if samples is None:
                # bounded: one sample per refresh, a refresh is >= min_dt apart
                keep = max(4, int(self.smooth / self.min_dt) + 4) if self.min_dt > 0 else 64
                samples = self._samples[name] = deque(maxlen=keep)
            elif t - samples[-1][0] < self.min_dt:
                continue
            base = self._base(samples, t)
            prev = samples[-1] if samples else None
            samples.append((t, items, True))
            if base is None or prev is None:
                continue
            rate = max(0.0, (items - base[1]) / (t - base[0]))
            if (items - prev[1]) / (t - prev[0]) > 2.0 * rate > 0.0 and len(samples) >= 2:
                # a burst: the counts of the refresh before lagged behind the items that had
                # arrived (the loop was busy); that refresh is no base for a later rate, or the
                # burst would show as a spike once the lag leaves the smoothing window
                samples[-2] = (prev[0], prev[1], False)
            pts = self._points.get(name)
            if pts is None:
                pts = self._points[name] = deque(maxlen=self.maxlen)
            pts.append((t, rate))
            self.version += 1

    def _base(
        self, samples: deque[tuple[float, int, bool]], t: float
    ) -> tuple[float, int, bool] | None:
        # the newest sample at least `smooth` seconds old whose counts did not lag, else the
        # oldest such, else the oldest; the samples before it are no longer needed
        if not samples:
            return None
        chosen = -1
        for i in range(len(samples) - 1, -1, -1):
            st, _, ok = samples[i]
            if ok:
                chosen = i
                if t - st >= self.smooth:
                    break
        for _ in range(max(0, chosen)):
            samples.popleft()
        return samples[0]

    def series(self) -> dict[str, tuple[list[float], list[float]]]:
        """``name -> (times, rates)``, oldest first."""
        return {n: ([t for t, _ in p], [r for _, r in p]) for n, p in self._points.items()}

    def __len__(self) -> int:
        return sum(len(p) for p in self._points.values())

    def span(self) -> float:
        """Seconds covered by the longest series (0 with fewer than two points)."""
        return max((p[-1][0] - p[0][0] for p in self._points.values() if p), default=0.0)

    def depth(self) -> int:
        """The number of rate points of the longest series (a line needs 2)."""
        return max((len(p) for p in self._points.values()), default=0)


# -- throttling --------------------------------------------------------------------------------
@dataclass(slots=True)
class Throttle:
    """Decides when a periodic, costly action (a redraw) may run again.

    It runs at most every ``min_interval`` seconds, and never more than ``duty`` of the time: an
    action that took ``cost`` seconds waits at least ``cost / duty`` before the next one (a 20 ms
    plot render with ``duty=0.02`` runs at most once a second). Pass the clock's value in; the
    throttle reads no clock itself.

    Example::

        th = Throttle(min_interval=1.0)
        th.ready(0.0)        # True
        th.done(0.0, cost=0.01)
        th.ready(0.5)        # False
        th.ready(1.0)        # True
    """

    min_interval: float
    duty: float = 1.0
    _next: float = -math.inf

    def ready(self, now: float) -> bool:
        """True when the action may run at ``now``."""
        return now >= self._next

    def done(self, now: float, cost: float = 0.0) -> None:
        """Record that the action ran at ``now`` and took ``cost`` seconds."""
        wait = max(self.min_interval, cost / self.duty if self.duty > 0 else 0.0)
        self._next = now + wait


# -- window tail -------------------------------------------------------------------------------
def window_table_html(
    rows: Iterable[tuple[float, Any]], *, max_cols: int = 8, max_chars: int = 40
) -> str:
    """The tail of a window (``(wall_time, item)`` pairs) as a small escaped HTML table.

    Dict items spread over their (flattened) keys, others use one ``value`` column; long values
    are shortened to ``max_chars`` characters, at most ``max_cols`` columns are shown.
    """
    import datetime as _dt

    flat: list[tuple[float, dict[str, Any]]] = []
    cols: dict[str, None] = {}
    for t, item in rows:
        rec = flatten_item(item)
        flat.append((t, rec))
        for k in rec:
            if len(cols) < max_cols:
                cols.setdefault(k, None)
    if not flat:
        return ""
    heads = ["arrived", *cols]
    times = {c for c in cols if _is_time_column(c)}  # shown as times of day when epoch-like
    out = [f'<table class="streamnb-window" style="{_TABLE_STYLE}"><tr>']
    out += [f'<th style="{_HEAD}">{html.escape(str(h))}</th>' for h in heads]
    out.append("</tr>")
    for t, rec in flat:
        stamp = _dt.datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]
        cells = [stamp] + [_short(rec.get(c, ""), max_chars, c in times) for c in cols]
        out.append("<tr>")
        out += [f'<td style="{_CELL}">{html.escape(c)}</td>' for c in cells]
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _short(value: Any, max_chars: int, is_time: bool = False) -> str:
    # safe_repr: an item whose __repr__ raises must not break the table (it shows its type)
    if isinstance(value, str):
        text = value
    else:
        number = (format_epoch_time(value) if is_time else None) or format_value(value)
        text = number if number is not None else safe_repr(value, max_chars + 3)
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

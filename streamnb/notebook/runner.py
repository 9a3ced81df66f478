"""Run a Stream on the notebook's event loop: foreground, background, or from plain code.

* ``await run(stream)`` - in a cell (IPython's top-level await) or any coroutine: shows the live
  dashboard (or a text line outside a notebook) and returns a :class:`RunSummary`.
* ``start(stream)`` - schedules the run as a task on the running loop and returns a :class:`Run`
  handle at once: the cell ends, the kernel stays responsive (the buttons work) and later cells
  can inspect the live run (``handle.metrics()``, ``handle.to_pandas()``, ``await handle``).
* ``run_sync(stream)`` - the same from synchronous code: ``asyncio.run`` in a script, and
  ``nest_asyncio`` inside an already running loop (a notebook cell that is not async).

A run iterates with ``async with stream.open() as it`` so every path out of it (the end, a
failure, ``stop()``, the stop button, a kernel interrupt, Ctrl-C) closes the upstream tasks
(buffers' producers, gRPC calls). The consumer loop does no per-item widget or clock work: it
counts, and every few milliseconds (an adaptive item step) publishes the count, honours
pause/stop and yields to the loop so that the dashboard timer and button clicks get to run.

Runs started under the same ``name`` replace each other: starting one stops the previous one
first, so re-running a cell never leaks a run. Without a name, the id of the notebook cell (sent
by JupyterLab) is used when available.

Example::

    handle = start(Stream(source).map(parse).monitor("parsed"), name="etl")
    handle.pause(); handle.resume()
    summary = await handle          # RunSummary(status='done', items=..., ...)
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, Unpack

from .._clock import AdaptiveStep
from .._log import get_logger
from ..errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    NoWindowError,
    PipelineStoppedError,
    StreamnbError,
    UsageError,
)
from ..keyed import KeyedWindows
from ..metrics import (
    BufferSnapshot,
    CallSnapshot,
    ConcurrencySnapshot,
    KeyedWindowSnapshot,
    MetricsSnapshot,
    ResilientSnapshot,
    Snapshot,
)
from . import _env
from ._format import FINISHED, RunFrame, RunStatus, check_transition
from ._text import TextProgress, text_line

if TYPE_CHECKING:
    import pandas as pd

    from .._runstate import ObservableKind
    from ..recovery import DeadLetter
    from ..stream import RunOptions  # typing only: stream imports this module late
    from ..window import Window
    from .chart import LiveChart

__all__ = [
    "DEFAULT_REFRESH",
    "RUN_OPTION_NAMES",
    "NoWindowError",
    "Run",
    "RunSummary",
    "active_runs",
    "run",
    "run_sync",
    "start",
]

_log = get_logger("streamnb.notebook")

#: Dashboard refreshes per second unless ``refresh=`` says otherwise.
DEFAULT_REFRESH = 4.0
_CHECK_INTERVAL = 0.005  # target seconds between two looks at the clock (AdaptiveStep)
_YIELD_INTERVAL = 0.02  # the consumer lets the loop run at least this often
_MAX_CHECK_STEP = 1024

_S = TypeVar("_S", bound=Snapshot)
_RUNS: dict[str, Run] = {}
_counter = itertools.count(1)


#: RunOptions (defined with Stream, which types its run/start/run_sync with it) is the one
#: keyword list of a run; its keys are checked up front.
#: (Written out here: importing streamnb.stream at run time would close an import cycle;
#: a test checks that the two agree.)
RUN_OPTION_NAMES: frozenset[str] = frozenset({"name", "total", "refresh", "display", "window"})
_OPTION_NAMES = RUN_OPTION_NAMES


def _check_options(where: str, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise ArgumentTypeError(
            f"{where}() got unknown keyword(s) {', '.join(unknown)}; a run takes "
            f"{', '.join(sorted(_OPTION_NAMES))} (see streamnb.stream.RunOptions)"
        )


@dataclass(slots=True)
class _ChartFeed:
    """A chart fed from a window or keyed stage: its name and how far it has read."""

    chart: LiveChart
    window: str | None
    count: int = 0  # rows the window had received (the keyed stage emitted) at the last refresh
    error: StreamnbError | None = None


class _View(Protocol):
    def update(self, frame: RunFrame) -> None: ...

    def close(self, frame: RunFrame) -> None: ...


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How a run ended.

    ``items`` counts what the stream delivered; ``metrics`` holds the final snapshot of every
    monitored stage; ``result`` is the last item delivered (the final accumulation of a
    ``scan``/``batch`` pipeline), None when there was none; ``error`` the failure's message.
    """

    name: str
    status: RunStatus
    items: int
    elapsed: float
    metrics: Mapping[str, MetricsSnapshot] = field(default_factory=dict)
    result: Any = None
    error: str | None = None


class Run:
    """Handle on one run of a Stream (see :func:`start`).

    ``status`` is one of pending, running, paused, done, failed, cancelled. ``await handle``
    returns the :class:`RunSummary`, raises the failure's exception, or raises
    :class:`~streamnb.errors.PipelineStoppedError` (with ``.summary``) when it was stopped.
    In a notebook the handle displays as its dashboard. The keywords are :class:`RunOptions`
    (normally you call :func:`start` or :func:`run`, which build the handle).
    """

    def __init__(self, stream: Any, **options: Unpack[RunOptions]) -> None:
        _check_options("Run", options)
        if not hasattr(stream, "open"):
            raise ArgumentTypeError(
                f"run/start expects a streamnb Stream (with .open()), got {type(stream).__name__}"
            )
        name = options.get("name")
        if name is None:
            cell = _env.current_cell_key()
            name = f"cell:{cell}" if cell else f"run-{next(_counter)}"
        elif not isinstance(name, str):
            raise ArgumentTypeError(
                f"run(name={name!r}): expected a str, got {type(name).__name__}"
            )
        refresh: Any = options.get("refresh", DEFAULT_REFRESH)
        if isinstance(refresh, bool) or not isinstance(refresh, int | float):
            raise ArgumentTypeError(
                f"run {name!r}: refresh must be a number of Hz, got {type(refresh).__name__}"
            )
        if not (refresh > 0 and math.isfinite(refresh)):
            raise InvalidArgumentError(
                f"run {name!r}: refresh must be > 0 Hz and finite, got {refresh!r}"
            )
        total: Any = options.get("total")
        if total is not None:
            if isinstance(total, bool) or not isinstance(total, int):
                raise ArgumentTypeError(
                    f"run {name!r}: total must be an int (items), got {type(total).__name__}"
                )
            if total < 0:
                raise InvalidArgumentError(f"run {name!r}: total must be >= 0, got {total!r}")
        window: Any = options.get("window")
        if not (window is None or isinstance(window, str | bool)):
            raise ArgumentTypeError(
                f"run {name!r}: window must be a window's name, False or None, "
                f"got {type(window).__name__}"
            )
        self.stream = stream
        self.name = name
        self.total = total
        self.refresh = float(refresh)
        self.mode = _env.display_mode(options.get("display", True))
        self._window_choice = window
        self._status: RunStatus = "pending"
        self._items = 0
        self._last: Any = None
        self._t0: float | None = None
        self._t_end: float | None = None
        self._iteration: Any = None
        self._final_metrics: dict[str, MetricsSnapshot] | None = None
        self._exception: BaseException | None = None
        self._error: str | None = None
        self._summary: RunSummary | None = None
        self._stop_requested = False
        self._pause_requested = False
        self._resume = asyncio.Event()
        self._finished = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._predecessor: Run | None = None
        self._view: _View | None = None
        self._dashboard: Any = None
        self._displayed_in: str | None = None
        self._window: Window | None = None
        self._charts: list[_ChartFeed] = []
        self._chart_task: asyncio.Task[None] | None = None
        #: The exception that broke the live view, if one did (the run itself went on).
        self.view_error: Exception | None = None

    # -- state ------------------------------------------------------------------------------
    @property
    def status(self) -> RunStatus:
        """pending, running, paused, done, failed or cancelled."""
        return self._status

    @property
    def done(self) -> bool:
        """True once the run has finished (done, failed or cancelled)."""
        return self._status in FINISHED

    @property
    def items(self) -> int:
        """Items delivered so far (updated every few milliseconds while running)."""
        return self._items

    @property
    def elapsed(self) -> float:
        """Seconds since the run started iterating (frozen once it ended)."""
        if self._t0 is None:
            return 0.0
        end = self._t_end if self._t_end is not None else time.monotonic()
        return end - self._t0

    @property
    def summary(self) -> RunSummary | None:
        """The :class:`RunSummary` once the run ended, else None."""
        return self._summary

    def _set_status(self, new: RunStatus) -> None:
        if new != self._status:
            self._status = check_transition(self._status, new)
            _log.debug("streamnb.notebook.status", run=self.name, status=new)

    def metrics(self) -> dict[str, MetricsSnapshot]:
        """The monitored stages' snapshots, live while running, final afterwards."""
        if self._final_metrics is not None:
            return dict(self._final_metrics)
        return self._snapshots("monitor", MetricsSnapshot)

    def snapshots(self, kind: ObservableKind | None = None) -> dict[str, Snapshot]:
        """The run's frozen snapshots (of one ``kind``, or all): ``it.snapshots(kind)`` of
        the iteration it runs, live while running, final afterwards; ``{}`` before it opened.
        """
        it = self._iteration
        return {} if it is None else dict(it.snapshots(kind))

    @property
    def dead_letters(self) -> dict[str, DeadLetter[Any]]:
        """The dead letter of every stage with an error policy or a late-item policy (stage
        name -> :class:`~streamnb.DeadLetter`): what was skipped, with its error and index;
        ``{}`` before the run opened its stream."""
        it = self._iteration
        return {} if it is None else dict(it.dead_letters)

    def _snapshots(self, kind: ObservableKind, cls: type[_S]) -> dict[str, _S]:
        it = self._iteration
        if it is None:
            return {}
        return {n: s for n, s in it.snapshots(kind).items() if isinstance(s, cls)}

    # -- the window -------------------------------------------------------------------------
    @property
    def window(self) -> Window:
        """The stream's window (``.window(...)``): the one named by ``window=``, else the first."""
        if self._window is None:
            self._window = self._find_window()
        if self._window is None:
            where = "yet (the run has not opened its stream)" if self._iteration is None else ""
            raise NoWindowError(
                f"run {self.name!r} has no window {where}: add .window(last=N) or "
                ".window(seconds=S) to the stream before starting it".replace("  ", " ")
            )
        return self._window

    def _find_window(self) -> Window | None:
        it = self._iteration
        windows: Mapping[str, Window] = getattr(it, "windows", None) or {}
        choice = self._window_choice
        if isinstance(choice, str):
            if choice in windows:
                return windows[choice]
            if windows:
                raise NoWindowError(
                    f"run {self.name!r}: no window named {choice!r}; "
                    f"the stream has {sorted(windows)}"
                )
            return None
        return next(iter(windows.values()), None)

    def to_pandas(self, name: str | None = None) -> pd.DataFrame:
        """A DataFrame snapshot (bounded), while running or after.

        Without ``name``: the run's window (:attr:`window`). With ``name``: the window of that
        name (``.window(last=..., name=name)``) or the keyed stage of that name
        (``.keyed_window(..., name=name)``), whose frame holds the last ``keep`` windows it
        closed (column ``open`` False) followed by the windows still open with their results
        so far (``open`` True) - after a stopped run too, the open ones still marked open.

        Example::

            handle = start(events.keyed_window(tumbling(1.0), by="kind", name="per-second"))
            handle.to_pandas("per-second").tail()   # ... the open windows last, open=True
        """
        if name is None:
            return self.window.to_pandas()
        if not isinstance(name, str):
            raise ArgumentTypeError(
                f"Run.to_pandas(name={name!r}): expected the name (str) of a window or a "
                "keyed stage, or None"
            )
        return self._table(name).to_pandas()

    def _table(self, name: str) -> Window | KeyedWindows:
        """The window or keyed stage called ``name`` of the run's iteration."""
        it = self._iteration
        if it is None:
            raise NoWindowError(
                f"run {self.name!r} has not opened its stream yet: no window or keyed stage "
                f"{name!r} to read"
            )
        windows: Mapping[str, Window] = getattr(it, "windows", None) or {}
        keyed = self._keyed_stages()
        if name in windows and name in keyed:
            raise InvalidArgumentError(
                f"run {self.name!r}: a window and a keyed stage are both named {name!r}; "
                "give them different names"
            )
        if name in windows:
            return windows[name]
        if name not in keyed:
            raise NoWindowError(
                f"run {self.name!r} has no window or keyed stage named {name!r} (its windows: "
                f"{', '.join(map(repr, windows)) or 'none'}; its keyed stages: "
                f"{', '.join(map(repr, keyed)) or 'none'})"
            )
        return keyed[name]

    def _keyed_stages(self) -> dict[str, KeyedWindows]:
        """The run's keyed window engines by stage name (``it.state.observed("window")``)."""
        state = getattr(self._iteration, "state", None)
        if state is None:
            return {}
        return {n: o for n, o in state.observed("window").items() if isinstance(o, KeyedWindows)}

    # -- live charts of the window -----------------------------------------------------------
    def chart(
        self,
        x: str | Callable[[Any], Any] = "window_end",
        y: str | Callable[[Any], Any] = "count",
        by: str | Callable[[Any], Any] | None = None,
        *,
        window: str | None = None,
        kind: Literal["line", "bar"] = "line",
        title: str | None = None,
        max_points: int = 1000,
    ) -> LiveChart:
        """A :class:`~streamnb.notebook.chart.LiveChart` of the rows of the run's window.

        ``window`` names a window or a keyed stage (default: the run's window, see
        :attr:`window`). The rows that reached it since the last refresh (for a keyed stage:
        the windows it closed, from its last ``keep``) are given to the chart at the run's
        refresh rate (at most 4 Hz) - nothing is done per item - and the chart sends only the
        new points. A chart of a finished run shows the final rows.

        Example (in a notebook)::

            handle = start(events.keyed_window(tumbling(1.0), by="kind", name="per-second"))
            handle.chart(x="window_end", y="count", by="kind", window="per-second")
        """
        from .chart import MAX_RATE, LiveChart

        if window is not None and not isinstance(window, str):
            raise ArgumentTypeError(
                f"Run.chart(window={window!r}): expected a window's name (str) or None"
            )
        if self._iteration is not None:
            self._chart_window(window)  # a wrong name is refused up front once it can be known
        rate = min(MAX_RATE, self.refresh)
        chart = LiveChart(x, y, by, kind=kind, title=title, max_points=max_points, rate=rate)
        feed = _ChartFeed(chart, window)
        self._charts.append(feed)
        if self.done:
            self._feed_charts()
            chart.flush()
        elif self._chart_task is None:
            task = self._task
            if task is None:
                raise UsageError(f"Run.chart(): run {self.name!r} was never started")
            self._chart_task = task.get_loop().create_task(
                self._chart_loop(), name=f"streamnb.charts:{self.name}"
            )
        return chart

    def _chart_window(self, name: str | None) -> Window | KeyedWindows:
        if name is None:
            return self.window
        try:
            return self._table(name)
        except NoWindowError as exc:
            raise NoWindowError(f"Run.chart(window={name!r}): {exc}") from None

    def _feed_charts(self) -> None:
        """Give each chart the rows its window received since the last refresh."""
        if self._iteration is None:
            return
        for feed in self._charts:
            if feed.error is not None:
                continue
            try:
                w = self._chart_window(feed.window)
            except (NoWindowError, InvalidArgumentError) as exc:  # only the open run can tell
                feed.error = exc
                _log.error("streamnb.notebook.chart_failed", run=self.name, error=str(exc))
                continue
            chart = feed.chart
            if isinstance(w, KeyedWindows):  # the rows it emitted since the last refresh
                new_rows, feed.count = w.emitted_since(feed.count)
                chart.extend(new_rows)
                continue
            # only the rows new since the last refresh are read: the cost follows them (at
            # most what the chart can show), not the window's size
            total = w.appended
            new = min(total - feed.count, chart.max_points * chart.max_series)
            feed.count = total
            if new > 0:
                chart.extend(item for _, item in w.tail(new))

    async def _chart_loop(self) -> None:
        period = 1.0 / self.refresh
        while True:
            await asyncio.sleep(period)
            self._feed_charts()

    # -- control ----------------------------------------------------------------------------
    def stop(self) -> None:
        """End the run: the stream is closed (upstream tasks too); status becomes cancelled.

        Safe to call from a button, another cell, or the run itself; a no-op once finished.
        """
        if self.done or self._stop_requested:
            return
        self._stop_requested = True
        _log.debug("streamnb.notebook.stop", run=self.name, items=self._items)
        self._resume.set()
        task = self._task
        if self._status == "pending":
            return  # _main sees the flag before it opens the stream
        if task is not None and not task.done() and not task.get_loop().is_closed():
            task.cancel(msg=f"streamnb run {self.name!r} stopped")

    def pause(self) -> None:
        """Stop pulling items; upstream buffers fill and backpressure halts the producers."""
        if self.done:
            return
        self._pause_requested = True
        self._resume.clear()

    def resume(self) -> None:
        """Pull items again after :meth:`pause`."""
        self._pause_requested = False
        self._resume.set()

    def toggle_pause(self) -> None:
        """Pause a running run, resume a paused one (the dashboard's pause button)."""
        if self._pause_requested:
            self.resume()
        else:
            self.pause()

    async def wait(self) -> RunSummary:
        """Wait for the end without raising; returns the summary whatever the outcome."""
        await self._finished.wait()
        assert self._summary is not None
        return self._summary

    def __await__(self) -> Generator[Any, None, RunSummary]:
        return self._outcome().__await__()

    async def _outcome(self) -> RunSummary:
        summary = await self.wait()
        return self._result_or_raise(summary)

    def _result_or_raise(self, summary: RunSummary) -> RunSummary:
        if summary.status == "failed" and self._exception is not None:
            raise self._exception
        if summary.status == "cancelled":
            err = PipelineStoppedError(
                f"run {self.name!r} was stopped after {summary.items:,} items "
                f"({summary.elapsed:.2f} s); its summary is on this error's .summary"
            )
            err.summary = summary  # type: ignore[attr-defined]
            raise err
        return summary

    # -- display ----------------------------------------------------------------------------
    def _frame(self) -> RunFrame:
        window_tail: tuple[tuple[float, Any], ...] = ()
        if self.mode == "widget" and self._window_choice is not False:
            if self._window is None and self._iteration is not None:
                try:
                    self._window = self._find_window()
                except NoWindowError:
                    self._window = None
            if self._window is not None:
                window_tail = tuple(self._window.tail(5))
        return RunFrame(
            name=self.name,
            status=self._status,
            items=self._items,
            elapsed=self.elapsed,
            total=self.total,
            error=self._error,
            stages=self.metrics(),
            taken_at=time.monotonic(),
            window_tail=window_tail,
            buffers=self._snapshots("buffer", BufferSnapshot),
            concurrent=self._snapshots("concurrency", ConcurrencySnapshot),
            resilient=self._snapshots("resilient", ResilientSnapshot),
            calls=self._snapshots("call", CallSnapshot),
            keyed=self._snapshots("window", KeyedWindowSnapshot),
        )

    def _make_view(self) -> _View | None:
        if self._view is not None or self.mode == "none":
            return self._view
        if self.mode == "widget":
            from .dashboard import Dashboard

            self._dashboard = Dashboard(
                self.name, on_stop=self.stop, on_pause=self.toggle_pause, refresh=self.refresh
            )
            self._view = self._dashboard
        else:
            self._view = TextProgress()
        return self._view

    def _show(self) -> None:
        """Display the view where the run was started (the cell's output, or stderr)."""
        view = self._make_view()
        if self._dashboard is not None:
            _env.show(self._dashboard.widget)
            self._displayed_in = _env.current_request_id()
        elif view is not None:
            view.update(self._frame())

    def _refresh(self) -> None:
        if self._view is not None:
            self._view.update(self._frame())

    def _ipython_display_(self) -> None:
        if self._dashboard is None and self.mode != "widget":
            _env.show({"text/plain": repr(self)}, raw=True)
            return
        if self._displayed_in is not None and self._displayed_in == _env.current_request_id():
            return  # already shown by start()/run() in this very cell
        if self._dashboard is None:
            self.mode = "widget"
            self._make_view()
            if self.done:
                self._close_view()
        _env.show(self._dashboard.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        if self._dashboard is not None:
            bundle: dict[str, Any] = self._dashboard.widget._repr_mimebundle_(**kwargs)
            return bundle
        return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<Run {text_line(self._frame())}>"

    # -- the run itself ---------------------------------------------------------------------
    async def _main(self) -> RunSummary:
        """Iterate the stream to its end (or stop/failure); never raises except cancellation
        from outside the run (a kernel interrupt, Ctrl-C), which it re-raises after cleanup."""
        outside_cancel: BaseException | None = None
        refresher: asyncio.Task[None] | None = None
        try:
            if self._predecessor is not None:
                await self._predecessor.wait()
                self._predecessor = None
            if self._stop_requested:
                raise asyncio.CancelledError
            self._t0 = time.monotonic()
            self._set_status("running")
            _log.debug("streamnb.notebook.start", run=self.name, mode=self.mode)
            if self._view is not None:
                refresher = asyncio.get_running_loop().create_task(
                    self._refresh_loop(), name=f"streamnb.refresh:{self.name}"
                )
            async with self.stream.open() as it:
                self._iteration = it
                await self._consume(it)
            self._finish("done")
        except asyncio.CancelledError as exc:
            if self._stop_requested:
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            else:
                outside_cancel = exc
            self._finish("cancelled")
        except KeyboardInterrupt as exc:
            outside_cancel = exc
            self._finish("cancelled")
        except Exception as exc:
            self._exception = exc
            self._error = f"{type(exc).__name__}: {exc}"
            _log.debug("streamnb.notebook.failed", run=self.name, error=self._error)
            self._finish("failed")
        finally:
            if refresher is not None:
                refresher.cancel()
                try:
                    await refresher
                except asyncio.CancelledError:
                    pass
            if self._chart_task is not None:
                self._chart_task.cancel()
                try:
                    await self._chart_task
                except asyncio.CancelledError:
                    pass
                self._chart_task = None
            if self._charts:
                self._feed_charts()
                for feed in self._charts:
                    feed.chart.flush()
            self._close_view()
            self._finished.set()
            if _RUNS.get(self.name) is self:
                del _RUNS[self.name]
        if outside_cancel is not None:
            raise outside_cancel
        assert self._summary is not None
        return self._summary

    async def _consume(self, it: Any) -> None:
        clock = time.monotonic
        n = 0
        last: Any = None
        next_check = 1
        next_yield = clock()
        pace = AdaptiveStep(_CHECK_INTERVAL, _MAX_CHECK_STEP, now=next_yield)
        try:
            async for item in it:
                n += 1
                last = item
                if n >= next_check:
                    self._items = n
                    self._last = last
                    now = clock()
                    next_check = n + pace.update(now)
                    if self._pause_requested:
                        await self._paused()
                        next_yield = clock()
                        pace.reset(next_yield)  # the pause is no part of the stream's pace
                    elif now >= next_yield:
                        await asyncio.sleep(0)
                        next_yield = clock() + _YIELD_INTERVAL
        finally:
            self._items = n
            self._last = last

    async def _paused(self) -> None:
        self._set_status("paused")
        self._refresh()
        _log.debug("streamnb.notebook.paused", run=self.name, items=self._items)
        await self._resume.wait()
        if not self._stop_requested:
            self._set_status("running")
            self._refresh()

    async def _refresh_loop(self) -> None:
        period = 1.0 / self.refresh
        while True:
            await asyncio.sleep(period)
            try:
                self._refresh()
            except Exception as exc:  # a broken view must not kill the run: report it, drop it
                _log.error("streamnb.notebook.refresh_failed", run=self.name, error=repr(exc))
                self.view_error = exc
                self._view = None
                return

    def _finish(self, status: RunStatus) -> None:
        self._t_end = time.monotonic()
        if self._t0 is None:
            self._t0 = self._t_end
        try:
            self._final_metrics = self._snapshots("monitor", MetricsSnapshot)
        except Exception as exc:  # keep the outcome; name the problem
            _log.error("streamnb.notebook.metrics_failed", run=self.name, error=repr(exc))
            self._final_metrics = {}
        self._set_status(status)
        self._summary = RunSummary(
            name=self.name,
            status=status,
            items=self._items,
            elapsed=self._t_end - self._t0,
            metrics=self._final_metrics,
            result=self._last,
            error=self._error,
        )
        _log.debug(
            "streamnb.notebook.end",
            run=self.name,
            status=status,
            items=self._items,
            elapsed=round(self._summary.elapsed, 3),
        )

    def _close_view(self) -> None:
        if self._view is None:
            return
        try:
            self._view.close(self._frame())
        except Exception as exc:
            _log.error("streamnb.notebook.view_close_failed", run=self.name, error=repr(exc))


# -- module API ----------------------------------------------------------------------------------
def active_runs() -> dict[str, Run]:
    """The named runs that have not finished yet (name -> handle)."""
    return {name: r for name, r in _RUNS.items() if not r.done}


def _prepare(where: str, stream: Any, options: RunOptions) -> Run:
    _check_options(where, options)
    handle = Run(stream, **options)
    name = handle.name
    old = _RUNS.get(name)
    if old is not None and not old.done:
        old_task = old._task
        if old_task is not None and old_task.get_loop() is asyncio.get_running_loop():
            _log.debug("streamnb.notebook.replace", run=name)
            old.stop()
            handle._predecessor = old
    _RUNS[name] = handle
    handle._show()
    return handle


def start(stream: Any, **options: Unpack[RunOptions]) -> Run:
    """Run ``stream`` in the background on the running event loop; return its :class:`Run` now.

    The keywords are :class:`RunOptions`, the same for :func:`run`, :func:`run_sync`,
    :class:`Run` and ``Stream.run/start/run_sync``:

    * ``name`` - identifies the run; a run still going under that name is stopped first.
      Default: the notebook cell's id (JupyterLab sends it), else ``run-<n>``.
    * ``total`` - the number of items expected: the progress bar's end and an ETA.
    * ``refresh`` - refreshes per second of the dashboard / text line (4 Hz).
    * ``display`` - True/``"auto"`` (widget in a notebook, text line elsewhere;
      ``STREAMNB_DISPLAY`` overrides the guess), False/``"none"``, ``"widget"``, ``"text"``.
    * ``window`` - the window whose tail the dashboard shows and ``to_pandas()`` reads
      (default: the stream's first); False: none.

    Unknown keywords and bad values are refused up front (a ``UsageError``). Needs a running
    loop (a notebook cell, async code).

    Example::

        handle = start(Stream(range(10**7)).monitor("n"), name="demo")
        handle.status      # 'pending', then 'running'
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise UsageError(
            "start() needs a running event loop (a notebook cell or async code); "
            "in a plain script use run_sync(stream) or asyncio.run(run(stream))"
        ) from None
    handle = _prepare("start", stream, options)
    handle._task = loop.create_task(handle._main(), name=f"streamnb.run:{handle.name}")
    return handle


async def run(stream: Any, **options: Unpack[RunOptions]) -> RunSummary:
    """Run ``stream`` to its end in the current task, showing it live; return the summary.

    The primary entry point, like ``tqdm(iterable)``: ``await run(stream, total=n)``. The
    keywords are :class:`RunOptions`, as for :func:`start`. Raises the failure's exception if
    the stream failed and :class:`~streamnb.errors.PipelineStoppedError` if it was stopped
    (button, ``stop()``); a kernel interrupt or Ctrl-C closes the stream and propagates.

    Example::

        summary = await run(Stream(range(1000)).map(str).monitor("s"))
        summary.items      # 1000
    """
    handle = _prepare("run", stream, options)
    handle._task = asyncio.current_task()
    summary = await handle._main()
    return handle._result_or_raise(summary)


def run_sync(stream: Any, **options: Unpack[RunOptions]) -> RunSummary:
    """Blocking :func:`run` for synchronous code (keywords: :class:`RunOptions`).

    Without a running loop (a script) it uses ``asyncio.run``; inside a running loop (a
    notebook cell that is not async) it applies ``nest_asyncio`` to that loop and runs there.
    Ctrl-C / a kernel interrupt closes the stream before ``KeyboardInterrupt`` propagates.

    Example::

        summary = run_sync(Stream(range(1000)).monitor("n"), display=False)
    """
    _check_options("run_sync", options)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run(stream, **options))
    import nest_asyncio

    nest_asyncio.apply(loop)
    task = loop.create_task(run(stream, **options))
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
            try:
                loop.run_until_complete(task)
            except (asyncio.CancelledError, KeyboardInterrupt):
                pass  # the cancellation we just asked for; the original error propagates below
        raise

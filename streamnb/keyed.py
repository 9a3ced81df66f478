"""Keyed event-time windows: tumbling, sliding and session windows closed by a watermark.

A :class:`KeyedWindows` engine groups items by key (``by=``: a field name or a function) into
windows of **event time** (``time=``: a field name or a function returning epoch seconds or a
``datetime``; by default the arrival time) and folds each item into the window's named
aggregations (:mod:`streamnb.aggregate`). Window shapes:

- ``tumbling(size)``: back-to-back windows ``[k*size, (k+1)*size)``;
- ``sliding(size, every)``: windows of length ``size`` starting every ``every`` seconds (an
  item belongs to about ``size / every`` of them);
- ``session(gap)``: per key, items closer than ``gap`` to one another; a session's
  ``window_end`` is its last item's time plus ``gap`` (when it closes). Two sessions that an
  out-of-order item bridges are merged (accumulators are mergeable).

The **watermark** is the largest event time seen so far minus ``allowed_lateness``. A window
closes - and is emitted as one plain dict row ``{<key>, "window_start", "window_end",
<aggregates>}`` - once the watermark reaches its end. An item whose window has already closed
is *late*. Late items are never dropped silently: they are counted (``late``) and, by
default, sent to a :class:`~streamnb.recovery.DeadLetter` with a
:class:`~streamnb.errors.LateItemError`; ``late="include"`` emits them at once as a correction
row of their own (``"late": True``; add it to the earlier row for counts and sums) and
``late="raise"`` fails the run. The end of the stream flushes every open window; a run that
stops early leaves them open and :meth:`KeyedWindows.open_windows` (and the log event
``keyed.open_at_stop``) says which. :meth:`KeyedWindows.partial` shows the open windows'
current results, marked ``"open": True``; :meth:`KeyedWindows.rows` (and ``to_pandas()``)
puts them after the last ``keep`` rows the engine emitted (closed windows, ``"open": False``)
- what ``run.to_pandas(name)`` of a notebook run shows for a keyed stage.

Memory is bounded: at most ``max_keys`` keys hold open windows. A new key beyond that is
an error (:class:`~streamnb.errors.KeyLimitError`, the default ``on_max_keys="error"``) or,
with ``on_max_keys="evict"``, closes the windows of the key that has been open the longest
first (those rows carry ``"evicted": True`` and are counted).

As a Stream operator: :class:`streamnb.operators.keyed.KeyedWindow`
(``stream.then(KeyedWindow(tumbling(1.0), by="kind"))``) or
:meth:`streamnb.Stream.keyed_window` - each run then registers its engine on the
run as a ``"window"`` observable.

Example::

    engine = KeyedWindows(
        tumbling(1.0), by="kind", time="ts",
        aggs={"count": "count", "mean_ms": ("latency_ms", "mean")},
    )
    async for row in keyed_windows(events(), engine):
        print(row)   # {'kind': 'a', 'window_start': 0.0, 'window_end': 1.0, 'count': 3, ...}
"""

from __future__ import annotations

import datetime as _dt
import heapq
import itertools
import math
import time as _time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from ._log import get_logger
from ._validate import check_choice, check_int, check_number, check_seconds
from .aggregate import Aggregations, FlatAggregations, compile_aggs
from .errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    KeyLimitError,
    LateItemError,
    StreamError,
    UsageError,
)
from .metrics import KeyedWindowSnapshot
from .recovery import DeadLetter

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "KeyedWindowSnapshot",
    "KeyedWindows",
    "LatePolicy",
    "WindowShape",
    "keyed_windows",
    "session",
    "sliding",
    "tumbling",
]

_log = get_logger("streamnb.keyed")

#: What happens to an item whose window has already closed.
LatePolicy = Literal["dead_letter", "include", "raise"]
_LATE = ("dead_letter", "include", "raise")
_ON_MAX_KEYS = ("error", "evict")
DEFAULT_MAX_KEYS = 10_000
#: How many emitted rows (closed windows) an engine keeps for :meth:`KeyedWindows.rows`.
DEFAULT_KEEP = 1000


@dataclass(frozen=True)
class WindowShape:
    """The shape of keyed windows: build it with :func:`tumbling`, :func:`sliding` or
    :func:`session`."""

    kind: Literal["tumbling", "sliding", "session"]
    size: float
    every: float

    def describe(self) -> str:
        if self.kind == "tumbling":
            return f"tumbling({self.size:g})"
        if self.kind == "sliding":
            return f"sliding({self.size:g}, every={self.every:g})"
        return f"session(gap={self.size:g})"


def tumbling(size: float) -> WindowShape:
    """Back-to-back windows of ``size`` seconds: ``[k*size, (k+1)*size)``."""
    s = check_seconds("tumbling", "size", size)
    return WindowShape("tumbling", s, s)


def sliding(size: float, every: float) -> WindowShape:
    """Windows of ``size`` seconds starting every ``every`` seconds (``every <= size``)."""
    s = check_seconds("sliding", "size", size)
    e = check_seconds("sliding", "every", every)
    if e > s:
        raise InvalidArgumentError(
            f"sliding(size={size!r}, every={every!r}): every must be <= size (else items "
            "between windows belong to none; use tumbling or a smaller every)"
        )
    if s / e > 1000:
        raise InvalidArgumentError(
            f"sliding(size={size!r}, every={every!r}): each item would join {s / e:.0f} "
            "windows; keep size / every <= 1000"
        )
    return WindowShape("sliding", s, e)


def session(gap: float) -> WindowShape:
    """Per key, items less than ``gap`` seconds apart share a window."""
    g = check_seconds("session", "gap", gap)
    return WindowShape("session", g, g)


class _Win:
    """One open window: its key, bounds and accumulators."""

    __slots__ = ("closed", "end", "key", "last", "start", "state")

    def __init__(self, key: Any, start: float, end: float, state: list[Any]) -> None:
        self.key = key
        self.start = start
        self.end = end
        self.last = start  # sessions: the last item's time
        self.state = state
        self.closed = False


def _extractor(method: str, arg: str, spec: Any) -> Callable[[Any], Any] | None:
    if spec is None:
        return None
    if isinstance(spec, str | int) and not isinstance(spec, bool):
        return itemgetter(spec)
    if callable(spec):
        return spec  # type: ignore[no-any-return]
    raise ArgumentTypeError(
        f"{method}({arg}={spec!r}): expected a field name, a function of the item or None"
    )


class KeyedWindows:
    """The keyed event-time window engine (see the module docstring).

    :meth:`push` one item at a time; closed windows collect in :meth:`drain`; :meth:`flush`
    closes everything at the end of the stream. Not thread-safe: one run, one task.
    """

    def __init__(
        self,
        shape: WindowShape,
        *,
        by: str | Callable[[Any], Any] | None = None,
        time: str | Callable[[Any], Any] | None = None,
        aggs: Mapping[str, Any] | None = None,
        allowed_lateness: float = 0.0,
        late: LatePolicy = "dead_letter",
        dead_letter: DeadLetter[Any] | None = None,
        max_keys: int = DEFAULT_MAX_KEYS,
        on_max_keys: Literal["error", "evict"] = "error",
        keep: int = DEFAULT_KEEP,
        name: str | None = None,
    ) -> None:
        method = shape.kind if isinstance(shape, WindowShape) else "KeyedWindows"
        if not isinstance(shape, WindowShape):
            raise ArgumentTypeError(
                f"KeyedWindows(shape={shape!r}): expected tumbling(...), sliding(...) or "
                "session(...)"
            )
        self.shape = shape
        self.name = name or shape.describe()
        self._aggs: Aggregations = compile_aggs(method, aggs)
        flat = self._aggs.flat() if shape.kind == "tumbling" else None
        # the window states: plain numbers for tumbling count/sum/mean (the fast path)
        self._acc: Aggregations | FlatAggregations = self._aggs if flat is None else flat
        self._key = _extractor(method, "by", by)
        self._key_col = by if isinstance(by, str) else ("key" if by is not None else None)
        if self._key_col is not None and self._key_col in (
            "window_start",
            "window_end",
            *self._aggs.names,
        ):
            raise InvalidArgumentError(
                f"{method}(by={by!r}): the key column would collide with another column"
            )
        for reserved in ("window_start", "window_end", "open", "late", "evicted"):
            if reserved in self._aggs.names:
                raise InvalidArgumentError(
                    f"{method}(aggs[{reserved!r}]): {reserved!r} is a column of every window "
                    "row; name the aggregation otherwise"
                )
        self._time = _extractor(method, "time", time)
        self._time_spec, self._by_spec = time, by
        self.lateness = check_number(method, "allowed_lateness", allowed_lateness, minimum=0.0)
        self.late_policy = check_choice(method, "late", late, _LATE)
        self.on_max_keys = check_choice(method, "on_max_keys", on_max_keys, _ON_MAX_KEYS)
        self.max_keys = check_int(method, "max_keys", max_keys, minimum=1)
        self.keep = check_int(method, "keep", keep, minimum=0)
        # the last `keep` rows emitted, copied (a downstream stage may change the dict it got)
        self._emitted: deque[dict[str, Any]] = deque(maxlen=self.keep)
        #: Rows emitted so far (closed windows and correction rows), kept or not.
        self.emitted_count = 0
        if dead_letter is not None and not isinstance(dead_letter, DeadLetter):
            raise ArgumentTypeError(f"{method}(dead_letter={dead_letter!r}): expected a DeadLetter")
        self.dead_letter: DeadLetter[Any] = dead_letter if dead_letter is not None else DeadLetter()
        self._session = shape.kind == "session"
        self._size = shape.size
        self._every = shape.every
        self._windows: dict[tuple[Any, float], _Win] = {}  # tumbling / sliding: (key, start)
        self._current: dict[Any, _Win] = {}  # tumbling's compiled loop: key -> last window used
        self._sessions: dict[Any, list[_Win]] = {}  # session: key -> open sessions
        self._heap: list[tuple[float, int, _Win]] = []  # sessions: (close at, seq, window)
        self._ends: dict[float, list[_Win]] = {}  # tumbling / sliding: windows by end
        self._end_heap: list[float] = []  # the distinct ends of self._ends
        self._seq = itertools.count()
        self._key_open: dict[Any, int] = {}  # key -> open windows (insertion order = age)
        self._ready: list[dict[str, Any]] = []
        self._max_t = -math.inf
        self._wm = -math.inf
        self._peek: Callable[[], tuple[int, float]] | None = None
        self._running = False  # the compiled loop holds items / watermark while it runs
        self._next_close = math.inf
        self._items = 0
        self.late = 0
        self.closed = 0
        self.evicted = 0
        self._open_count = 0
        self._compiled = self._compile_tumbling() if shape.kind == "tumbling" else None

    def _compile_tumbling(self) -> Callable[[AsyncIterable[Any]], AsyncIterator[dict[str, Any]]]:
        """The whole tumbling loop as one generated async generator: the per-item step is
        inline (locals, no method call except the extractors you gave; field names become
        ``item[...]``; counts, sums and means are plain numbers in one list per window, see
        :class:`~streamnb.aggregate.FlatAggregations`), as a hand-written loop would be."""
        lines, ns = self._acc.inline("s", "item")
        ns.update(
            eng=self,
            size=self._size,
            lateness=self.lateness,
            coerce=self._check_time,
            new=self._new_tumbling,
            now=_time.time,
            inf=math.inf,
            UsageError=UsageError,
            StreamError=StreamError,
        )
        if self._time is None:
            get_t = "now()"
        elif isinstance(self._time_spec, str | int):
            get_t = f"item[{self._time_spec!r}]"
        else:
            ns["get_t"] = self._time
            get_t = "get_t(item)"
        if self._key is None:
            get_k = "None"
        elif isinstance(self._by_spec, str | int):
            get_k = f"item[{self._by_spec!r}]"
        else:
            ns["get_k"] = self._key
            get_k = "get_k(item)"
        body = "\n".join(" " * 20 + line for line in lines)
        # Per item: one dict lookup by key (its current window), not by (key, start) - a
        # tuple to build and a float to hash; the finiteness of the time is checked only off
        # that path (a NaN or infinite time gives a NaN start, which no window has); the
        # watermark is compared as `t >= close_at` (no subtraction) and read as
        # `max_t - lateness`.
        src = f"""
def factory():
    items = 0
    max_t = -inf

    def peek():
        return items, max_t - lateness

    async def run(source):
        nonlocal items, max_t
        windows = eng._windows
        cur = eng._current
        drain = eng.drain
        close_at = eng._close_at
        max_t = eng._max_t
        items = eng._items
        at = close_at()
        finished = False
        eng._running = True
        it = aiter(source)
        try:
            async for item in it:
                items += 1
                try:
                    t = {get_t}
                    if t.__class__ is not float:
                        t = coerce(t, items - 1)
                    k = {get_k}
                    start = (t // size) * size
                    w = cur.get(k)
                    if w is None or w.start != start:
                        if t - t != 0.0:
                            t = coerce(t, items - 1)
                        w = windows.get((k, start))
                        if w is None:
                            w = new(item, k, start, items - 1, max_t - lateness)
                            at = close_at()
                            if w is None:
                                for row in drain():
                                    yield row
                                continue
                        cur[k] = w
                    s = w.state
{body}
                except Exception as exc:
                    if not isinstance(exc, UsageError | StreamError):
                        exc.add_note(f"in {{eng.name}} at item {{items - 1}}")
                    raise
                if t > max_t:
                    max_t = t
                    if t >= at:
                        wm = t - lateness
                        if wm >= eng._next_close:
                            eng._max_t = max_t
                            eng._close_until(wm)
                            for row in drain():
                                yield row
                        at = close_at()
            finished = True
            eng._max_t = max_t
            for row in eng.flush():
                yield row
        finally:
            eng._max_t = max_t
            eng._items, eng._wm = items, max_t - lateness
            eng._running = False
            if not finished:
                eng.report_stopped()
            close = getattr(it, "aclose", None)
            if close is not None:
                await close()

    return run, peek
"""
        exec(compile(src, f"<streamnb {self.name}>", "exec"), ns)
        run, self._peek = ns["factory"]()
        return run  # type: ignore[no-any-return]

    def _new_tumbling(
        self, item: Any, key: Any, start: float, index: int, wm: float
    ) -> _Win | None:
        end = start + self._size
        if end <= wm:
            self._on_late(item, index, key, [(start, end)])
            return None
        w = self._open_window(key, start, end, index)
        self._windows[(key, start)] = w
        return w

    def _close_at(self) -> float:
        """The least event time whose arrival may close a window: the next window end plus
        ``allowed_lateness``, lowered by a hair so that rounding never delays a close (the
        compiled loop then checks ``t - lateness >= end`` exactly)."""
        nxt, lateness = self._next_close, self.lateness
        if lateness == 0.0 or nxt == math.inf:
            return nxt + lateness
        return nxt + lateness - (abs(nxt) + lateness) * 1e-12

    @property
    def items(self) -> int:
        """Items pushed so far (live, also while the compiled loop runs)."""
        return self._peek()[0] if self._peek is not None and self._running else self._items

    @property
    def watermark(self) -> float:
        """The current watermark: max event time seen minus ``allowed_lateness``."""
        return self._peek()[1] if self._peek is not None and self._running else self._wm

    # -- the per-item path ------------------------------------------------------------------
    def push(self, item: Any) -> bool:
        """Fold ``item`` into its window(s); True when closed windows wait in :meth:`drain`."""
        index = self._items
        self._items = index + 1
        t = self._event_time(item, index)
        key = None if self._key is None else self._key(item)
        kind = self.shape.kind
        if kind == "tumbling":
            size = self._size
            start = (t // size) * size
            end = start + size
            if end <= self._wm:
                self._on_late(item, index, key, [(start, end)])
            else:
                w = self._windows.get((key, start))
                if w is None:
                    w = self._open_window(key, start, end, index)
                    self._windows[(key, start)] = w
                self._acc.add(w.state, item)
        elif kind == "sliding":
            self._push_sliding(item, index, key, t)
        else:
            self._push_session(item, index, key, t)
        if t > self._max_t:
            self._max_t = t
            wm = t - self.lateness
            self._wm = wm
            if wm >= self._next_close:
                self._close_until(wm)
        return len(self._ready) > 0

    def _event_time(self, item: Any, index: int) -> float:
        if self._time is None:
            return _time.time()
        t = self._time(item)
        if t.__class__ is float and t - t == 0.0:
            return float(t)
        return self._check_time(t, index)

    def _check_time(self, t: Any, index: int) -> float:
        if t.__class__ is not float:
            if isinstance(t, _dt.datetime):
                if t.tzinfo is None:
                    raise InvalidArgumentError(
                        f"{self.name}: item {index} has a naive datetime {t!r} as event time; "
                        "give it a timezone (e.g. UTC) or use epoch seconds"
                    )
                return t.timestamp()
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise ArgumentTypeError(
                    f"{self.name}: item {index} has event time {t!r} ({type(t).__name__}); "
                    "time= must give epoch seconds or a timezone-aware datetime"
                )
            t = float(t)
        if t - t != 0.0:  # NaN or an infinity
            raise InvalidArgumentError(
                f"{self.name}: item {index} has event time {t!r}; expected a finite number "
                "of seconds"
            )
        return float(t)

    def _push_sliding(self, item: Any, index: int, key: Any, t: float) -> None:
        size, every = self._size, self._every
        first = math.floor((t - size) / every) + 1
        last = math.floor(t / every)
        late_for: list[tuple[float, float]] = []
        for k in range(first, last + 1):
            start = k * every
            end = start + size
            if not start <= t < end:  # float rounding at the edges
                continue
            if end <= self._wm:
                late_for.append((start, end))
                continue
            w = self._windows.get((key, start))
            if w is None:
                w = self._open_window(key, start, end, index)
                self._windows[(key, start)] = w
            self._acc.add(w.state, item)
        if late_for:
            self._on_late(item, index, key, late_for)

    def _push_session(self, item: Any, index: int, key: Any, t: float) -> None:
        gap = self._size
        sessions = self._sessions.get(key)
        hits = [s for s in sessions if s.start - gap < t < s.last + gap] if sessions else []
        if not hits:
            if t + gap <= self._wm:
                self._on_late(item, index, key, [(t, t + gap)])
                return
            w = self._open_window(key, t, t + gap, index)
            w.last = t
            self._sessions.setdefault(key, []).append(w)
            self._acc.add(w.state, item)
            return
        w = hits[0]
        for other in hits[1:]:  # the item bridges sessions: join them
            self._aggs.merge(w.state, other.state)
            w.start = min(w.start, other.start)
            w.last = max(w.last, other.last)
            other.closed = True
            assert sessions is not None
            sessions.remove(other)
            self._forget(other)
        self._acc.add(w.state, item)
        w.start = min(w.start, t)
        if t > w.last:
            w.last = t
        if w.last + gap != w.end:
            w.end = w.last + gap
            heapq.heappush(self._heap, (w.end, next(self._seq), w))
            self._next_close = self._heap[0][0]

    def _open_window(self, key: Any, start: float, end: float, index: int) -> _Win:
        counts = self._key_open
        n = counts.get(key)
        if n is None:
            if len(counts) >= self.max_keys:
                self._key_limit(key, index)
            n = 0
        counts[key] = n + 1
        w = _Win(key, start, end, self._acc.new())
        if self._session:
            heapq.heappush(self._heap, (end, next(self._seq), w))
        else:
            bucket = self._ends.get(end)
            if bucket is None:
                bucket = self._ends[end] = []
                heapq.heappush(self._end_heap, end)
            bucket.append(w)
        if end < self._next_close:
            self._next_close = end
        self._open_count += 1
        return w

    def _forget(self, w: _Win) -> None:
        """Bookkeeping when window ``w`` stops being open (closed, merged or evicted)."""
        self._open_count -= 1
        n = self._key_open[w.key] - 1
        if n:
            self._key_open[w.key] = n
        else:
            del self._key_open[w.key]

    def _key_limit(self, key: Any, index: int) -> None:
        if self.on_max_keys == "error":
            raise KeyLimitError(
                f"{self.name}: item {index} has a new key {key!r} while max_keys="
                f"{self.max_keys} keys already have open windows; raise max_keys, shorten "
                "the windows or pass on_max_keys='evict'"
            )
        victim = next(iter(self._key_open))
        doomed = sorted((w for w in self._live() if w.key == victim), key=lambda w: w.end)
        for w in doomed:
            self._emit(w, evicted=True)
            self.evicted += 1
        _log.info("keyed.evicted", stage=self.name, key=repr(victim), max_keys=self.max_keys)

    def _on_late(self, item: Any, index: int, key: Any, windows: list[tuple[float, float]]) -> None:
        self.late += 1
        policy = self.late_policy
        start, end = windows[0]
        err = LateItemError(
            f"{self.name}: item {index} (key {key!r}) belongs to the window "
            f"[{start:g}, {end:g}) which closed at watermark {self.watermark:g} "
            f"(allowed_lateness={self.lateness:g})"
        )
        if policy == "raise":
            raise err
        if policy == "dead_letter":
            self.dead_letter.add(self.name, index, item, err)
            return
        for start, end in windows:  # include: one correction row per closed window
            state = self._acc.new()
            self._acc.add(state, item)
            row = self._row(key, start, end, state)
            row["late"] = True
            self._ready.append(row)

    # -- closing ------------------------------------------------------------------------------
    def _row(self, key: Any, start: float, end: float, state: list[Any]) -> dict[str, Any]:
        row: dict[str, Any] = {}
        if self._key_col is not None:
            row[self._key_col] = key
        row["window_start"] = start
        row["window_end"] = end
        row.update(self._acc.results(state))
        return row

    def _emit(self, w: _Win, *, evicted: bool = False) -> None:
        w.closed = True
        if self._session:
            sessions = self._sessions[w.key]
            sessions.remove(w)
            if not sessions:
                del self._sessions[w.key]
        else:
            del self._windows[(w.key, w.start)]
            if self._current.get(w.key) is w:
                del self._current[w.key]
        self._forget(w)
        row = self._row(w.key, w.start, w.end, w.state)
        if evicted:
            row["evicted"] = True
        self.closed += 1
        self._ready.append(row)

    def _close_until(self, wm: float) -> None:
        if not self._session:
            ends, end_heap, emit = self._ends, self._end_heap, self._emit
            while end_heap and end_heap[0] <= wm:
                for w in ends.pop(heapq.heappop(end_heap)):
                    if not w.closed:  # (evicted ones are)
                        emit(w)
            self._next_close = end_heap[0] if end_heap else math.inf
            return
        heap = self._heap
        while heap and heap[0][0] <= wm:
            end, _, w = heapq.heappop(heap)
            if w.closed or w.end != end:  # merged / evicted, or a session that grew
                continue
            self._emit(w)
        self._next_close = heap[0][0] if heap else math.inf

    def drain(self) -> list[dict[str, Any]]:
        """The rows of the windows closed since the last call, in closing order (the last
        ``keep`` of them are also kept for :meth:`rows`)."""
        out = self._ready[:]
        self._ready.clear()
        if out:
            self.emitted_count += len(out)
            if self.keep:
                self._emitted.extend(map(dict, out))
        return out

    def emitted_since(self, count: int) -> tuple[list[dict[str, Any]], int]:
        """The kept rows emitted after the first ``count`` (at most ``keep`` of them), and
        :attr:`emitted_count` now - what a live chart of this stage reads at each refresh.

        Example::

            rows, seen = engine.emitted_since(0)        # everything kept so far
            later, seen = engine.emitted_since(seen)    # only what came since
        """
        new = min(self.emitted_count - count, len(self._emitted))
        if new <= 0:
            return [], self.emitted_count
        kept = self._emitted
        return [kept[i] for i in range(len(kept) - new, len(kept))], self.emitted_count

    def run(self, source: AsyncIterable[Any]) -> AsyncIterator[dict[str, Any]]:
        """Run over ``source``: yield each closed window's row, flush at the end (see
        :func:`keyed_windows`)."""
        if self._compiled is not None:
            return self._compiled(source)
        return self._run(source)

    async def _run(self, source: AsyncIterable[Any]) -> AsyncIterator[dict[str, Any]]:
        push = self.push
        finished = False
        it = aiter(source)
        try:
            async for item in it:
                try:
                    ready = push(item)
                except Exception as exc:
                    if not isinstance(exc, UsageError | StreamError):
                        exc.add_note(f"in {self.name} at item {self._items - 1}")
                    raise
                if ready:
                    for row in self.drain():
                        yield row
            finished = True
            for row in self.flush():
                yield row
        finally:
            if not finished:
                self.report_stopped()
            close = getattr(it, "aclose", None)
            if close is not None:
                await close()

    def flush(self) -> list[dict[str, Any]]:
        """End of stream: close every open window (in end order) and return all ready rows."""
        self._close_until(math.inf)
        return self.drain()

    # -- reading while open -----------------------------------------------------------------
    def open_windows(self) -> list[tuple[Any, float, float]]:
        """``(key, window_start, window_end)`` of every open window, oldest end first."""
        wins = sorted(self._live(), key=lambda w: (w.end, w.start))
        return [(w.key, w.start, w.end) for w in wins]

    def _live(self) -> list[_Win]:
        if self.shape.kind == "session":
            return [w for ws in self._sessions.values() for w in ws]
        return list(self._windows.values())

    def partial(self) -> list[dict[str, Any]]:
        """The current results of the open windows, each row marked ``"open": True``."""
        rows = []
        for w in sorted(self._live(), key=lambda w: (w.end, w.start)):
            row = self._row(w.key, w.start, w.end, w.state)
            row["open"] = True
            rows.append(row)
        return rows

    def emitted(self) -> list[dict[str, Any]]:
        """The last ``keep`` rows the engine emitted (closed windows and correction rows),
        oldest first, each marked ``"open": False``."""
        return [{**row, "open": False} for row in self._emitted]

    def rows(self) -> list[dict[str, Any]]:
        """What the stage has shown so far: :meth:`emitted` (in the order they were emitted),
        then :meth:`partial` (the open windows, oldest end first, ``"open": True``).

        Example::

            engine.rows()[-1]   # {'k': 'a', 'window_start': 7.0, ..., 'count': 3, 'open': True}
        """
        return self.emitted() + self.partial()

    def to_pandas(self) -> pd.DataFrame:
        """:meth:`rows` as a DataFrame: the kept closed windows (``open`` False), then the
        open windows' partial results (``open`` True)."""
        import pandas as pd

        return pd.DataFrame(self.rows())

    def snapshot(self) -> KeyedWindowSnapshot:
        """A frozen view for the dashboard and metrics (cheap, safe any time)."""
        wm = self.watermark
        return KeyedWindowSnapshot(
            name=self.name,
            shape=self.shape.describe(),
            items=self.items,
            late=self.late,
            closed=self.closed,
            open=self._open_count,
            keys=len(self._key_open),
            evicted=self.evicted,
            watermark=None if wm == -math.inf else wm,
            max_keys=self.max_keys,
        )

    def report_stopped(self) -> None:
        """Log which windows a stopped run left open (``keyed.open_at_stop``)."""
        if self._open_count:
            opened = self.open_windows()
            _log.warning(
                "keyed.open_at_stop",
                stage=self.name,
                open=len(opened),
                first=[(repr(k), s, e) for k, s, e in opened[:5]],
            )

    def __repr__(self) -> str:
        s = self.snapshot()
        return (
            f"KeyedWindows({s.shape}, name={self.name!r}, open={s.open}, keys={s.keys}, "
            f"closed={s.closed}, late={s.late})"
        )


def keyed_windows(
    source: AsyncIterable[Any], engine: KeyedWindows
) -> AsyncIterator[dict[str, Any]]:
    """Run ``engine`` over ``source``: yield each closed window's row, flush at the end.

    If the consumer stops early (``aclose``, cancellation, an error), the windows still open
    are reported (:meth:`KeyedWindows.report_stopped`) and stay readable on the engine.
    """
    return engine.run(source)

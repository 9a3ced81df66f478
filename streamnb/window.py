"""Bounded windows over a stream: the most recent items, ready for pandas at any moment.

A :class:`Window` keeps only the last ``last`` items and/or the items that arrived in the last
``seconds`` seconds, so its memory stays bounded whatever the stream's length.
``Stream.window(last=..., seconds=..., name=...)`` creates one per run and appends every item
that flows past; read it while the run is going (``run.to_pandas()``) or after.

Storage is columnar, in chunks. :meth:`Window.append` is on the per-item path of fused loops,
so it does one clock read, one key-set comparison and two appends (the item and its arrival
time). When a chunk is full (at most 1,024 rows) its flat dict rows are transposed into one
column per key - ``array('d')`` / ``array('q')`` for floats / ints, a list otherwise - in C
(``itemgetter`` + ``zip``), and the dicts are released. :meth:`Window.to_pandas` then only
concatenates typed columns, which is what makes a full 100,000-row window cheap to read
(``benchmarks/bench_windows.py``: ``to_pandas_vs_json_normalize``). Nested dicts, other
mappings and rows with changing keys are kept as rows and flattened when read; non-dict items
become one ``value`` column. Whole chunks are dropped as items expire, so a window holds at
most ``max_items`` live rows plus one chunk of already-evicted ones.

Example::

    w = Window(last=3)
    for i in range(10):
        w.append({"i": i, "pos": {"x": i * 2}})
    len(w)             # 3
    w.to_pandas()      # columns: arrived_at, i, pos.x  (rows for i = 7, 8, 9)
"""

from __future__ import annotations

import bisect
import time
from array import array
from collections import deque
from collections.abc import Iterator, Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from .errors import WindowConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_MAX_ITEMS", "TIMESTAMP_COLUMN", "Window", "WindowConfigError", "flatten_item"]

#: Hard bound on the items a time window holds, whatever the arrival rate (override per window).
DEFAULT_MAX_ITEMS = 100_000
#: Name of the arrival-time column :meth:`Window.to_pandas` adds (UTC, tz-aware).
TIMESTAMP_COLUMN = "arrived_at"
# A time window prunes expired items from the hot path at most this often (fraction of its span).
_PRUNE_FRACTION = 0.125
# Rows per chunk: the unit of transposition and of eviction.
_MAX_CHUNK = 1024

# chunk kinds, decided when a chunk is sealed (or read while open)
_FLAT = 0  # dicts with one key set and no nested dict: one typed column per key
_VALUE = 1  # no mapping at all: one "value" column
_ROWS = 2  # anything else (nested dicts, other mappings, a mix): flattened row by row when read

# column kinds
_FLOAT, _INT, _BOOL, _OBJ = "d", "q", "?", "O"

_Columns = tuple[int, tuple[Any, ...], list[tuple[str, Any]]]  # kind, keys, columns


class _Chunk:
    """Up to ``cap`` consecutive rows: the items while open, typed columns once sealed."""

    __slots__ = ("cols", "items", "kind", "names", "sealed", "stamps")

    def __init__(self) -> None:
        self.sealed = False
        self.stamps: array[float] = array("d")
        self.items: list[Any] | None = []  # the rows until sealed (kept by _ROWS chunks)
        self.kind = _ROWS
        self.names: tuple[Any, ...] = ()  # the keys of a _FLAT chunk, in its first item's order
        self.cols: list[tuple[str, Any]] | None = None  # (column kind, data) once sealed

    def __len__(self) -> int:
        return len(self.stamps)

    def seal(self) -> None:
        """Transpose the rows to typed columns (when they allow it) and let go of them."""
        assert self.items is not None
        kind, names, cols = _columns(self.items)
        self.kind, self.names, self.sealed = kind, names, True
        if kind != _ROWS:
            self.cols = cols
            self.items = None

    def column_data(self) -> _Columns:
        """The chunk's columns (computed on the fly while it is open)."""
        if self.cols is not None:
            return self.kind, self.names, self.cols
        if self.sealed or self.items is None:  # sealed as rows
            return _ROWS, (), []
        return _columns(self.items[:])

    def row(self, i: int) -> Any:
        """Item ``i`` (a rebuilt dict for a sealed flat chunk)."""
        if self.items is not None:
            return self.items[i]
        assert self.cols is not None
        values = [_cell(kind, data, i) for kind, data in self.cols]
        if self.kind == _VALUE:
            return values[0]
        return dict(zip(self.names, values, strict=True))

    def rows(self, start: int) -> list[Any]:
        """Items ``start:`` of the chunk, oldest first."""
        if self.items is not None:
            return self.items[start:]
        assert self.cols is not None
        data = [_plain(kind, d)[start:] for kind, d in self.cols]
        if self.kind == _VALUE:
            return list(data[0])
        return [dict(zip(self.names, vals, strict=True)) for vals in zip(*data, strict=True)]


def _cell(kind: str, data: Any, i: int) -> Any:
    v = data[i]
    return bool(v) if kind == _BOOL else v


def _plain(kind: str, data: Any) -> list[Any]:
    return [bool(v) for v in data] if kind == _BOOL else list(data)


def _columns(items: list[Any]) -> _Columns:
    """Classify ``items`` and transpose them, in C-level loops (map, set, array)."""
    rows_only: _Columns = (_ROWS, (), [])
    if not items:
        return rows_only
    types = set(map(type, items))
    if types == {dict}:
        names = tuple(items[0])
        if not names or set(map(len, items)) != {len(names)}:
            return rows_only  # key sets differ (or empty dicts)
        try:
            raw = [list(map(itemgetter(k), items)) for k in names]
        except KeyError:
            return rows_only  # same sizes, other keys
        kind = _FLAT
    elif any(issubclass(t, Mapping) for t in types):
        return rows_only
    else:
        names, raw, kind = ("value",), [items], _VALUE
    out: list[tuple[str, Any]] = []
    for col in raw:
        typed = _typed(col)
        if typed is None:
            return rows_only  # a nested dict: flattened when read
        out.append(typed)
    return kind, names, out


def _typed(col: list[Any]) -> tuple[str, Any] | None:
    """One column as a typed array where its values allow it; None if it holds a mapping."""
    first = type(col[0])
    if first is float:
        try:
            return _FLOAT, array("d", col)
        except TypeError:
            pass
    elif first is int:
        try:
            return _INT, array("q", col)
        except (TypeError, OverflowError):
            pass
    types = set(map(type, col))
    if any(issubclass(t, Mapping) for t in types):
        return None
    if types == {bool}:
        return _BOOL, array("b", col)
    return _OBJ, col


class _Store:
    """The chunks of a window, oldest first; the last one is open for appends."""

    __slots__ = ("cap", "chunks", "count", "limit", "open", "rows", "sealed", "skip", "stamps")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # live rows at most
        self.cap = max(1, min(_MAX_CHUNK, limit // 4))
        self.chunks: deque[_Chunk] = deque()
        self.count = 0  # rows in sealed chunks (skipped ones included)
        self.skip = 0  # rows of chunks[0] already evicted
        self.sealed = 0  # rows ever sealed or cleared (counted per chunk, never per row)
        self._new()

    def _new(self) -> None:
        chunk = _Chunk()
        self.open = chunk
        self.chunks.append(chunk)
        assert chunk.items is not None
        self.rows = chunk.items  # the hot path appends to these two directly
        self.stamps = chunk.stamps

    def roll(self) -> None:
        """Seal the full open chunk, start a new one, evict what is beyond ``limit``."""
        chunk = self.open
        self.count += len(chunk)
        self.sealed += len(chunk)
        chunk.seal()
        self._new()
        self.trim()

    def trim(self) -> None:
        """Evict the oldest rows beyond ``limit``."""
        excess = self.count + len(self.open) - self.skip - self.limit
        while excess > 0:
            first = self.chunks[0]
            left = len(first) - self.skip
            if left <= excess and first is not self.open:
                self.chunks.popleft()
                self.count -= len(first)
                self.skip = 0
                excess -= left
            else:
                self.skip += excess
                excess = 0

    def prune(self, cutoff: float) -> None:
        """Evict the rows that arrived before ``cutoff`` (arrival times are sorted)."""
        while True:
            first = self.chunks[0]
            n = len(first)
            if n and first.stamps[n - 1] < cutoff and first is not self.open:
                self.chunks.popleft()
                self.count -= n
                self.skip = 0
                continue
            self.skip = max(self.skip, bisect.bisect_left(first.stamps, cutoff))
            return

    def __len__(self) -> int:
        self.trim()
        return self.count + len(self.open) - self.skip

    def segments(self) -> list[tuple[_Chunk, int]]:
        """``(chunk, first live row)`` pairs, oldest first."""
        self.trim()
        chunks = list(self.chunks)
        return [(c, self.skip if i == 0 else 0) for i, c in enumerate(chunks)]

    def clear(self) -> None:
        self.sealed += len(self.open)
        self.chunks.clear()
        self.count = 0
        self.skip = 0
        self._new()


class Window:
    """The most recent items of a stream, bounded by count (``last``) and/or age (``seconds``).

    ``last=N`` keeps the N most recent items. ``seconds=S`` keeps the items that arrived in the
    last S seconds, never more than ``max_items`` (default :data:`DEFAULT_MAX_ITEMS`) so that a
    burst cannot exhaust memory. Give both to keep at most N items no older than S seconds.

    Items are stored with their arrival time (``time.monotonic`` at :meth:`append`, mapped to
    wall-clock time by :meth:`to_pandas`). Flat dict items are stored as columns once their
    chunk is full, so :meth:`items` and :meth:`tail` give back equal dicts (not the same
    objects); other items are kept as they are.

    Example::

        w = Window(seconds=30, name="recent")
        w.append(42)
        w.items()          # [42]
        w.to_pandas()      # columns: arrived_at, value
    """

    __slots__ = (
        "_clock",
        "_data",
        "_horizon",
        "_next_prune",
        "_prune_every",
        "_wall_offset",
        "last",
        "max_items",
        "name",
        "seconds",
    )

    def __init__(
        self,
        last: int | None = None,
        seconds: float | None = None,
        *,
        name: str = "window",
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if last is None and seconds is None:
            raise WindowConfigError(
                f"Window {name!r}: give last=N (item count) and/or seconds=S (age); "
                "an unbounded window would keep the whole stream in memory"
            )
        if last is not None and (isinstance(last, bool) or not isinstance(last, int) or last < 1):
            raise WindowConfigError(f"Window {name!r}: last must be an int >= 1, got {last!r}")
        if seconds is not None and not seconds > 0:
            raise WindowConfigError(f"Window {name!r}: seconds must be > 0, got {seconds!r}")
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise WindowConfigError(f"Window {name!r}: max_items must be >= 1, got {max_items!r}")
        self.name = name
        self.last = last
        self.seconds = None if seconds is None else float(seconds)
        self.max_items = last if last is not None else max_items
        self._clock = time.monotonic
        self._data = _Store(self.max_items)
        # monotonic -> wall clock, measured once so that append reads one clock only
        self._wall_offset = time.time() - time.monotonic()
        if self.seconds is None:
            self._horizon = 0.0
            self._prune_every = 0.0
            self._next_prune = float("inf")  # count windows never prune on append
        else:
            self._horizon = self.seconds
            self._prune_every = self.seconds * _PRUNE_FRACTION
            self._next_prune = self._clock() + self._prune_every

    # -- writer side (the per-item path) ----------------------------------------------------
    def append(self, item: Any) -> None:
        """Record ``item`` as arrived now, evicting the oldest items when the window is full."""
        now = self._clock()
        store = self._data
        rows = store.rows
        rows.append(item)
        store.stamps.append(now)
        if len(rows) >= store.cap:
            store.roll()
        if now >= self._next_prune:
            self._prune(now)

    def _prune(self, now: float) -> None:
        self._data.prune(now - self._horizon)
        self._next_prune = now + self._prune_every

    # -- reader side ------------------------------------------------------------------------
    def _segments(self) -> list[tuple[_Chunk, int]]:
        if self.seconds is not None:
            self._prune(self._clock())
        return [(c, start) for c, start in self._data.segments() if len(c) > start]

    def __len__(self) -> int:
        if self.seconds is not None:
            self._prune(self._clock())
        return len(self._data)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items())

    def __repr__(self) -> str:
        bound = []
        if self.last is not None:
            bound.append(f"last={self.last}")
        if self.seconds is not None:
            bound.append(f"seconds={self.seconds:g}")
        return f"Window({', '.join(bound)}, name={self.name!r}, len={len(self)})"

    def items(self) -> list[Any]:
        """A snapshot list of the items in the window, oldest first."""
        out: list[Any] = []
        for chunk, start in self._segments():
            out.extend(chunk.rows(start))
        return out

    @property
    def appended(self) -> int:
        """Items appended so far, evicted ones included: ``tail(appended - seen)`` holds what
        came since a reader saw ``seen`` (as far as the window still has it)."""
        store = self._data
        return store.sealed + len(store.open)

    def tail(self, n: int) -> list[tuple[float, Any]]:
        """The ``n`` most recent ``(wall_clock_time, item)`` pairs, oldest first.

        Cheap whatever the window's size: only the newest chunks are read.
        """
        if n <= 0:
            return []
        off = self._wall_offset
        picked: list[tuple[float, Any]] = []
        for chunk, start in reversed(self._segments()):
            i = len(chunk)
            while i > start and len(picked) < n:
                i -= 1
                picked.append((chunk.stamps[i] + off, chunk.row(i)))
            if len(picked) >= n:
                break
        picked.reverse()
        return picked

    def clear(self) -> None:
        """Forget every item."""
        self._data.clear()

    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame snapshot of the window (safe to call while items keep arriving).

        Dict items become columns (nested dicts flattened to ``outer.inner`` names); any other
        item becomes one ``value`` column. The first column, ``arrived_at``, is the arrival
        time (UTC). pandas is imported here, not when streamnb is imported.
        """
        import numpy as np
        import pandas as pd

        segments = self._segments()
        stamps = [np.frombuffer(c.stamps, dtype=np.float64)[s:] for c, s in segments]
        when = np.concatenate(stamps) if stamps else np.empty(0, dtype=np.float64)
        frame = _frame(segments)
        if TIMESTAMP_COLUMN in frame.columns:
            frame = frame.rename(columns={TIMESTAMP_COLUMN: f"{TIMESTAMP_COLUMN}.item"})
        stamps_utc = pd.to_datetime(when + self._wall_offset, unit="s", utc=True)
        frame.insert(0, TIMESTAMP_COLUMN, stamps_utc)
        return frame


def _frame(segments: list[tuple[_Chunk, int]]) -> pd.DataFrame:
    """The columns of the live rows: typed columns concatenated, rows flattened where needed."""
    import pandas as pd

    parts: list[pd.DataFrame] = []
    # runs of consecutive columnar chunks with the same names become one block
    run_names: tuple[str, ...] | None = None
    run: list[tuple[list[tuple[str, Any]], int]] = []

    def flush() -> None:
        if run and run_names is not None:
            parts.append(_block(run_names, run))
        run.clear()

    for chunk, start in segments:
        kind, names, cols = chunk.column_data()
        if kind == _ROWS:
            flush()
            run_names = None
            rows = [flatten_item(x) for x in chunk.rows(start)]
            parts.append(pd.DataFrame(rows, index=range(len(rows))))
            continue
        if names != run_names:
            flush()
            run_names = names
        run.append((cols, start))
    flush()
    if not parts:
        return pd.DataFrame()
    if len(parts) == 1:
        return parts[0].reset_index(drop=True)
    return pd.concat(parts, ignore_index=True, sort=False)


def _block(names: tuple[str, ...], run: list[tuple[list[tuple[str, Any]], int]]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    data: dict[str, Any] = {}
    for j, name in enumerate(names):
        kinds = {cols[j][0] for cols, _ in run}
        if len(kinds) == 1 and _OBJ not in kinds:
            kind = kinds.pop()
            dtype = {_FLOAT: np.float64, _INT: np.int64, _BOOL: np.int8}[kind]
            pieces = [np.frombuffer(cols[j][1], dtype=dtype)[s:] for cols, s in run]
            col = np.concatenate(pieces)
            data[str(name)] = col.astype(bool) if kind == _BOOL else col
        else:  # mixed or object columns: plain values, pandas infers the dtype
            values: list[Any] = []
            for cols, s in run:
                kind, d = cols[j]
                values.extend(_plain(kind, d)[s:] if s else _plain(kind, d))
            data[str(name)] = values
    return pd.DataFrame(data)


def flatten_item(item: Any) -> dict[str, Any]:
    """One table row for ``item``: a dict's keys (nested dicts as ``outer.inner``) or ``value``.

    Example::

        flatten_item({"a": 1, "b": {"c": 2}})   # {'a': 1, 'b.c': 2}
        flatten_item(7)                         # {'value': 7}
    """
    if isinstance(item, Mapping):
        out: dict[str, Any] = {}
        _flatten(item, "", out)
        return out
    return {"value": item}


def _flatten(d: Mapping[Any, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, val in d.items():
        name = f"{prefix}{key}"
        if isinstance(val, Mapping) and val:
            _flatten(val, name + ".", out)
        else:
            out[name] = val

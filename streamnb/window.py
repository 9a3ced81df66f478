"""Bounded windows over a stream: the most recent items, ready for pandas at any moment.

A :class:`Window` keeps only the last ``last`` items and/or the items that arrived in the last
``seconds`` seconds, in a ring buffer, so its memory stays bounded whatever the stream's length.
``Stream.window(last=..., seconds=..., name=...)`` creates one per run and appends every item
that flows past; read it while the run is going (``run.to_pandas()``) or after.

:meth:`Window.append` is on the per-item path, so it does one clock read and one deque append
(plus, for a time window, one float comparison); expired items are pruned in amortised batches
and again whenever the window is read.

Example::

    w = Window(last=3)
    for i in range(10):
        w.append({"i": i, "pos": {"x": i * 2}})
    len(w)             # 3
    w.to_pandas()      # columns: arrived_at, i, pos.x  (rows for i = 7, 8, 9)
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Iterator, Mapping
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



class Window:
    """The most recent items of a stream, bounded by count (``last``) and/or age (``seconds``).

    ``last=N`` keeps the N most recent items. ``seconds=S`` keeps the items that arrived in the
    last S seconds, never more than ``max_items`` (default :data:`DEFAULT_MAX_ITEMS`) so that a
    burst cannot exhaust memory. Give both to keep at most N items no older than S seconds.

    Items are stored with their arrival time (``time.monotonic`` at :meth:`append`, mapped to
    wall-clock time by :meth:`to_pandas`).

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
        if max_items < 1:
            raise WindowConfigError(f"Window {name!r}: max_items must be >= 1, got {max_items!r}")
        self.name = name
        self.last = last
        self.seconds = None if seconds is None else float(seconds)
        self.max_items = last if last is not None else max_items
        self._clock = time.monotonic
        self._data: deque[tuple[float, Any]] = deque(maxlen=self.max_items)
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
        """Record ``item`` as arrived now, evicting the oldest item when the window is full."""
        now = self._clock()
        self._data.append((now, item))
        if now >= self._next_prune:
            self._prune(now)

    def _prune(self, now: float) -> None:
        cutoff = now - self._horizon
        data = self._data
        while data and data[0][0] < cutoff:
            data.popleft()
        self._next_prune = now + self._prune_every

    # -- reader side ------------------------------------------------------------------------
    def _entries(self) -> list[tuple[float, Any]]:
        if self.seconds is not None:
            self._prune(self._clock())
        return list(self._data)

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
        return [item for _, item in self._entries()]

    def tail(self, n: int) -> list[tuple[float, Any]]:
        """The ``n`` most recent ``(wall_clock_time, item)`` pairs, oldest first."""
        if n <= 0:
            return []
        if self.seconds is not None:
            self._prune(self._clock())
        off = self._wall_offset
        newest = list(itertools.islice(reversed(self._data), n))
        return [(t + off, item) for t, item in reversed(newest)]

    def clear(self) -> None:
        """Forget every item."""
        self._data.clear()

    def to_pandas(self) -> pd.DataFrame:
        """A DataFrame snapshot of the window (safe to call while items keep arriving).

        Dict items become columns (nested dicts flattened to ``outer.inner`` names); any other
        item becomes one ``value`` column. The first column, ``arrived_at``, is the arrival
        time (UTC). pandas is imported here, not when streamnb is imported.
        """
        import pandas as pd

        entries = self._entries()
        off = self._wall_offset
        stamps = pd.to_datetime([t + off for t, _ in entries], unit="s", utc=True)
        rows = [flatten_item(item) for _, item in entries]
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
        if TIMESTAMP_COLUMN in frame.columns:
            frame = frame.rename(columns={TIMESTAMP_COLUMN: f"{TIMESTAMP_COLUMN}.item"})
        frame.insert(0, TIMESTAMP_COLUMN, stamps)
        return frame


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

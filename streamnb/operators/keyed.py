"""Keyed event-time windows as a Stream operator: ``stream.keyed_window(...)``.

:class:`KeyedWindow` wraps the :class:`~streamnb.keyed.KeyedWindows` engine (tumbling, sliding
or session windows, watermark, late items, ``max_keys``) in the operator protocol
(:mod:`streamnb.operators.base`). It runs as its own stage - one window row comes out per
closed window, not one item per item - whose tumbling loop is itself one generated async
generator. Each run builds a fresh engine and registers it on the run:

* as a ``"window"`` observable named after the stage (``it.snapshots("window")[name]``: a
  :class:`~streamnb.keyed.KeyedWindowSnapshot` with items, late, closed, open windows, keys,
  evicted, watermark), so metrics and dashboards see late items and open windows;
* its dead letter of late items as ``it.dead_letters[name]`` (and offered to a ``monitor``
  placed right after it, like an error policy's).

What the stage has shown so far - its last ``keep=`` closed windows (default 1000, marked
``"open": False``) and then the open windows' partial results (``"open": True``):
``it.state.observed("window")[name].to_pandas()``, or in a notebook ``run.to_pandas(name)``.

Example::

    per_second = Stream(feed).keyed_window(
        tumbling(1.0), by="kind", time="timestamp",
        aggs={"count": "count", "p95_ms": ("latency_ms", "p95")}, name="per-second",
    )
    async with per_second.window(last=1000, name="rows").open() as it:
        async for row in it:    # {'kind': 'api', 'window_start': ..., 'count': 31, ...}
            ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ..keyed import KeyedWindows, WindowShape
from .base import Link, Operator

__all__ = ["KeyedWindow"]


class KeyedWindow(Operator):
    """Rows of closed keyed windows (see the module docstring); ``options`` are those of
    :class:`~streamnb.keyed.KeyedWindows` (``by=``, ``time=``, ``aggs=``,
    ``allowed_lateness=``, ``late=``, ``max_keys=``, ``on_max_keys=``, ``keep=``), checked up
    front."""

    def __init__(self, shape: WindowShape, *, name: str | None = None, **options: Any) -> None:
        if "dead_letter" in options:
            # one engine per run: a sink given here would be shared by every run
            options = dict(options)
            self._sink = options.pop("dead_letter")
        else:
            self._sink = None
        probe = KeyedWindows(shape, name=name, dead_letter=self._sink, **options)
        self.shape = shape
        self.name = probe.name
        self.options = options
        self.label = f"keyed_window({self.name!r})"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        engine = KeyedWindows(self.shape, name=self.name, dead_letter=self._sink, **self.options)
        run = link.run
        run.observe("window", engine)
        run.dead_letters[run.unique(run.dead_letters, self.name, "keyed window")] = (
            engine.dead_letter
        )
        link.dead_letter = engine.dead_letter
        return engine.run(src)

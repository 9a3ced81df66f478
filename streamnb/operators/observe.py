"""Operators that observe: ``monitor`` (a meter) and ``window`` (the latest items).

Both are fused: a monitor costs nothing per item after one-to-one operators (the fuser gives
it the run's own counter as ``$count``) and one increment otherwise; its meter is the run's
``"monitor"`` observable. A window appends every item to a bounded ring.

Example::

    Stream(rows).then(Monitor("rows", size=len))      # what Stream.monitor("rows", size=len) does
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._validate import check_int, check_number, check_seconds
from ..errors import ArgumentTypeError
from ..metrics import Meter
from ..window import Window as RingWindow
from .base import Fragment, Link, Operator

__all__ = ["Monitor", "Window"]


class Monitor(Operator):
    """Count what passes this point under ``name`` (see :class:`streamnb.Meter`)."""

    def __init__(
        self,
        name: str,
        size: Callable[[Any], int] | None = None,
        timestamp: Callable[[Any], float] | None = None,
        total: int | None = None,
        log_every: float | None = None,
        log_every_items: int | None = None,
    ) -> None:
        if not isinstance(name, str):
            raise ArgumentTypeError(f"monitor(name={name!r}): expected a str")
        if total is not None:
            check_int("monitor", "total", total)
        if log_every is not None:
            check_seconds("monitor", "log_every", log_every)
        if log_every_items is not None:
            check_int("monitor", "log_every_items", log_every_items, minimum=1)
        self.label = f"monitor({name!r})"
        self.name = name
        self.size = size
        self.timestamp = timestamp
        self.total = total
        self.log_every = log_every
        self.log_every_items = log_every_items

    def fragment(self, link: Link) -> Fragment:
        m = Meter(
            self.name,
            size=self.size,
            timestamp=self.timestamp,
            total=self.total,
            log_every=self.log_every,
            log_every_items=self.log_every_items,
        )
        if link.prev is not None:
            m.buffer, m.dead_letter = link.prev.buffer, link.prev.dead_letter
        m.start()
        link.run.observe("monitor", m)
        params: dict[str, Any] = {"m": m}
        local: dict[str, str | None] = {}
        body: list[str] = []
        nbytes, last = "0", "None"
        if self.size is not None:
            params["size"] = self.size
            local["nbytes"] = "0"
            body.append("$nbytes += $size(x)")
            nbytes = "$nbytes"
        if self.timestamp is not None:
            # on every item, not at publication ticks: a timestamp that fails, fails on the
            # same item whatever the speed of the stream, with a note naming this monitor
            params["stamp"] = self.timestamp
            local["last"] = "None"
            body.append("$last = $stamp(x)")
            last = "$last"
        return Fragment(
            body=tuple(body),
            params=params,
            locals=local,
            final=(f"$m.finish($count, {nbytes}, _exc)",),
            publish=("$count", nbytes, last),
            meter=m,
            calls_user=self.size is not None or self.timestamp is not None,
        )


class Window(Operator):
    """Keep the most recent items (``last`` of them, or those of the last ``seconds``) in a
    bounded ring, registered as ``run.windows[name]``."""

    def __init__(self, last: int | None, seconds: float | None, name: str) -> None:
        if last is not None:
            check_int("window", "last", last, minimum=None)
        if seconds is not None:
            check_number("window", "seconds", seconds)  # type, NaN, infinity; the sign below
        self.label = f"window({name!r})"
        self.name = name
        self.last, self.seconds = last, seconds
        RingWindow(last=last, seconds=seconds)  # range checks: WindowConfigError

    def fragment(self, link: Link) -> Fragment:
        w = RingWindow(last=self.last, seconds=self.seconds, name=self.name)
        run = link.run
        run.windows[run.unique(run.windows, self.name, "window")] = w
        return Fragment(body=("$w(x)",), params={"w": w.append}, calls_user=False)

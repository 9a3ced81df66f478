"""Live counters of one HTTP call (one run of an HTTP Stream, reconnects included).

Each iteration of an ``sse`` / ``ndjson`` / ``websocket`` / ``chat`` Stream creates a
:class:`HttpCallStats` and registers it on its run (``run.observe("call", stats)``), so the
dashboard and ``iteration.snapshots("call")`` see it as a
:class:`~streamnb.metrics.CallSnapshot`. The hot path only increments integers; bytes are read
from the transport's own counter when a snapshot is taken.

Example::

    async with sse(url).open() as it:
        async for _ in it:
            pass
        snap = it.snapshots("call")["sse"]
        print(snap.received, snap.reconnects, snap.code)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from streamnb.metrics import CallSnapshot

__all__ = ["HttpCallStats", "HttpShape"]

HttpShape = Literal["sse", "ndjson", "websocket", "chat"]


class HttpCallStats:
    """Counters of one HTTP Stream run; ``snapshot()`` gives a frozen CallSnapshot.

    ``method`` is the request line shown everywhere (``"GET http://host/feed"``, the URL already
    redacted). ``code`` is ``None`` while running, then ``"OK"``, ``"CANCELLED"``, the HTTP status
    (``"401"``) or the failure's type name.
    """

    __slots__ = (
        "_bytes_in",
        "bytes_received",
        "bytes_sent",
        "code",
        "decode_errors",
        "errors",
        "finished",
        "method",
        "name",
        "received",
        "reconnects",
        "sent",
        "shape",
        "started",
    )

    def __init__(self, name: str, method: str, shape: HttpShape) -> None:
        self.name = name
        self.method = method
        self.shape = shape
        self.sent = 0
        self.received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.errors = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.code: str | None = None
        self.started = time.monotonic()
        self.finished: float | None = None
        self._bytes_in: Callable[[], int] | None = None

    def attach(self, bytes_in: Callable[[], int] | None) -> None:
        """Read live received bytes from ``bytes_in`` (the open response) until detached."""
        self._bytes_in = bytes_in

    def detach(self) -> None:
        """Fold the open response's bytes into the total (the connection is closing)."""
        if self._bytes_in is not None:
            self.bytes_received += self._bytes_in()
            self._bytes_in = None

    def finish(self, code: str) -> None:
        """Record how the run ended (the first call wins)."""
        self.detach()
        if self.finished is None:
            self.code = code
            self.finished = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds from start to finish (to now while running)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return max(0.0, end - self.started)

    def snapshot(self) -> CallSnapshot:
        """A frozen copy of the counters (cheap; safe from any task)."""
        live = self._bytes_in() if self._bytes_in is not None else 0
        return CallSnapshot(
            name=self.name,
            method=self.method,
            shape=self.shape,
            sent=self.sent,
            received=self.received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received + live,
            errors=self.errors,
            decode_errors=self.decode_errors,
            reconnects=self.reconnects,
            code=self.code,
            elapsed=self.elapsed,
            taken_at=time.monotonic(),
        )

    def __repr__(self) -> str:
        return (
            f"HttpCallStats({self.name!r}, {self.method!r}, received={self.received}, "
            f"reconnects={self.reconnects}, code={self.code!r})"
        )

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

import dataclasses
from collections.abc import Callable
from typing import Literal

from streamnb._callstats import CallStats
from streamnb.metrics import CallSnapshot

__all__ = ["HttpCallStats", "HttpShape"]

HttpShape = Literal["sse", "ndjson", "websocket", "chat"]


class HttpCallStats(CallStats):
    """Counters of one HTTP Stream run (a :class:`~streamnb._callstats.CallStats`, started when
    made); ``snapshot()`` gives a frozen CallSnapshot.

    ``method`` is the request line shown everywhere (``"GET http://host/feed"``, the URL already
    redacted). ``code`` is ``None`` while running, then ``"OK"``, ``"CANCELLED"``, the HTTP status
    (``"401"``) or the failure's type name. What HTTP adds is the received-bytes reader of the
    open response (:meth:`attach` / :meth:`detach`): httpx counts the bytes, so the hot path
    does not.
    """

    __slots__ = ("_bytes_in",)

    def __init__(self, name: str, method: str, shape: HttpShape) -> None:
        super().__init__(name, method, shape)
        self.start()
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
        """Fold in the open response's bytes, then record how the run ended (first call wins)."""
        self.detach()
        super().finish(code)

    def snapshot(self) -> CallSnapshot:
        """A frozen copy of the counters, the open response's bytes included."""
        bytes_in = self._bytes_in
        snap = super().snapshot()
        if bytes_in is None:
            return snap
        return dataclasses.replace(snap, bytes_received=snap.bytes_received + bytes_in())

"""The live counters of one call, shared by every client that makes calls (gRPC, HTTP).

One run of a call - a unary await, one iteration of a response Stream, reconnects included -
owns one :class:`CallStats`, registered on its run as a ``"call"`` observable. The client's hot
path writes its plain attributes (one increment or assignment per message, nothing computed);
readers - the dashboard, logs, ``iteration.snapshots("call")``, ``client.history`` - take
:meth:`CallStats.snapshot`, a frozen :class:`~streamnb.metrics.CallSnapshot`.

The clients add what only they need in a subclass: ``streamnb.grpc``'s ``CallCounters`` the
"already counted" marker of a failure, ``streamnb.http``'s ``HttpCallStats`` a byte counter
read from the open response.

Example::

    stats = CallStats("feed", "GET http://host/feed", "sse")
    stats.start()
    stats.sent += 1
    stats.received += 3
    stats.finish("OK")
    assert stats.snapshot().received == 3
"""

from __future__ import annotations

import time

from .metrics import CallSnapshot

__all__ = ["CallStats"]


class CallStats:
    """Counters of one run of a call; :meth:`snapshot` gives a frozen CallSnapshot.

    ``name`` is the call's name in the run (unique among its ``"call"`` observables),
    ``method`` what is called (a gRPC method path, an HTTP request line with the URL already
    redacted), ``shape`` its kind (``"unary"``... ``"bidi"``, ``"sse"``... ``"chat"``).
    ``errors`` counts failed attempts and undecodable messages; ``code`` is ``None`` while the
    call runs, then how it ended (``"OK"``, ``"CANCELLED"``, a status, a failure's type name).
    ``started`` is 0.0 until :meth:`start`, ``finished`` None until :meth:`finish`.

    >>> stats = CallStats("sum", "/pkg.Calc/Sum", "unary")
    >>> stats.snapshot().elapsed, stats.snapshot().code
    (0.0, None)
    """

    __slots__ = (
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

    def __init__(self, name: str, method: str, shape: str) -> None:
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
        self.started = 0.0
        self.finished: float | None = None

    def start(self) -> None:
        """Mark the call started: its ``elapsed`` runs from now."""
        self.started = time.monotonic()

    def finish(self, code: str) -> None:
        """Record how the run ended: ``code`` and the end time (the first call wins)."""
        if self.finished is None:
            self.code = code
            self.finished = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds from :meth:`start` to :meth:`finish` (to now while running; 0 before)."""
        if not self.started:
            return 0.0
        end = self.finished if self.finished is not None else time.monotonic()
        return max(0.0, end - self.started)

    def snapshot(self) -> CallSnapshot:
        """The counters now, frozen (cheap; safe from any task)."""
        return CallSnapshot(
            name=self.name,
            method=self.method,
            shape=self.shape,
            sent=self.sent,
            received=self.received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            errors=self.errors,
            decode_errors=self.decode_errors,
            reconnects=self.reconnects,
            code=self.code,
            elapsed=self.elapsed,
            taken_at=time.monotonic(),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, {self.method!r}, received={self.received}, "
            f"reconnects={self.reconnects}, code={self.code!r})"
        )

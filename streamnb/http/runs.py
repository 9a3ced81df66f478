"""Plumbing every run of an HTTP Stream shares: its call name, its stats, its decode policy,
its request, its logs.

Each ``sse`` / ``ndjson`` / ``websocket`` / ``chat`` function checks its arguments into a
:class:`CallPlan` and returns ``plan.stream(body)``: every run then starts a :class:`Call`
(named ``name=``, else the shape - ``"sse"``, then ``"sse#2"``... when one run holds several),
registers its :class:`~streamnb.http.stats.HttpCallStats` on the run and, for
``on_decode_error="skip"``, its DeadLetter (``iteration.dead_letters[name]``), and iterates
``body(call)``. The body keeps its own protocol; what every body does around it is here:
``async with call.running(headers):`` logs the start and records how the run ended (once),
``async with call.request(client, req, extra) as response:`` sends one request, counts it,
reads its bytes live and turns a bad status or a broken connection into an
:class:`~streamnb.errors.HttpError`. Undecodable events go through :meth:`Call.undecodable`:
raised as :class:`~streamnb.errors.HttpDecodeError` naming the event's index, or counted and
kept.

Example::

    plan = CallPlan("ndjson", req.method, req.shown, on_decode_error, dead_letter, name=name)
    return plan.stream(lambda call: _ndjson_run(call, req, spec, decoder))

Logs (structlog, stable names, URLs and headers redacted): ``streamnb.http.call_started``
(debug), ``call_finished`` (debug), ``call_failed`` (info), ``reconnect`` (info). Nothing is
logged per event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, TypeVar

import httpx

from streamnb.recovery import DeadLetter
from streamnb.stream import Stream

from .._log import get_logger
from .._runstate import RunState
from .._validate import check_choice
from ..errors import ArgumentTypeError, HttpDecodeError, HttpError
from .redact import redact_headers
from .stats import HttpCallStats, HttpShape
from .transport import RequestSpec, broken, check_response

__all__ = ["Call", "CallPlan", "DecodePolicy"]

log = get_logger("streamnb.http")

DecodePolicy = Literal["raise", "skip"]

T = TypeVar("T")


class Call:
    """One run's call: its shown URL, its stats, where undecodable events go."""

    __slots__ = ("dead_letter", "name", "stats", "url")

    def __init__(
        self, name: str, url: str, stats: HttpCallStats, dead_letter: DeadLetter[Any] | None
    ) -> None:
        self.name = name
        self.url = url
        self.stats = stats
        self.dead_letter = dead_letter

    def undecodable(self, index: int, data: str, exc: Exception) -> None:
        """Raise HttpDecodeError for event ``index``, or send it to the dead letter."""
        self.stats.decode_errors += 1
        err = HttpDecodeError(self.url, index, data, f"{type(exc).__name__}: {exc}")
        if self.dead_letter is None:
            self.stats.errors += 1
            raise err from exc
        err.__cause__ = exc
        self.dead_letter.add(self.name, index, data, err)

    def started(self, headers: Mapping[str, str], **extra: Any) -> None:
        log.debug(
            "streamnb.http.call_started",
            call=self.name,
            method=self.stats.method,
            headers=redact_headers(headers),
            **extra,
        )

    def finished(self) -> None:
        self.stats.finish("OK")
        log.debug("streamnb.http.call_finished", **self.stats.snapshot().as_dict())

    def failed(self, exc: BaseException) -> None:
        """Record how the run ended on an exception (a consumer's stop is CANCELLED)."""
        if isinstance(exc, GeneratorExit | asyncio.CancelledError):
            self.stats.finish("CANCELLED")
            log.debug("streamnb.http.call_finished", **self.stats.snapshot().as_dict())
            return
        if isinstance(exc, HttpDecodeError):
            code = "DECODE_ERROR"
        elif isinstance(exc, HttpError) and exc.status is not None:
            code = str(exc.status)
        else:
            code = type(exc).__name__
        self.stats.finish(code)
        log.info(
            "streamnb.http.call_failed",
            error=f"{type(exc).__name__}: {exc}",
            **self.stats.snapshot().as_dict(),
        )

    @contextlib.asynccontextmanager
    async def running(self, headers: Mapping[str, str], **extra: Any) -> AsyncIterator[None]:
        """The whole run: logged as started (``extra`` goes into the log event), then recorded
        as finished, or failed on an exception (a consumer's stop is CANCELLED) - once."""
        self.started(headers, **extra)
        try:
            yield
        except BaseException as exc:
            self.failed(exc)
            raise
        self.finished()

    @contextlib.asynccontextmanager
    async def request(
        self, client: httpx.AsyncClient, req: RequestSpec, extra: Mapping[str, str]
    ) -> AsyncIterator[httpx.Response]:
        """One request of the run, its response open for the block.

        The request is counted in ``sent`` and its received bytes read live from httpx (folded
        into the total when the response closes); a status >= 400 raises
        :class:`~streamnb.errors.HttpError` with a body excerpt, a connection that fails or
        breaks (``httpx.TransportError``, in the block too) a retryable one naming the events
        received so far.
        """
        stats = self.stats
        try:
            async with req.send(client, extra) as response:
                stats.sent += 1
                stats.attach(lambda: response.num_bytes_downloaded)
                await check_response(response, req.shown, req.method, stats.received, req.secrets)
                yield response
        except httpx.TransportError as exc:
            raise broken(exc, req.shown, req.method, stats.received) from exc
        finally:
            stats.detach()


class CallPlan:
    """What every run of one HTTP Stream starts from, checked when the Stream is made.

    ``shape`` is the function (``"sse"``...), which names the call by default and the errors;
    ``method`` and ``url`` (already redacted) make the request line shown in snapshots and
    logs. ``on_decode_error`` / ``dead_letter`` are checked here, so a bad one fails at once.

    >>> plan = CallPlan("ndjson", "GET", "http://host/rows", "skip", None, name=None)
    >>> plan.policy
    'skip'
    """

    __slots__ = ("dead_letter", "method", "name", "policy", "shape", "url")

    def __init__(
        self,
        shape: HttpShape,
        method: str,
        url: str,
        on_decode_error: Any,
        dead_letter: Any,
        *,
        name: str | None,
    ) -> None:
        policy = check_choice(shape, "on_decode_error", on_decode_error, ("raise", "skip"))
        if dead_letter is not None and not isinstance(dead_letter, DeadLetter):
            raise ArgumentTypeError(
                f"{shape}(dead_letter={type(dead_letter).__name__}): expected a streamnb.DeadLetter"
            )
        self.shape: HttpShape = shape
        self.method = method
        self.url = url
        self.name = name
        self.policy: DecodePolicy = "skip" if policy == "skip" else "raise"
        self.dead_letter: DeadLetter[Any] | None = dead_letter

    def start(self, run: RunState) -> Call:
        """Name the call, register its stats (and dead letter) on ``run``."""
        name = self.name if self.name is not None else run.free_name("call", self.shape)
        stats = HttpCallStats(name, f"{self.method} {self.url}", self.shape)
        run.observe("call", stats)
        dl = None
        if self.policy == "skip":
            dl = self.dead_letter if self.dead_letter is not None else DeadLetter()
            run.dead_letters[run.unique(run.dead_letters, name, "dead-letter")] = dl
        return Call(name, self.url, stats, dl)

    def stream(self, body: Callable[[Call], AsyncIterator[T]]) -> Stream[T]:
        """The Stream whose every run starts a :class:`Call` and iterates ``body(call)``."""

        def open_run(run: RunState) -> AsyncIterator[T]:
            return body(self.start(run))

        return Stream.from_run(open_run)

"""Plumbing one run of an HTTP Stream shares: its call name, its stats, its decode policy, logs.

Every ``sse`` / ``ndjson`` / ``websocket`` / ``chat`` run starts with :func:`start_call`, which
names the call (``name=``, else the shape - ``"sse"``, then ``"sse#2"``... when one run holds
several), registers its :class:`~streamnb.http.stats.HttpCallStats` on the run and, for
``on_decode_error="skip"``, its DeadLetter (``iteration.dead_letters[name]``). Undecodable
events go through :meth:`Call.undecodable`: raised as
:class:`~streamnb.errors.HttpDecodeError` naming the event's index, or counted and kept.

Logs (structlog, stable names, URLs and headers redacted): ``streamnb.http.call_started``
(debug), ``call_finished`` (debug), ``call_failed`` (info), ``reconnect`` (info). Nothing is
logged per event.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Literal

from streamnb.recovery import DeadLetter

from .._log import get_logger
from .._runstate import RunState
from .._validate import check_choice
from ..errors import ArgumentTypeError, HttpDecodeError, HttpError
from .redact import redact_headers
from .stats import HttpCallStats, HttpShape

__all__ = ["Call", "DecodePolicy", "check_decode_policy", "start_call"]

log = get_logger("streamnb.http")

DecodePolicy = Literal["raise", "skip"]


def check_decode_policy(
    method: str, on_decode_error: Any, dead_letter: Any
) -> tuple[DecodePolicy, DeadLetter[Any] | None]:
    """Validate ``on_decode_error`` / ``dead_letter`` up front."""
    policy = check_choice(method, "on_decode_error", on_decode_error, ("raise", "skip"))
    if dead_letter is not None and not isinstance(dead_letter, DeadLetter):
        raise ArgumentTypeError(
            f"{method}(dead_letter={type(dead_letter).__name__}): expected a streamnb.DeadLetter"
        )
    return ("skip" if policy == "skip" else "raise"), dead_letter


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


def start_call(
    run: RunState,
    shape: HttpShape,
    name: str | None,
    method: str,
    url: str,
    policy: DecodePolicy,
    dead_letter: DeadLetter[Any] | None,
) -> Call:
    """Name the call, register its stats (and dead letter) on ``run``."""
    if name is None:
        taken = set(run.observed("call"))
        name = shape
        n = 1
        while name in taken:
            n += 1
            name = f"{shape}#{n}"
    stats = HttpCallStats(name, f"{method} {url}", shape)
    run.observe("call", stats)
    dl = dead_letter
    if policy == "skip":
        dl = dl if dl is not None else DeadLetter()
        run.dead_letters[run.unique(run.dead_letters, name, "dead-letter")] = dl
    return Call(name, url, stats, dl if policy == "skip" else None)

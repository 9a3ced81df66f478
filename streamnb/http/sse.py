"""Server-Sent Events as a Stream, resumed with ``Last-Event-ID`` across dropped connections.

``sse(url)`` is a :class:`~streamnb.Stream`: each iteration sends one request (httpx, parsed
by httpx-sse) and yields one item per event; ``break``, cancellation or closing the iteration
closes the response and its connection, so the server sees the client leave.

**Ends and drops.** A response body that ends cleanly ends the Stream. A connection that breaks
(reset, a body cut short, a read timeout) or a retryable status (408, 429, 502, 503, 504) is
*resumed*: the request is sent again with ``Last-Event-ID: <id of the last event handled>``,
after ``retry``'s backoff (or the server's ``retry:`` field), so a server that honours the header
continues right after it - nothing lost, nothing repeated. Events without an ``id:`` cannot be
resumed exactly: a drop after such events raises instead of guessing. ``resume=False`` raises
on the first drop. Other statuses raise :class:`~streamnb.errors.HttpError` at once.

**Decoding.** ``decode="json"`` (default) yields ``json.loads(event.data)``; ``"text"`` the data
string; ``"event"`` httpx-sse's ``ServerSentEvent`` (``event``, ``data``, ``id``, ``retry``); a
callable gets the ``ServerSentEvent``. An event that does not decode raises
:class:`~streamnb.errors.HttpDecodeError` naming its index (counted over the run), or with
``on_decode_error="skip"`` goes to the run's DeadLetter (``iteration.dead_letters[name]``).

Example::

    feed = sse(f"{srv.http_url}/sse/feed", params={"count": 1000, "drop_after": 300})
    assert [e["seq"] for e in await feed.collect()] == list(range(1000))
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Literal

import httpx
from httpx_sse import EventSource, ServerSentEvent

from streamnb.recovery import DeadLetter, RetryPolicy
from streamnb.stream import Stream

from .._validate import check_choice
from ..errors import ArgumentTypeError, HttpError
from .runs import Call, CallPlan, DecodePolicy, log
from .transport import DEFAULT_TIMEOUT, ClientSpec, RequestSpec, TimeoutLike, expect_content_type

__all__ = ["DEFAULT_RETRY", "SseDecode", "sse"]

SseDecode = Literal["json", "text", "event"] | Callable[[ServerSentEvent], Any]

#: Reconnection policy of ``sse`` unless you pass one: 8 attempts without progress, 50 ms
#: doubling up to 2 s, for broken connections and retryable statuses.
DEFAULT_RETRY = RetryPolicy(
    max_attempts=8,
    initial=0.05,
    max_delay=2.0,
    retry_on=lambda exc: isinstance(exc, HttpError) and exc.retryable,
)


def _decoder(decode: Any) -> Callable[[ServerSentEvent], Any] | None:
    """None means "the event itself"; otherwise a function of the event."""
    if callable(decode):
        return decode  # type: ignore[no-any-return]
    mode = check_choice("sse", "decode", decode, ("json", "text", "event"))
    if mode == "event":
        return None
    if mode == "text":
        return _data
    return _json_data


def _data(ev: ServerSentEvent) -> str:
    return ev.data


def _json_data(ev: ServerSentEvent) -> Any:
    return json.loads(ev.data)  # (inlined in the run loop)


def sse(
    url: str,
    *,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    decode: SseDecode = "json",
    last_event_id: str | None = None,
    resume: bool = True,
    retry: RetryPolicy | None = None,
    on_decode_error: DecodePolicy = "raise",
    dead_letter: DeadLetter[Any] | None = None,
    name: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: TimeoutLike = DEFAULT_TIMEOUT,
    verify: bool | str | ssl.SSLContext = True,
    proxy: str | httpx.Proxy | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> Stream[Any]:
    """A Stream of the events of ``url`` (see the module docstring).

    ``method``, ``params``, ``headers``, ``json`` / ``content`` make the request;
    ``last_event_id`` starts after that id. ``client`` is an ``httpx.AsyncClient`` to use (not
    closed by streamnb); otherwise one is made per run from ``timeout``, ``verify``, ``proxy``
    and ``client_kwargs``. ``name`` names the call in ``iteration.snapshots("call")``.
    """
    req = RequestSpec("sse", url, method, params, headers, json, content)
    decoder = _decoder(decode)
    plan = CallPlan("sse", req.method, req.shown, on_decode_error, dead_letter, name=name)
    if last_event_id is not None and not isinstance(last_event_id, str):
        raise ArgumentTypeError(f"sse(last_event_id={last_event_id!r}): expected a str")
    if retry is not None and not isinstance(retry, RetryPolicy):
        raise ArgumentTypeError(f"sse(retry={type(retry).__name__}): expected a RetryPolicy")
    spec = ClientSpec.build(
        "sse",
        client=client,
        timeout=timeout,
        verify=verify,
        proxy=proxy,
        client_kwargs=client_kwargs,
    )
    retry_policy = retry or DEFAULT_RETRY
    return plan.stream(
        lambda call: _sse_run(call, req, spec, decoder, last_event_id, resume, retry_policy)
    )


async def _sse_run(
    call: Call,
    req: RequestSpec,
    spec: ClientSpec,
    decoder: Callable[[ServerSentEvent], Any] | None,
    last_event_id: str | None,
    resume: bool,
    retry: RetryPolicy,
) -> AsyncIterator[Any]:
    stats = call.stats
    loads = json.loads if decoder is _json_data else None
    index = 0  # events handled over the run (delivered or dead-lettered)
    last_id = last_event_id or ""
    unresumable = 0  # events handled since the last one that carried an id
    failures = 0
    server_retry: int | None = None
    async with call.running(req.headers, last_event_id=last_event_id), spec.open() as client:
        while True:
            progressed = False
            extra = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if last_id:
                extra["Last-Event-ID"] = last_id
            try:
                async with call.request(client, req, extra) as response:
                    expect_content_type(response, ("text/event-stream",), req.shown, req.method)
                    events = EventSource(response).aiter_sse()
                    try:
                        async for ev in events:
                            # the hot path: a few local updates per event, no logging
                            event_id = ev.id
                            if event_id:
                                last_id, unresumable = event_id, 0
                            else:
                                unresumable += 1
                            retry_ms = ev.retry
                            if retry_ms is not None:
                                server_retry = retry_ms
                            i = index
                            index = stats.received = i + 1
                            progressed = True
                            try:
                                if loads is not None:
                                    item = loads(ev.data)
                                elif decoder is not None:
                                    item = decoder(ev)
                                else:
                                    item = ev
                            except Exception as exc:
                                call.undecodable(i, ev.data, exc)
                                continue
                            yield item
                    finally:
                        await events.aclose()  # before the response closes
                return
            except HttpError as exc:  # a bad status, or the connection broke (retryable)
                if not exc.retryable or not resume:
                    raise
                err = exc
            if unresumable:
                err.add_note(
                    f"not resumed: the last {unresumable} event(s) carried no id, so a "
                    "reconnection could not continue exactly after them"
                )
                raise err
            if not retry.retry_on(err):
                raise err
            failures = 1 if progressed else failures + 1
            stats.errors += 1
            if failures >= retry.max_attempts:
                err.add_note(
                    f"gave up after {failures} failed attempt(s) in a row without an event"
                )
                raise err
            delay = server_retry / 1000 if server_retry is not None else retry.delay(failures)
            log.info(
                "streamnb.http.reconnect",
                call=call.name,
                url=req.shown,
                attempt=failures,
                received=index,
                last_event_id=last_id,
                delay=round(delay, 3),
                error=str(err),
            )
            await asyncio.sleep(delay)
            stats.reconnects += 1

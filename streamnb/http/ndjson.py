"""Newline-delimited JSON (NDJSON, JSON Lines) as a Stream: one item per line of the response.

Each iteration sends one request and yields ``json.loads(line)`` per non-blank line (or
``decode(line)`` with your function). ``break``/cancel closes the response and its connection.
A status >= 400 raises :class:`~streamnb.errors.HttpError` with a body excerpt; a connection
that breaks mid-body raises a retryable ``HttpError`` without status (NDJSON has no resume
protocol: wrap the Stream in ``Stream.resilient`` with your own offset if the server has one).
A line that does not decode raises :class:`~streamnb.errors.HttpDecodeError` naming its index,
or with ``on_decode_error="skip"`` goes to the run's DeadLetter.

Example::

    rows = ndjson(f"{srv.http_url}/ndjson/feed", params={"count": 100})
    print(await rows.map(lambda r: r["seq"]).collect())
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, cast

import httpx

from streamnb.recovery import DeadLetter
from streamnb.stream import Stream

from ..errors import ArgumentTypeError
from .runs import Call, CallPlan, DecodePolicy
from .transport import DEFAULT_TIMEOUT, ClientSpec, RequestSpec, TimeoutLike

__all__ = ["ndjson"]


def ndjson(
    url: str,
    *,
    method: str = "GET",
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    decode: Callable[[str], Any] | None = None,
    on_decode_error: DecodePolicy = "raise",
    dead_letter: DeadLetter[Any] | None = None,
    name: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: TimeoutLike = DEFAULT_TIMEOUT,
    verify: bool | str | ssl.SSLContext = True,
    proxy: str | httpx.Proxy | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> Stream[Any]:
    """A Stream of the JSON lines of ``url`` (see the module docstring; options as ``sse``)."""
    req = RequestSpec("ndjson", url, method, params, headers, json, content)
    if decode is not None and not callable(decode):
        raise ArgumentTypeError(f"ndjson(decode={decode!r}): expected a function of a line")
    decoder = decode or _loads
    plan = CallPlan("ndjson", req.method, req.shown, on_decode_error, dead_letter, name=name)
    spec = ClientSpec.build(
        "ndjson",
        client=client,
        timeout=timeout,
        verify=verify,
        proxy=proxy,
        client_kwargs=client_kwargs,
    )
    return plan.stream(lambda call: _ndjson_run(call, req, spec, decoder))


_loads = json.loads


async def _ndjson_run(
    call: Call, req: RequestSpec, spec: ClientSpec, decoder: Callable[[str], Any]
) -> AsyncIterator[Any]:
    stats = call.stats
    index = 0
    async with call.running(req.headers), spec.open() as client:
        async with call.request(client, req, {"Accept": "application/x-ndjson"}) as response:
            # typed as an AsyncIterator, httpx's aiter_lines is an async generator: closed below
            lines = cast(AsyncGenerator[str, None], response.aiter_lines())
            try:
                async for line in lines:
                    if not line.strip():
                        continue
                    i = index
                    index = stats.received = i + 1
                    try:
                        item = decoder(line)
                    except Exception as exc:
                        call.undecodable(i, line, exc)
                        continue
                    yield item
            finally:
                await lines.aclose()

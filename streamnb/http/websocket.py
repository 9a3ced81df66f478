"""A WebSocket as a Stream: messages received as items, messages to send from any iterable.

``websocket(url, send=...)`` opens one connection per iteration (the ``websockets`` library).
``send`` - a list, a (async) generator, a Stream, or None - is sent by its own task while the
Stream yields what arrives: ``str`` as a text frame, ``bytes`` as a binary frame, anything else
as JSON text. The Stream ends when the server closes normally (code 1000/1001); any other close
raises :class:`~streamnb.errors.HttpError` (no status; the close code in ``reason``), as does a
refused handshake (with the HTTP status). ``break``/cancel closes the connection (the server
sees the close frame) and stops the sender; a ``send`` source that raises closes the
connection and the consumer gets that exception.

``decode="json"`` (default) yields ``json.loads(message)``; ``"text"`` the message as is (str or
bytes); a callable gets the message. Undecodable messages raise
:class:`~streamnb.errors.HttpDecodeError` by index, or go to a DeadLetter with
``on_decode_error="skip"``.

Example::

    echo = websocket(f"{srv.ws_url}/ws/echo", send=[{"n": 1}, {"n": 2}])
    assert await echo.take(2).collect() == [{"n": 1}, {"n": 2}]
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Literal

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from streamnb.recovery import DeadLetter
from streamnb.stream import Stream

from .._validate import check_choice, check_seconds
from ..errors import ArgumentTypeError, HttpError, InvalidArgumentError
from .redact import is_sensitive, redact_url
from .runs import Call, CallPlan, DecodePolicy
from .transport import merge_headers, scrub

__all__ = ["WsDecode", "websocket"]

WsDecode = Literal["json", "text"] | Callable[[str | bytes], Any]
_NORMAL_CLOSE = (1000, 1001)


def websocket(
    url: str,
    *,
    send: Iterable[Any] | AsyncIterable[Any] | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    decode: WsDecode = "json",
    on_decode_error: DecodePolicy = "raise",
    dead_letter: DeadLetter[Any] | None = None,
    name: str | None = None,
    open_timeout: float = 10.0,
    verify: bool | ssl.SSLContext = True,
    proxy: str | None = None,
    max_size: int | None = 1 << 20,
    connect_kwargs: Mapping[str, Any] | None = None,
) -> Stream[Any]:
    """A Stream of the messages of the WebSocket at ``url`` (``ws://`` or ``wss://``).

    ``headers`` go with the handshake; ``open_timeout`` bounds it; ``verify=False`` (or an
    ``ssl.SSLContext``) for TLS; ``proxy`` a proxy URL (default: none - environment proxies are
    not used unless you pass ``connect_kwargs={"proxy": True}``); ``max_size`` the largest
    message accepted (bytes); ``connect_kwargs`` any other ``websockets`` connect option.
    """
    if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
        raise InvalidArgumentError(
            f"websocket(url={redact_url(str(url))!r}): expected a ws:// or wss:// URL"
        )
    if send is not None and not (hasattr(send, "__aiter__") or hasattr(send, "__iter__")):
        raise ArgumentTypeError(
            f"websocket(send={type(send).__name__}): expected an iterable, an async iterable, "
            "a Stream or None"
        )
    if isinstance(send, str | bytes):
        raise ArgumentTypeError("websocket(send=...): pass a list of messages, not one message")
    if callable(decode):
        decoder: Callable[[str | bytes], Any] | None = decode
    else:
        mode = check_choice("websocket", "decode", decode, ("json", "text"))
        decoder = json.loads if mode == "json" else None
    shown = redact_url(url)
    plan = CallPlan("websocket", "GET", shown, on_decode_error, dead_letter, name=name)
    timeout = check_seconds("websocket", "open_timeout", open_timeout)
    hdrs = merge_headers("websocket", headers)
    secrets = tuple(v for k, v in hdrs.items() if is_sensitive(k))
    options: dict[str, Any] = {"proxy": proxy, "max_size": max_size, "open_timeout": timeout}
    if url.startswith("wss://"):
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            options["ssl"] = ctx
        elif isinstance(verify, ssl.SSLContext):
            options["ssl"] = verify
    options.update(connect_kwargs or {})
    if hdrs:
        options["additional_headers"] = hdrs
    return plan.stream(lambda call: _ws_run(call, url, options, send, decoder, secrets))


def _encode(message: Any, index: int, url: str) -> str | bytes:
    if isinstance(message, str | bytes):
        return message
    try:
        return json.dumps(message)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"websocket({url!r}): message #{index} to send is neither str, bytes nor "
            f"JSON-serialisable ({type(message).__name__}: {exc})"
        ) from exc


async def _send_all(ws: Any, send: Any, call: Call) -> None:
    stats = call.stats
    index = 0
    async with Stream(send).open() as messages:
        async for message in messages:
            data = _encode(message, index, call.url)
            await ws.send(data)
            index += 1
            stats.sent = index
            stats.bytes_sent += len(data)


async def _recv_or_sender_error(ws: Any, sender: asyncio.Task[None]) -> str | bytes | None:
    """The next message, or None when the sender finished first (its error is raised)."""
    recv = asyncio.ensure_future(ws.recv())
    try:
        await asyncio.wait({recv, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not recv.done():
            recv.cancel()  # websockets' recv() is safe to cancel: no message is lost
            await asyncio.wait([recv])
    if sender.done() and not sender.cancelled():
        err = sender.exception()
        if err is not None:
            raise err
    if recv.cancelled():
        return None
    message: str | bytes = recv.result()
    return message


async def _ws_run(
    call: Call,
    url: str,
    options: dict[str, Any],
    send: Any,
    decoder: Callable[[str | bytes], Any] | None,
    secrets: tuple[str, ...],
) -> AsyncIterator[Any]:
    stats = call.stats
    index = 0
    async with call.running(options.get("additional_headers") or {}):
        try:
            ws = await connect(url, **options)
        except InvalidStatus as exc:
            body = scrub(bytes(exc.response.body or b"").decode("utf-8", "replace"), secrets)
            raise HttpError(
                call.url,
                exc.response.status_code,
                body,
                reason=f"{exc.response.reason_phrase} (the WebSocket handshake was refused)",
            ) from None
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise HttpError(call.url, None, reason=f"{type(exc).__name__}: {exc}") from exc
        sender: asyncio.Task[None] | None = None
        try:
            if send is not None:
                sender = asyncio.get_running_loop().create_task(
                    _send_all(ws, send, call), name=f"streamnb.http.websocket send {call.url}"
                )
            try:
                while True:
                    if sender is not None and not sender.done():
                        message = await _recv_or_sender_error(ws, sender)
                        if message is None:
                            continue  # the sender finished: keep receiving
                    else:
                        message = await ws.recv()
                    i = index
                    index = stats.received = i + 1
                    stats.bytes_received += len(message)
                    if decoder is None:
                        yield message
                        continue
                    try:
                        item = decoder(message)
                    except Exception as exc:
                        text = message if isinstance(message, str) else repr(message)
                        call.undecodable(i, text, exc)
                        continue
                    yield item
            except ConnectionClosed as exc:
                rcvd = exc.rcvd
                if rcvd is not None and rcvd.code in _NORMAL_CLOSE:
                    return  # a normal close: the run finished
                code = rcvd.code if rcvd is not None else 1006
                reason = rcvd.reason if rcvd is not None else "no close frame"
                raise HttpError(
                    call.url,
                    None,
                    reason=f"the WebSocket closed with code {code}: {reason or '(no reason)'}",
                    received=index,
                ) from exc
        finally:
            if sender is not None and not sender.done():
                sender.cancel()
            if sender is not None:
                await asyncio.wait([sender])
                if not sender.cancelled():
                    sender.exception()  # retrieved: no "never retrieved" warning
            await ws.close()

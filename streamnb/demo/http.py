"""The demo server's HTTP side: an OpenAI-compatible chat, SSE and NDJSON feeds, WebSockets.

An aiohttp web server on 127.0.0.1 (ephemeral port by default) that needs no network and no
model. ``DemoServer(http=True)`` starts it next to the gRPC services (``server.http_url``);
:class:`HttpDemoServer` runs it alone (only the ``http`` extra is needed). It runs on whatever
loop starts it, a notebook kernel's included.

Routes (``GET`` unless noted):

* ``POST /v1/chat/completions`` - an OpenAI-compatible chat with a deterministic fake model
  (:func:`streamnb.demo.model.answer_prompt`): the last message is echoed as
  ``"You said: ..."`` token by token, or - when it is a user message naming an offered tool
  (weather, time, calc, search) - answered with a tool call whose JSON arguments are streamed
  in pieces. ``stream: true`` sends SSE chunks (and a usage chunk with
  ``stream_options.include_usage``) ending with ``data: [DONE]``; ``stream: false`` one JSON
  completion. With ``api_key`` set, requests without ``Authorization: Bearer <key>`` get 401.
  Model ``"fail-500"`` answers 500; model ``"malformed"`` streams one chunk that is not JSON.
* ``GET /v1/models`` - the fake model's name.
* ``/sse/feed`` - Server-Sent Events ``id: <seq>`` / ``event: <kind>`` / ``data: {json}``.
  Query parameters as the gRPC feed's request: ``start``, ``count`` (0 = endless), ``rate``
  (events/s, 0 = as fast as possible), ``payload_size``, ``kind``, and faults: ``drop_after=N``
  (cut the connection after N events, mid-stream, with no clean end), ``delay`` (seconds
  before the first event), ``malformed_seq`` (that event's data is truncated JSON). A
  ``Last-Event-ID`` header resumes after that id.
* ``/ndjson/feed`` - the same events as JSON lines (same parameters, no resume).
* ``/ws/echo`` - a WebSocket that sends every message back; ``/ws/feed?count=N`` sends N JSON
  events and closes (``drop_after`` closes with code 1011 instead).
* ``/status/{code}`` - answers that status with a small JSON body (for error handling).

Every request is recorded (bounded) in :attr:`HttpDemoServer.requests` as a
:class:`ServedRequest`; ``cancelled`` is true when the client went away before the handler
finished (aiohttp cancels the handler on a disconnect) - tests use :meth:`wait_for_request` to
check that breaking out of a Stream closes the connection on the server too.

Example::

    async with HttpDemoServer() as srv:
        async for event in sse(f"{srv.url}/sse/feed?count=3"):
            print(event["seq"])
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .._log import get_logger
from .model import answer_tokens, tool_word

__all__ = ["FAKE_MODEL", "HttpDemoServer", "ServedRequest"]

_log = get_logger("streamnb.demo.http")

#: The name the fake model answers to (any model name works, except the fault names).
FAKE_MODEL = "streamnb-fake"
_CHUNK = 64  # events coalesced into one write when the feed is not paced
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key")


@dataclass(slots=True)
class ServedRequest:
    """One request the HTTP demo server handled.

    ``sent`` counts events/chunks/messages written, ``received`` WebSocket messages read.
    ``cancelled``: the client disconnected before the handler finished. ``status`` is the HTTP
    status answered (101 for a WebSocket). ``headers`` are the request's, secrets redacted.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    sent: int = 0
    received: int = 0
    cancelled: bool = False
    finished: bool = False


@dataclass(slots=True)
class _Feed:
    start: int = 0
    count: int = 0
    rate: float = 0.0
    payload_size: int = 0
    kind: str = "tick"
    drop_after: int = 0
    delay: float = 0.0
    malformed_seq: int | None = None
    end: float = math.inf

    @classmethod
    def parse(cls, query: Any) -> _Feed:
        known = {"start", "count", "rate", "payload_size", "kind", "drop_after", "delay"}
        known.add("malformed_seq")
        unknown = sorted(set(query) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        feed = cls()
        for name in ("start", "count", "payload_size", "drop_after"):
            if name in query:
                value = int(query[name])
                if value < 0:
                    raise ValueError(f"{name}={value}: must be >= 0")
                setattr(feed, name, value)
        for name in ("rate", "delay"):
            if name in query:
                x = float(query[name])
                if not math.isfinite(x) or x < 0:
                    raise ValueError(f"{name}={query[name]}: must be a finite number >= 0")
                setattr(feed, name, x)
        if "malformed_seq" in query:
            feed.malformed_seq = int(query["malformed_seq"])
        kind = query.get("kind", "tick")
        if not kind.replace("_", "").isalnum():
            raise ValueError(f"kind={kind!r}: letters, digits and '_' only")
        feed.kind = kind
        return feed

    def event_json(self, seq: int) -> str:
        return (
            f'{{"seq": {seq}, "timestamp": {time.time():.6f}, "kind": "{self.kind}", '
            f'"payload": "{"x" * self.payload_size}"}}'
        )


class HttpDemoServer:
    """The HTTP demo server as an async context manager (see the module docstring).

    ``port=0`` binds an ephemeral port; :attr:`url` is ``http://host:port`` once started.
    ``api_key`` makes the chat route require ``Authorization: Bearer <api_key>``;
    ``token_delay`` is the pause (seconds) between chat chunks; ``history`` bounds
    :attr:`requests`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        token_delay: float = 0.0,
        history: int = 1000,
    ) -> None:
        self.host = host
        self.port = port
        self.token_delay = token_delay
        self._api_key = api_key
        #: Requests handled so far, oldest first (bounded by ``history``).
        self.requests: deque[ServedRequest] = deque(maxlen=history)
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        self._completions = 0

    def __repr__(self) -> str:
        state = self.url if self._runner is not None else "stopped"
        return f"HttpDemoServer({state})"

    @property
    def url(self) -> str:
        """``http://host:port`` (valid once started)."""
        if self._runner is None:
            raise RuntimeError("HttpDemoServer is not running: use 'async with HttpDemoServer()'")
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> HttpDemoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and serve (starting twice raises RuntimeError)."""
        if self._runner is not None:
            raise RuntimeError("HttpDemoServer already started")
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/sse/feed", self._sse_feed)
        app.router.add_get("/ndjson/feed", self._ndjson_feed)
        app.router.add_get("/ws/echo", self._ws_echo)
        app.router.add_get("/ws/feed", self._ws_feed)
        app.router.add_get("/status/{code}", self._status)
        # handler_cancellation: a client that disconnects cancels its handler, so the record
        # tells that the client went away even while the handler sleeps between events.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        try:
            # bind the socket here so the ephemeral port is known before serving
            sock = socket.create_server((self.host, self.port))
            sock.setblocking(False)
            site = web.SockSite(runner, sock)
            self.port = int(sock.getsockname()[1])
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        _log.info("streamnb.demo.http_started", url=self.url)

    async def stop(self) -> None:
        """Stop serving: open connections are closed and their handlers cancelled."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await runner.cleanup()
        _log.info("streamnb.demo.http_stopped", host=self.host, port=self.port)

    async def wait_for_request(
        self, predicate: Callable[[ServedRequest], bool], *, within: float = 5.0
    ) -> ServedRequest:
        """Wait until a recorded request satisfies ``predicate``; TimeoutError after ``within``."""
        async with asyncio.timeout(within):
            while True:
                changed = self._changed
                for req in self.requests:
                    if predicate(req):
                        return req
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await changed.wait()

    # -- bookkeeping --------------------------------------------------------------------------

    def _begin(self, request: web.Request) -> ServedRequest:
        headers = {
            k.lower(): ("<redacted>" if k.lower() in _SECRET_HEADERS else v)
            for k, v in request.headers.items()
        }
        record = ServedRequest(request.method, request.path, dict(request.query), headers)
        self.requests.append(record)
        return record

    def _end(self, record: ServedRequest, *, cancelled: bool = False) -> None:
        record.cancelled = record.cancelled or cancelled
        record.finished = True
        self._changed, changed = asyncio.Event(), self._changed
        changed.set()

    def _error(self, record: ServedRequest, status: int, message: str, kind: str) -> web.Response:
        record.status = status
        body = {"error": {"message": message, "type": kind, "code": status}}
        return web.json_response(body, status=status)

    # -- routes -------------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        record = self._begin(request)
        try:
            code = int(request.match_info["code"])
            if not 200 <= code <= 599:
                return self._error(record, 400, f"status {code} out of range", "bad_request")
            message = request.query.get("message", f"the demo server answered {code} on request")
            if code < 400:
                record.status = code
                return web.json_response({"status": code}, status=code)
            return self._error(record, code, message, "demo_status")
        finally:
            self._end(record)

    async def _models(self, request: web.Request) -> web.Response:
        record = self._begin(request)
        try:
            record.status = 200
            data = [{"id": FAKE_MODEL, "object": "model", "owned_by": "streamnb"}]
            return web.json_response({"object": "list", "data": data})
        finally:
            self._end(record)

    async def _feed_response(
        self, request: web.Request, record: ServedRequest, content_type: str
    ) -> tuple[web.StreamResponse, _Feed] | web.Response:
        try:
            feed = _Feed.parse(request.query)
        except ValueError as exc:
            return self._error(record, 400, str(exc), "bad_request")
        feed.end = feed.start + feed.count if feed.count else math.inf
        last_id = request.headers.get("Last-Event-ID")
        if last_id:
            try:
                feed.start = int(last_id) + 1  # resume: the end stays where it was
            except ValueError:
                return self._error(record, 400, f"Last-Event-ID {last_id!r}", "bad_request")
        resp = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-store"}
        )
        await resp.prepare(request)
        record.status = 200
        return resp, feed

    async def _run_feed(
        self,
        request: web.Request,
        record: ServedRequest,
        content_type: str,
        frame: Callable[[_Feed, int, bool], str],
    ) -> web.StreamResponse:
        """The feed both encodings share: chunks events, paces, injects faults."""
        cancelled = False
        try:
            opened = await self._feed_response(request, record, content_type)
            if isinstance(opened, web.Response):
                return opened
            resp, feed = opened
            if feed.delay:
                await asyncio.sleep(feed.delay)
            end = feed.end
            interval = 1.0 / feed.rate if feed.rate > 0 else 0.0
            chunk = 1 if interval else _CHUNK
            seq, sent, t0 = feed.start, 0, time.monotonic()
            while seq < end:
                if feed.drop_after and sent >= feed.drop_after:
                    transport = request.transport
                    if transport is not None:
                        transport.abort()  # no clean end of the body: the client sees a drop
                    return resp
                if interval:
                    ahead = t0 + sent * interval - time.monotonic()
                    if ahead > 0.001:
                        await asyncio.sleep(ahead)
                n = int(min(chunk, end - seq))
                if feed.drop_after:
                    n = min(n, feed.drop_after - sent)
                text = "".join(frame(feed, s, s == feed.malformed_seq) for s in range(seq, seq + n))
                await resp.write(text.encode())
                seq += n
                sent += n
                record.sent = sent
            await resp.write_eof()
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            cancelled = True
            raise
        finally:
            self._end(record, cancelled=cancelled)

    async def _sse_feed(self, request: web.Request) -> web.StreamResponse:
        def frame(feed: _Feed, seq: int, malformed: bool) -> str:
            data = f'{{"seq": {seq}, "trunc' if malformed else feed.event_json(seq)
            return f"id: {seq}\nevent: {feed.kind}\ndata: {data}\n\n"

        return await self._run_feed(request, self._begin(request), "text/event-stream", frame)

    async def _ndjson_feed(self, request: web.Request) -> web.StreamResponse:
        def frame(feed: _Feed, seq: int, malformed: bool) -> str:
            return (f'{{"seq": {seq}, "trunc' if malformed else feed.event_json(seq)) + "\n"

        return await self._run_feed(request, self._begin(request), "application/x-ndjson", frame)

    async def _ws_echo(self, request: web.Request) -> web.WebSocketResponse:
        record = self._begin(request)
        ws = web.WebSocketResponse()
        closed_by_client = False
        try:
            await ws.prepare(request)
            record.status = 101
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    record.received += 1
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    record.received += 1
                    await ws.send_bytes(msg.data)
                else:
                    break
                record.sent += 1
            closed_by_client = True  # the loop ends when the client closes
            return ws
        except (asyncio.CancelledError, ConnectionResetError):
            closed_by_client = True
            raise
        finally:
            self._end(record, cancelled=closed_by_client)

    async def _ws_feed(self, request: web.Request) -> web.WebSocketResponse | web.Response:
        record = self._begin(request)
        cancelled = False
        try:
            try:
                feed = _Feed.parse(request.query)
            except ValueError as exc:
                return self._error(record, 400, str(exc), "bad_request")
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            record.status = 101
            end = feed.start + feed.count if feed.count else math.inf
            interval = 1.0 / feed.rate if feed.rate > 0 else 0.0
            # read while sending: a client's close frame is only seen by a reader
            reader = asyncio.ensure_future(ws.receive())
            try:
                cancelled = await self._ws_send_feed(ws, feed, record, end, interval, reader)
            finally:
                if not reader.done():
                    reader.cancel()
                    await asyncio.wait([reader])
            return ws
        except (asyncio.CancelledError, ConnectionResetError):
            cancelled = True
            raise
        finally:
            self._end(record, cancelled=cancelled)

    async def _ws_send_feed(
        self,
        ws: web.WebSocketResponse,
        feed: _Feed,
        record: ServedRequest,
        end: float,
        interval: float,
        reader: asyncio.Future[Any],
    ) -> bool:
        """Send the feed; True when the client closed the socket before its end."""
        seq = feed.start
        while seq < end:
            if reader.done() or ws.closed:  # the client closed while we were sending
                return True
            if feed.drop_after and record.sent >= feed.drop_after:
                await ws.close(code=1011, message=b"injected fault: feed dropped")
                return False
            if interval:
                await asyncio.sleep(interval)
            malformed = seq == feed.malformed_seq
            await ws.send_str(f'{{"seq": {seq}, "trunc' if malformed else feed.event_json(seq))
            seq += 1
            record.sent += 1
            if not interval and record.sent % _CHUNK == 0:
                await asyncio.sleep(0)  # let a client's close frame in
        await ws.close()
        return False

    # -- chat ---------------------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        record = self._begin(request)
        cancelled = False
        try:
            if self._api_key is not None:
                auth = request.headers.get("Authorization", "")
                if auth != f"Bearer {self._api_key}":
                    return self._error(
                        record,
                        401,
                        "invalid API key (send Authorization: Bearer <key>)",
                        "invalid_request_error",
                    )
            try:
                body = await request.json()
                messages, tools, model, stream, usage = _chat_request(body)
            except (ValueError, KeyError, TypeError) as exc:
                return self._error(record, 400, f"bad request: {exc}", "invalid_request_error")
            if model == "fail-500":
                return self._error(record, 500, "injected failure (model fail-500)", "server_error")
            self._completions += 1
            reply = _reply(messages, tools, self._completions)
            if not stream:
                record.status = 200
                record.sent = 1
                return web.json_response(reply.completion(model))
            resp = web.StreamResponse(
                headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
            )
            await resp.prepare(request)
            record.status = 200
            chunks = reply.chunks(model, include_usage=usage)
            for i, chunk in enumerate(chunks):
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                data = "{not json" if model == "malformed" and i == 1 else json.dumps(chunk)
                await resp.write(f"data: {data}\n\n".encode())
                record.sent += 1
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        except (asyncio.CancelledError, ConnectionResetError):
            cancelled = True
            raise
        finally:
            self._end(record, cancelled=cancelled)


def _chat_request(body: Any) -> tuple[list[dict[str, Any]], set[str], str, bool, bool]:
    if not isinstance(body, dict):
        raise TypeError("the body must be a JSON object")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    tools: set[str] = set()
    for tool in body.get("tools") or ():
        tools.add(str(tool["function"]["name"]))
    options = body.get("stream_options") or {}
    return (
        messages,
        tools,
        str(body.get("model", FAKE_MODEL)),
        bool(body.get("stream", False)),
        bool(options.get("include_usage", False)),
    )


def _content(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


@dataclass(slots=True)
class _Reply:
    ident: str
    tokens: list[str]
    tool: tuple[str, str, str] | None  # (call id, name, arguments JSON)
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) + (1 if self.tool else 0)

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def finish_reason(self) -> str:
        return "tool_calls" if self.tool else "stop"

    def completion(self, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.tokens) or None}
        if self.tool:
            call_id, name, args = self.tool
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ]
        return {
            "id": self.ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason()}],
            "usage": self.usage(),
        }

    def chunks(self, model: str, *, include_usage: bool) -> list[dict[str, Any]]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {
                "id": self.ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
            }

        out = [chunk({"role": "assistant", "content": ""})]
        if self.tool:
            call_id, name, args = self.tool
            head = {"index": 0, "id": call_id, "type": "function"}
            out.append(
                chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            )
            step = max(1, len(args) // 3)  # the arguments arrive in pieces, as from a real model
            for i in range(0, len(args), step):
                piece = {"index": 0, "function": {"arguments": args[i : i + step]}}
                out.append(chunk({"tool_calls": [piece]}))
        out.extend(chunk({"content": t}) for t in self.tokens)
        out.append(chunk({}, self.finish_reason()))
        if include_usage:
            out.append(
                {
                    "id": self.ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": self.usage(),
                }
            )
        return out


def _reply(messages: list[dict[str, Any]], tools: set[str], n: int) -> _Reply:
    """The fake model: echo the last message, or call the tool a user message asks for."""
    last = messages[-1]
    text = _content(last)
    prompt_tokens = sum(len(_content(m).split()) for m in messages)
    name = tool_word(text) if last.get("role") == "user" else None
    if name is not None and name in tools:
        args = json.dumps({"query": text}, sort_keys=True)
        return _Reply(f"chatcmpl-{n}", [], (f"call_{n}", name, args), prompt_tokens)
    return _Reply(f"chatcmpl-{n}", answer_tokens(text), None, prompt_tokens)

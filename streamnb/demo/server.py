"""The embedded demo server: real gRPC services on 127.0.0.1, no external backend needed.

Services (``streamnb/grpc/protos/streamnb_demo.proto``, package ``streamnb.demo.v1``):

* ``EventFeed`` - ``Get`` (unary), ``Subscribe`` / ``SubscribeBatched`` (server streaming with
  rate, count, resume offset and fault injection), ``Echo`` (bidirectional);
* ``Aggregator.Aggregate`` - client streaming: count/sum/mean/min/max of the numbers sent;
* ``Agent.Chat`` - bidirectional: each prompt is answered with token, tool-call and done events;
* ``Json`` - the same feed/aggregate/chat/echo over JSON bytes (identity serialisers), for the
  catalogue's generic JSON mode (no descriptors, so reflection does not list it);
* ``grpc.reflection.v1alpha.ServerReflection`` and ``grpc.health.v1.Health``.

**Malformed messages.** The protobuf services are registered with a response serialiser that
passes ``bytes`` through untouched and serialises messages otherwise, so the *same* method
(``EventFeed/Subscribe`` with ``malformed_seq``) can put bytes on the wire that are not a valid
``Event`` - exactly what a client meets when a server is buggy. The JSON service sends truncated
JSON in the same place. Either way the feed continues with the next event.

Every call the server handles is recorded (bounded) in :attr:`DemoServer.calls`, with whether
the client cancelled it - tests use :meth:`DemoServer.wait_for_call` to check that breaking out
of a stream really cancels the RPC on the server.

**How a cancellation is detected.** grpc.aio tells a handler about a client's cancellation in
three ways, and :attr:`ServedCall.cancelled` covers all of them:

1. ``CancelledError`` raised where the handler awaits (a write, a sleep): caught in the handler.
2. ``CancelledError`` raised in grpc's *own* code while it writes a response an async-generator
   handler yielded: the generator never sees it (it is suspended at ``yield`` and only closed
   later). grpc delivers every cancellation by ``Task.cancel()`` on the call's task, and that
   task does not ``uncancel()``, so the done callback reads ``task.cancelling() > 0``.
3. A cancellation that arrives while the handler waits for the next request: grpc ends the
   request iterator exactly as on a half-close (its receive operation merges "failed" into
   "end of stream") and, when it processes the cancellation, cancels the call's task only if
   the handler has not finished yet. Request-streaming handlers therefore read once more after
   their requests end (:func:`_after_requests`) before answering: grpc's core queued the close
   event before that read started, and events come back in order, so the cancellation lands
   as case 1. A cancellation that reaches the server *after* that (the client cancelling
   while the handler's answer is already on its way) is not a cancellation of the handler and
   is recorded as a normal finish.
4. grpc's write of a yielded response fails in the core (``ExecuteBatchError``) because the
   call is already gone there, before grpc's Python side has marked the client closed: grpc
   logs the error, nothing is cancelled, and the generator is left suspended at its ``yield``.
   Generator handlers therefore note when a response is handed to grpc and not yet written
   (:attr:`ServedCall.cancelled` is set when the call finishes with one outstanding): a
   normal finish always resumes the generator past its last ``yield`` first.

``cancelled`` is also true when the call's deadline passed or the server stopped before the
handler finished: grpc cancels the handler the same way, and the server cannot tell these apart
from a client's cancel except by the deadline (see ``error``, set when the handler set a code).

Example::

    async with DemoServer() as srv:
        print(srv.address)                       # 127.0.0.1:<ephemeral port>
        async with GrpcClient(srv.address) as client:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from streamnb.grpc._generated import streamnb_demo_pb2 as pb

from .._log import get_logger
from .model import answer_prompt

if TYPE_CHECKING:
    from .http import HttpDemoServer

__all__ = ["SERVICE_NAMES", "DemoServer", "ServedCall", "answer_prompt"]

_log = get_logger("streamnb.demo")

_PKG = "streamnb.demo.v1"
#: Services of the demo server that carry protobuf descriptors (listed by reflection).
SERVICE_NAMES: tuple[str, ...] = (f"{_PKG}.EventFeed", f"{_PKG}.Aggregator", f"{_PKG}.Agent")
JSON_SERVICE = f"{_PKG}.Json"
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_MALFORMED_PROTO = b"\xff\xff\xff\xff"  # a truncated varint tag: never a valid message


@dataclass(slots=True)
class ServedCall:
    """One call the demo server handled: which method, what moved, how it ended.

    ``cancelled``: grpc cancelled the handler before it finished (the client cancelled, the
    deadline passed or the server stopped) - reliable once ``finished`` is true, see the module
    docstring for how it is detected. ``error``: the status name the handler ended with when it
    was not OK (an abort or an injected fault).
    """

    method: str
    sent: int = 0
    received: int = 0
    cancelled: bool = False
    finished: bool = False
    error: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    # a yielded response grpc has not written yet (case 4 of the module docstring)
    _writing: bool = field(default=False, init=False, repr=False)


def _serialize(message: Any) -> bytes:
    # bytes pass through untouched: that is how the feed injects malformed messages.
    if type(message) is bytes:
        return message
    data: bytes = message.SerializeToString()
    return data


async def _after_requests(context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Let a client's cancellation reach the handler after its request stream ended.

    grpc.aio ends a handler's request iterator the same way on a half-close and on a client's
    cancellation (its receive operation merges "failed" into "end of stream"), and cancels the
    handler's task only when it processes the call's close event - which it skips if the
    handler has finished by then. So before answering, the handler asks for one more message:
    on a half-closed call the answer is another end of stream, at once; on a cancelled call
    the close event was queued by grpc's core *before* this read was started, and grpc's
    completion queue hands events over in order, so by the time the read returns the handler's
    task has been cancelled (``CancelledError`` at the ``sleep(0)`` at the latest). Costs one
    loop round trip per request-streaming call.
    """
    await context.read()
    await asyncio.sleep(0)


def _agent_event(event: dict[str, Any]) -> pb.AgentEvent:
    msg = pb.AgentEvent(prompt_id=event["prompt_id"], index=event["index"], timestamp=time.time())
    kind = event["kind"]
    if kind == "token":
        msg.token.text = event["text"]
    elif kind == "tool_call":
        msg.tool_call.name = event["name"]
        msg.tool_call.arguments = event["arguments"]
    else:
        msg.done.tokens = event["tokens"]
    return msg


@dataclass(slots=True)
class _FeedParams:
    start: int = 0
    count: int = 0
    rate: float = 0.0
    payload_size: int = 0
    batch_size: int = 0
    drop_after: int = 0
    fail_code: int = 0
    delay: float = 0.0
    malformed_seq: int | None = None
    kind: str = "tick"
    # JSON feed only: several kinds with a latency each, out-of-order and late event times
    kinds: list[str] | None = None
    disorder: float = 0.0
    late_every: int = 0
    late_by: float = 0.0
    seed: int = 0

    @classmethod
    def from_proto(cls, req: pb.SubscribeRequest) -> _FeedParams:
        return cls(
            start=req.start,
            count=req.count,
            rate=req.rate,
            payload_size=req.payload_size,
            batch_size=req.batch_size,
            drop_after=req.drop_after,
            fail_code=req.fail_code,
            delay=req.delay,
            malformed_seq=req.malformed_seq if req.HasField("malformed_seq") else None,
            kind=req.kind or "tick",
        )

    @classmethod
    def from_json(cls, req: Any) -> _FeedParams:
        if not isinstance(req, dict):
            raise ValueError(f"expected a JSON object, got {type(req).__name__}")
        known = set(cls.__slots__)
        unknown = sorted(set(req) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; known: {sorted(known)}")
        params = cls(**req)
        params.kind = params.kind or "tick"
        return params


def _timed_events(params: _FeedParams) -> Callable[[int, int], bytes]:
    """JSON events with a kind, a latency and an event time that may be out of order or late.

    ``kinds`` cycle pseudo-randomly; ``latency_ms`` is log-normal (heavier for later kinds);
    ``timestamp`` is the send time minus up to ``disorder`` seconds (out of order), and every
    ``late_every``-th event is ``late_by`` seconds older still (late for a window that has
    closed). Every value derives from ``seed`` and ``seq`` alone, so a resumed feed repeats it.
    """
    import random

    kinds = list(params.kinds or [params.kind])
    now = time.time

    def make(seq: int, n: int) -> bytes:
        rnd = random.Random(params.seed * 1_000_003 + seq)
        k = rnd.randrange(len(kinds))
        ts = now() - rnd.random() * params.disorder
        late = params.late_every > 0 and seq % params.late_every == params.late_every - 1
        if late:
            ts -= params.late_by
        event = {
            "seq": seq,
            "timestamp": ts,
            "kind": kinds[k],
            "latency_ms": round(rnd.lognormvariate(2.0 + 0.4 * k, 0.5), 3),
            "late": late,
            "payload": "x" * params.payload_size,
        }
        return json.dumps(event).encode()

    return make


def _truncated_event(seq: int) -> bytes:
    return f'{{"seq":{seq},"timestamp":'.encode()


class DemoServer:
    """The demo gRPC server as an async context manager (see the module docstring).

    ``port=0`` (the default) binds an ephemeral port; :attr:`address` is the ``host:port`` to
    dial. ``credentials`` (``grpc.ssl_server_credentials(...)``) serves TLS instead of
    plaintext. ``token_delay`` slows ``Agent.Chat`` down (seconds between events) so a live
    view has something to watch. ``grace`` is how long :meth:`stop` lets running calls finish.
    ``http=True`` also starts the HTTP side (:mod:`streamnb.demo.http`: OpenAI-compatible chat,
    SSE, NDJSON, WebSockets; needs the ``http`` extra) on ``http_port`` (0 = ephemeral), at
    :attr:`http_url`; ``api_key`` makes its chat route require that bearer key.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token_delay: float = 0.0,
        grace: float | None = 0.2,
        max_message_length: int = 4 * 1024 * 1024,
        history: int = 1000,
        credentials: grpc.ServerCredentials | None = None,
        http: bool = False,
        http_port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token_delay = token_delay
        self.grace = grace
        self.max_message_length = max_message_length
        self.credentials = credentials
        #: Calls handled so far, oldest first (bounded by ``history``).
        self.calls: deque[ServedCall] = deque(maxlen=history)
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Event()  # replaced after each set(): waiters hold the old one
        #: The HTTP side (``http=True``): an :class:`~streamnb.demo.http.HttpDemoServer`.
        self.http: HttpDemoServer | None = None
        if http:
            from .http import HttpDemoServer  # the http extra, only when asked for

            self.http = HttpDemoServer(
                host, http_port, api_key=api_key, token_delay=token_delay, history=history
            )

    @property
    def address(self) -> str:
        """``host:port`` to dial (valid once started)."""
        if self._server is None:
            raise RuntimeError("DemoServer is not running: use 'async with DemoServer() as srv'")
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http://host:port`` of the HTTP side (``DemoServer(http=True)``, once started)."""
        if self.http is None:
            raise RuntimeError("this DemoServer has no HTTP side: use DemoServer(http=True)")
        return self.http.url

    async def __aenter__(self) -> DemoServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and start serving (idempotent errors: starting twice raises RuntimeError)."""
        if self._server is not None:
            raise RuntimeError("DemoServer already started")
        options = [
            ("grpc.max_send_message_length", self.max_message_length),
            ("grpc.max_receive_message_length", self.max_message_length),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers(self._handlers())
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        names = (*SERVICE_NAMES, reflection.SERVICE_NAME, "grpc.health.v1.Health")
        reflection.enable_server_reflection(names, server)
        bind = f"{self.host}:{self.port}"
        if self.credentials is not None:
            port = server.add_secure_port(bind, self.credentials)
        else:
            port = server.add_insecure_port(bind)
        if port == 0:
            raise OSError(f"DemoServer could not bind {self.host}:{self.port}")
        await server.start()
        for name in ("", *SERVICE_NAMES, JSON_SERVICE):
            await health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.http is not None:
            try:
                await self.http.start()
            except BaseException:
                await server.stop(None)
                raise
        self._server, self.port = server, port
        _log.info("streamnb.demo.started", address=self.address)

    async def stop(self) -> None:
        """Stop serving; running calls get ``grace`` seconds, then are cancelled."""
        server, self._server = self._server, None
        if server is None:
            return
        if self.http is not None:
            await self.http.stop()
        await server.stop(self.grace)
        await server.wait_for_termination(0)
        _log.info("streamnb.demo.stopped", host=self.host, port=self.port)

    async def serve_forever(self) -> None:
        """Block until the server stops (``python -m streamnb.demo`` uses it)."""
        if self._server is None:
            raise RuntimeError("DemoServer is not running")
        await self._server.wait_for_termination()

    async def wait_for_call(
        self, predicate: Callable[[ServedCall], bool], *, within: float = 5.0
    ) -> ServedCall:
        """Wait until a recorded call satisfies ``predicate`` (e.g. ``lambda c: c.cancelled``).

        Raises TimeoutError after ``within`` seconds.
        """
        async with asyncio.timeout(within):
            while True:
                changed = self._changed
                for call in self.calls:
                    if predicate(call):
                        return call
                # woken when a call finishes; counters of running calls are polled every 20 ms
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await changed.wait()

    # -- bookkeeping ---------------------------------------------------------------------------

    def _begin(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> ServedCall:
        record = ServedCall(method)
        for key, value in context.invocation_metadata() or ():
            if not key.endswith("-bin") and not key.startswith(":"):
                record.metadata[key] = value
        self.calls.append(record)
        # The call's task (handlers run in it): grpc cancels it on a client cancel, a deadline or
        # a server stop, and never uncancels it - so cancelling() stays > 0 even when the
        # CancelledError was raised (and swallowed) in grpc's code rather than the handler's.
        task = asyncio.current_task()

        def done(ctx: Any) -> None:
            record.finished = True
            record.cancelled = (
                record.cancelled
                or (task is not None and task.cancelling() > 0)
                or bool(ctx.cancelled())
                or record._writing
            )
            code = ctx.code()
            if code is not None and code not in (0, grpc.StatusCode.OK):
                record.error = getattr(code, "name", str(code))
            self._changed, changed = asyncio.Event(), self._changed
            changed.set()

        context.add_done_callback(done)
        return record

    # -- handlers --------------------------------------------------------------------------------

    def _handlers(self) -> list[grpc.GenericRpcHandler]:
        ident = None  # identity (de)serialisers: bytes in, bytes out
        feed = {
            "Get": grpc.unary_unary_rpc_method_handler(
                self._get, pb.GetRequest.FromString, _serialize
            ),
            "Subscribe": grpc.unary_stream_rpc_method_handler(
                self._subscribe, pb.SubscribeRequest.FromString, _serialize
            ),
            "SubscribeBatched": grpc.unary_stream_rpc_method_handler(
                self._subscribe_batched, pb.SubscribeRequest.FromString, _serialize
            ),
            "Echo": grpc.stream_stream_rpc_method_handler(
                self._echo, pb.Event.FromString, _serialize
            ),
        }
        aggregator = {
            "Aggregate": grpc.stream_unary_rpc_method_handler(
                self._aggregate, pb.Number.FromString, _serialize
            )
        }
        agent = {
            "Chat": grpc.stream_stream_rpc_method_handler(
                self._chat, pb.Prompt.FromString, _serialize
            )
        }
        json_methods = {
            "Get": grpc.unary_unary_rpc_method_handler(self._json_get, ident, ident),
            "Subscribe": grpc.unary_stream_rpc_method_handler(self._json_subscribe, ident, ident),
            "SubscribeBatched": grpc.unary_stream_rpc_method_handler(
                self._json_subscribe_batched, ident, ident
            ),
            "Aggregate": grpc.stream_unary_rpc_method_handler(self._json_aggregate, ident, ident),
            "Chat": grpc.stream_stream_rpc_method_handler(self._json_chat, ident, ident),
            "Echo": grpc.stream_stream_rpc_method_handler(self._json_echo, ident, ident),
        }
        return [
            grpc.method_handlers_generic_handler(f"{_PKG}.EventFeed", feed),
            grpc.method_handlers_generic_handler(f"{_PKG}.Aggregator", aggregator),
            grpc.method_handlers_generic_handler(f"{_PKG}.Agent", agent),
            grpc.method_handlers_generic_handler(JSON_SERVICE, json_methods),
        ]

    async def _feed(
        self,
        method: str,
        params: _FeedParams,
        context: grpc.aio.ServicerContext[Any, Any],
        make: Callable[[int, int], Any],
        malformed: Callable[[int], bytes],
    ) -> None:
        """The feed both encodings share: writes messages, paces, injects faults.

        ``make(seq, n)`` builds the message of events seq..seq+n-1 (n = 1 unless batched).
        """
        record = self._begin(method, context)
        fail = _CODES.get(params.fail_code or grpc.StatusCode.UNAVAILABLE.value[0])
        if fail is None or fail is grpc.StatusCode.OK:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"fail_code {params.fail_code} is not a status"
            )
            return
        if params.fail_code and not params.drop_after:
            await context.abort(fail, f"injected failure ({fail.name}) before the first event")
        if params.delay > 0:
            await asyncio.sleep(params.delay)
        end = params.count if params.count else math.inf
        step = (params.batch_size or 100) if method.endswith("Batched") else 1
        interval = step / params.rate if params.rate > 0 else 0.0
        seq = params.start
        sent = 0
        write = context.write
        t0 = time.monotonic()
        try:
            while seq < end:
                if params.drop_after and sent >= params.drop_after:
                    await context.abort(
                        fail,
                        f"injected fault: connection dropped after {sent} messages"
                        f" (next seq {seq})",
                    )
                if interval:
                    ahead = t0 + sent * interval - time.monotonic()
                    if ahead > 0.001:
                        await asyncio.sleep(ahead)
                n = int(min(step, end - seq))
                if params.malformed_seq is not None and seq <= params.malformed_seq < seq + n:
                    await write(malformed(seq))
                else:
                    await write(make(seq, n))
                seq += n
                sent += 1
                record.sent = sent
        except asyncio.CancelledError:
            record.cancelled = True
            raise

    async def _get(
        self, request: pb.GetRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Event:
        record = self._begin("EventFeed/Get", context)
        record.received = record.sent = 1
        return pb.Event(
            seq=request.seq, timestamp=time.time(), kind="get", payload="x" * request.payload_size
        )

    async def _subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        params = _FeedParams.from_proto(request)
        payload, kind = "x" * params.payload_size, params.kind
        event, now = pb.Event, time.time

        def make(seq: int, n: int) -> Any:
            return event(seq=seq, timestamp=now(), kind=kind, payload=payload)

        await self._feed("EventFeed/Subscribe", params, context, make, lambda s: _MALFORMED_PROTO)

    async def _subscribe_batched(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        params = _FeedParams.from_proto(request)
        payload, kind = "x" * params.payload_size, params.kind
        event, batch, now = pb.Event, pb.EventBatch, time.time

        def make(seq: int, n: int) -> Any:
            ts = now()
            return batch(
                events=[
                    event(seq=s, timestamp=ts, kind=kind, payload=payload)
                    for s in range(seq, seq + n)
                ]
            )

        await self._feed(
            "EventFeed/SubscribeBatched", params, context, make, lambda s: _MALFORMED_PROTO
        )

    async def _echo(
        self, requests: AsyncIterator[pb.Event], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Event]:
        record = self._begin("EventFeed/Echo", context)
        try:
            async for event in requests:
                record.received += 1
                event.timestamp = time.time()
                record._writing = True
                yield event
                record._writing = False
                record.sent += 1
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise

    async def _aggregate(
        self, requests: AsyncIterator[pb.Number], context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Summary:
        record = self._begin("Aggregator/Aggregate", context)
        values: list[float] = []
        try:
            async for number in requests:
                values.append(number.value)
                record.received += 1
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise
        record.sent = 1
        return pb.Summary(**_summary(values))

    async def _chat(
        self, requests: AsyncIterator[pb.Prompt], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.AgentEvent]:
        record = self._begin("Agent/Chat", context)
        try:
            async for prompt in requests:
                record.received += 1
                for event in answer_prompt(prompt.id, prompt.text):
                    if self.token_delay:
                        await asyncio.sleep(self.token_delay)
                    record._writing = True
                    yield _agent_event(event)
                    record._writing = False
                    record.sent += 1
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise

    # -- JSON service ----------------------------------------------------------------------------

    @staticmethod
    async def _json_request(
        data: bytes, context: grpc.aio.ServicerContext[Any, Any], method: str, index: int = 0
    ) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{method}: request #{index} is not valid JSON: {exc}",
            )

    async def _json_get(self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        record = self._begin("Json/Get", context)
        req = await self._json_request(data, context, "Json/Get")
        if not isinstance(req, dict):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Json/Get expects an object")
        delay = float(req.get("delay", 0))
        if delay > 0:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                record.cancelled = True
                raise
        code = _CODES.get(int(req.get("fail_code", 0)))
        if code is not None and code is not grpc.StatusCode.OK:
            await context.abort(code, f"injected failure ({code.name})")
        record.received = record.sent = 1
        event = {"seq": int(req.get("seq", 0)), "timestamp": time.time(), "kind": "get"}
        event["payload"] = "x" * int(req.get("payload_size", 0))
        return json.dumps(event).encode()

    async def _json_params(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> _FeedParams:
        req = await self._json_request(data, context, method)
        try:
            return _FeedParams.from_json(req)
        except (TypeError, ValueError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: {exc}")
            raise  # abort raises; this keeps type checkers convinced

    async def _json_subscribe(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        params = await self._json_params(data, context, "Json/Subscribe")
        if params.kinds or params.disorder > 0 or params.late_every > 0:
            await self._feed(
                "Json/Subscribe", params, context, _timed_events(params), _truncated_event
            )
            return
        head = '{"seq":'
        tail = f',"kind":{json.dumps(params.kind)},"payload":"{"x" * params.payload_size}"}}'
        now = time.time

        def make(seq: int, n: int) -> bytes:
            return f'{head}{seq},"timestamp":{now()!r}{tail}'.encode()

        def malformed(seq: int) -> bytes:
            return f'{head}{seq},"timestamp":'.encode()  # truncated JSON

        await self._feed("Json/Subscribe", params, context, make, malformed)

    async def _json_subscribe_batched(
        self, data: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        params = await self._json_params(data, context, "Json/SubscribeBatched")
        kind, payload, now = params.kind, "x" * params.payload_size, time.time

        def make(seq: int, n: int) -> bytes:
            ts = now()
            events = [
                {"seq": s, "timestamp": ts, "kind": kind, "payload": payload}
                for s in range(seq, seq + n)
            ]
            return json.dumps({"events": events}, separators=(",", ":")).encode()

        await self._feed("Json/SubscribeBatched", params, context, make, lambda s: b'{"events":[')

    async def _json_aggregate(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        record = self._begin("Json/Aggregate", context)
        values: list[float] = []
        try:
            async for data in requests:
                item = await self._json_request(data, context, "Json/Aggregate", record.received)
                value: Any = item.get("value") if isinstance(item, dict) else item
                if isinstance(value, bool) or not isinstance(value, int | float):
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Json/Aggregate: request #{record.received} is not a number or "
                        f'{{"value": number}}: {item!r}',
                    )
                values.append(float(value))
                record.received += 1
                if isinstance(item, dict) and item.get("delay"):
                    await asyncio.sleep(float(item["delay"]))  # simulate slow processing
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise
        record.sent = 1
        return json.dumps(_summary(values)).encode()

    async def _json_chat(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        record = self._begin("Json/Chat", context)
        try:
            async for data in requests:
                req = await self._json_request(data, context, "Json/Chat", record.received)
                if isinstance(req, str):
                    req = {"id": record.received, "text": req}
                if not isinstance(req, dict) or not isinstance(req.get("text"), str):
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Json/Chat: prompt #{record.received} must be a string"
                        ' or {"id": ..., "text": ...}',
                    )
                record.received += 1
                for event in answer_prompt(int(req.get("id", record.received - 1)), req["text"]):
                    if self.token_delay:
                        await asyncio.sleep(self.token_delay)
                    event["timestamp"] = time.time()
                    record._writing = True
                    yield json.dumps(event).encode()
                    record._writing = False
                    record.sent += 1
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise

    async def _json_echo(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        record = self._begin("Json/Echo", context)
        try:
            async for data in requests:
                record.received += 1
                record._writing = True
                yield data
                record._writing = False
                record.sent += 1
            await _after_requests(context)
        except asyncio.CancelledError:
            record.cancelled = True
            raise


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "sum": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0}
    total = math.fsum(values)
    return {
        "count": len(values),
        "sum": total,
        "mean": total / len(values),
        "min": min(values),
        "max": max(values),
    }

"""The gRPC client: all four call shapes, with Streams where messages flow.

::

    async with GrpcClient("127.0.0.1:50051") as client:            # JSON codec by default
        reply = await client.unary("/streamnb.demo.v1.Json/Get", {"seq": 3})
        feed = client.server_stream("/streamnb.demo.v1.Json/Subscribe", {"count": 1000})
        async for event in feed:                                   # one RPC per iteration
            ...
        summary = await client.client_stream("/streamnb.demo.v1.Json/Aggregate", [1, 2, 3])
        answers = client.bidi("/streamnb.demo.v1.Json/Chat", ["hello", "what time is it"])
        print(await answers.collect())

Design notes

* grpc only ever sees bytes (identity serialisers); the codec runs in this module. A message
  that does not decode raises :class:`DecodeError` naming the method and message index - or,
  with ``on_decode_error="skip"``, goes to a :class:`streamnb.DeadLetter` and the stream goes on.
* A response Stream opens its call when it is iterated (``Stream(factory)``), so iterating
  twice makes two calls, and the call is cancelled in ``finally`` when the consumer breaks,
  is cancelled, or closes the iteration. Closing the client cancels every call still open.
* ``timeout`` is a deadline for the whole call (for a resumed stream: for all its attempts).
* Sending in ``bidi`` runs in its own task, awaiting grpc's flow control (so at most one
  request is in flight in this process); it half-closes (``done_writing``) when the requests
  end. A request source that raises cancels the call and the consumer gets *that* exception.
* Per call, a :class:`CallStats` counts messages, bytes, errors and reconnects; response Streams
  carry it as ``.stats``; every finished call is also kept in ``client.history`` (bounded).
  Logs (structlog): ``streamnb.grpc.call_started`` / ``call_finished`` / ``call_failed`` /
  ``reconnect``, with auth metadata redacted. Nothing is logged per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

import grpc

from streamnb import DeadLetter, RetryPolicy, Stream
from streamnb.recovery import CircuitBreaker
from streamnb.stream import _from_sync

from .._log import get_logger
from ..errors import ClientClosedError
from .codecs import Codec, CodecLike, resolve_codec
from .errors import RETRYABLE_CODES, DecodeError, EncodeError, RpcError

__all__ = [
    "CallShape",
    "CallStats",
    "GrpcClient",
    "MetadataLike",
    "RpcStream",
    "redact_metadata",
]

_log = get_logger("streamnb.grpc")

CallShape = Literal["unary", "server_stream", "client_stream", "bidi"]
MetadataLike: TypeAlias = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
DecodePolicy = Literal["raise", "skip"]
_SENSITIVE_EXACT = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_PARTS = ("token", "key", "secret", "password", "passwd", "auth", "session", "credential")
_REDACTED = "<redacted>"


def redact_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> list[tuple[str, str]]:
    """Metadata made safe to log: auth-looking values replaced by ``<redacted>``.

    A key is sensitive when it is ``authorization``, ``cookie`` (and their proxy/set variants)
    or contains token, key, secret, password, auth, session or credential. Binary values are
    shown by size only.

    >>> redact_metadata([("authorization", "Bearer x"), ("x-request-id", "42")])
    [('authorization', '<redacted>'), ('x-request-id', '42')]
    """
    out: list[tuple[str, str]] = []
    for key, value in metadata:
        k = key.lower()
        if k in _SENSITIVE_EXACT or any(part in k for part in _SENSITIVE_PARTS):
            out.append((key, _REDACTED))
        elif isinstance(value, bytes):
            out.append((key, f"<{len(value)} bytes>"))
        else:
            out.append((key, value))
    return out


def _metadata_pairs(metadata: MetadataLike | None) -> tuple[tuple[str, str | bytes], ...]:
    if not metadata:
        return ()
    if isinstance(metadata, Mapping):
        return tuple((str(k).lower(), v) for k, v in metadata.items())
    return tuple((str(k).lower(), v) for k, v in metadata)


def _method_path(method: str) -> str:
    """Normalise ``pkg.Service/Method``, ``/pkg.Service/Method``, ``pkg.Service.Method``.

    >>> _method_path("pkg.Service.Method")
    '/pkg.Service/Method'
    """
    m = method.strip()
    if m.startswith("/"):
        m = m[1:]
    if "/" not in m:
        service, _, name = m.rpartition(".")
        if not service or not name:
            raise ValueError(f"method {method!r}: expected 'package.Service/Method'")
        m = f"{service}/{name}"
    service, _, name = m.partition("/")
    if not service or not name or "/" in name:
        raise ValueError(f"method {method!r}: expected 'package.Service/Method'")
    return f"/{service}/{name}"


@dataclass(slots=True)
class CallStats:
    """What one call (or one run of a response Stream, reconnects included) moved.

    ``errors`` counts failed attempts and undecodable messages; ``code`` is the final status
    name (``"OK"``, ``"UNAVAILABLE"``..., ``None`` while running); times are ``time.monotonic``.
    """

    method: str
    shape: CallShape
    sent: int = 0
    received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    errors: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    code: str | None = None
    started: float = 0.0
    finished: float | None = None

    @property
    def elapsed(self) -> float:
        """Seconds from start to finish (to now while running)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return max(0.0, end - self.started) if self.started else 0.0

    @property
    def rate(self) -> float:
        """Messages received per second."""
        e = self.elapsed
        return self.received / e if e > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["elapsed"] = self.elapsed
        return d


class RpcStream(Stream[Any]):
    """The Stream of responses of a server-streaming or bidirectional call.

    A plain :class:`streamnb.Stream` (operators, ``monitor``, ``open``...) that also carries
    ``stats`` - the :class:`CallStats` of its latest run - and ``dead_letter``, where
    undecodable messages go under ``on_decode_error="skip"``. Each iteration opens a new call.
    """

    __slots__ = ("_dead_letter", "_stats")

    def __init__(
        self,
        factory: Callable[[], AsyncIterator[Any]],
        stats: CallStats,
        dead_letter: DeadLetter[Any] | None,
    ) -> None:
        super().__init__(factory)
        self._stats = stats
        self._dead_letter = dead_letter

    @property
    def stats(self) -> CallStats:
        """Counters of the latest run (reset when a new iteration opens the call)."""
        return self._stats

    @property
    def dead_letter(self) -> DeadLetter[Any] | None:
        """Undecodable messages (only with ``on_decode_error="skip"``)."""
        return self._dead_letter


def _task_is_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Deadline:
    """A call-wide deadline shared by the attempts of one run."""

    __slots__ = ("_at",)

    def __init__(self, timeout: float | None) -> None:
        self._at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        if self._at is None:
            return None
        return self._at - time.monotonic()


class GrpcClient:
    """A gRPC client for notebooks: every call shape, Streams for streamed responses.

    ``target`` is an address (``"127.0.0.1:50051"``, ``"dns:///svc:443"``) - the client opens
    the channel on ``__aenter__`` and closes it on exit - or an existing ``grpc.aio.Channel``,
    which the client uses but does not close (closing the client still cancels its own calls).

    Options: ``codec`` (default codec of calls, see :mod:`streamnb.grpc.codecs`),
    ``credentials`` (``grpc.ssl_channel_credentials(...)`` for TLS), ``metadata`` (sent with
    every call; per-call metadata is appended), ``timeout`` (default deadline in seconds of
    every call; None = no deadline), ``max_send_message_length`` /
    ``max_receive_message_length`` (bytes), ``options`` (extra channel arguments),
    ``history`` (how many finished calls ``client.history`` keeps).

    Example::

        async with GrpcClient(srv.address, codec="json", timeout=30) as client:
            feed = client.server_stream("/streamnb.demo.v1.Json/Subscribe", {"count": 10})
            n = await feed.count()
    """

    def __init__(
        self,
        target: str | grpc.aio.Channel,
        *,
        codec: CodecLike = "json",
        credentials: grpc.ChannelCredentials | None = None,
        metadata: MetadataLike | None = None,
        timeout: float | None = None,
        max_send_message_length: int | None = None,
        max_receive_message_length: int | None = None,
        options: Sequence[tuple[str, Any]] = (),
        history: int = 256,
    ) -> None:
        self._codec = resolve_codec(codec)
        self._metadata = _metadata_pairs(metadata)
        self._timeout = timeout
        self._credentials = credentials
        opts = list(options)
        if max_send_message_length is not None:
            opts.append(("grpc.max_send_message_length", max_send_message_length))
        if max_receive_message_length is not None:
            opts.append(("grpc.max_receive_message_length", max_receive_message_length))
        self._options = opts
        if isinstance(target, str):
            self.target = target
            self._channel: grpc.aio.Channel | None = None
            self._owns_channel = True
        else:
            if credentials is not None or opts:
                raise ValueError(
                    "GrpcClient(channel, ...): credentials, message sizes and options belong to "
                    "the channel you pass; set them when you create it"
                )
            self.target = "<channel>"
            self._channel = target
            self._owns_channel = False
        self._closed = False
        self._live: set[Any] = set()
        self._callables: dict[tuple[str, str], Any] = {}
        #: Stats of finished calls, oldest first (bounded).
        self.history: deque[CallStats] = deque(maxlen=history)
        self._reflection: Any = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> GrpcClient:
        self._ensure_channel()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying ``grpc.aio.Channel`` (opened on first use)."""
        return self._ensure_channel()

    def _ensure_channel(self) -> grpc.aio.Channel:
        if self._closed:
            raise ClientClosedError(f"GrpcClient({self.target!r}) is closed")
        if self._channel is None:
            if self._credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self._credentials, options=self._options
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
        return self._channel

    async def close(self) -> None:
        """Cancel the calls still open and close the channel (if the client opened it)."""
        if self._closed:
            return
        self._closed = True
        for call in list(self._live):
            call.cancel()
        self._live.clear()
        channel, self._channel = self._channel, None
        if channel is not None and self._owns_channel:
            await channel.close()

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the channel is connected (raises TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            await self._ensure_channel().channel_ready()

    # -- helpers --------------------------------------------------------------------------------

    def _callable(self, shape: CallShape, path: str) -> Any:
        if self._closed:
            raise ClientClosedError(f"GrpcClient({self.target!r}) is closed")
        key = (shape, path)
        mc = self._callables.get(key)
        if mc is None:
            ch = self._ensure_channel()
            factory = {
                "unary": ch.unary_unary,
                "server_stream": ch.unary_stream,
                "client_stream": ch.stream_unary,
                "bidi": ch.stream_stream,
            }[shape]
            mc = factory(path)  # no (de)serialisers: bytes in, bytes out
            self._callables[key] = mc
        return mc

    def _call_metadata(self, metadata: MetadataLike | None) -> tuple[tuple[str, str | bytes], ...]:
        return self._metadata + _metadata_pairs(metadata)

    def _resolve_timeout(self, timeout: float | None) -> float | None:
        return self._timeout if timeout is None else timeout

    def _codec_for(self, codec: CodecLike | None) -> Codec:
        return self._codec if codec is None else resolve_codec(codec)

    @staticmethod
    def _encode(codec: Codec, path: str, obj: Any, index: int) -> bytes:
        try:
            return codec.encode(obj)
        except Exception as exc:
            raise EncodeError(path, index, f"{type(exc).__name__}: {exc}") from exc

    def _started(
        self, stats: CallStats, md: tuple[tuple[str, str | bytes], ...], timeout: float | None
    ) -> None:
        stats.started = time.monotonic()
        _log.debug(
            "streamnb.grpc.call_started",
            method=stats.method,
            shape=stats.shape,
            target=self.target,
            metadata=redact_metadata(md),
            timeout=timeout,
        )

    def _finished(self, stats: CallStats, code: str) -> None:
        stats.code = code
        stats.finished = time.monotonic()
        self.history.append(stats)
        _log.debug("streamnb.grpc.call_finished", **stats.as_dict())

    def _failed(self, stats: CallStats, exc: BaseException, *, count: bool = True) -> None:
        if count:
            stats.errors += 1
        if isinstance(exc, RpcError) and exc.code is not None:
            code = exc.code.name
        elif isinstance(exc, asyncio.CancelledError):
            code = "CANCELLED"
        elif isinstance(exc, DecodeError):
            code = "DECODE_ERROR"
        else:
            code = type(exc).__name__
        stats.code = code
        stats.finished = time.monotonic()
        self.history.append(stats)
        _log.info(
            "streamnb.grpc.call_failed",
            error=f"{type(exc).__name__}: {exc}",
            **stats.as_dict(),
        )

    @staticmethod
    def _rpc_error(path: str, exc: grpc.aio.AioRpcError, stats: CallStats) -> RpcError:
        return RpcError(path, exc.code(), exc.details(), received=stats.received, sent=stats.sent)

    def _local_cancel_error(self, path: str, stats: CallStats) -> RpcError:
        reason = "the client was closed" if self._closed else "the call was cancelled locally"
        return RpcError(
            path, grpc.StatusCode.CANCELLED, reason, received=stats.received, sent=stats.sent
        )

    # -- unary ----------------------------------------------------------------------------------

    async def unary(
        self,
        method: str,
        request: Any,
        *,
        codec: CodecLike | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
        metadata: MetadataLike | None = None,
        wait_for_ready: bool | None = None,
    ) -> Any:
        """One request, one response.

        Example: ``await client.unary("/streamnb.demo.v1.EventFeed/Get", GetRequest(seq=1),
        codec=Event)``.
        """
        path = _method_path(method)
        c = self._codec_for(codec)
        md = self._call_metadata(metadata)
        t = self._resolve_timeout(timeout)
        stats = CallStats(path, "unary")
        data = self._encode(c, path, request, 0)
        self._started(stats, md, t)
        call = self._callable("unary", path)(
            data, timeout=t, metadata=md, wait_for_ready=wait_for_ready
        )
        self._live.add(call)
        try:
            stats.sent, stats.bytes_sent = 1, len(data)
            try:
                raw = await call
            except grpc.aio.AioRpcError as exc:
                raise self._rpc_error(path, exc, stats) from exc
            except asyncio.CancelledError:
                if not _task_is_cancelling() and call.cancelled():
                    raise self._local_cancel_error(path, stats) from None
                raise
            response = _decode_response(c, path, raw, stats)
        except BaseException as exc:
            call.cancel()
            self._failed(stats, exc)
            raise
        finally:
            self._live.discard(call)
        self._finished(stats, "OK")
        return response

    # -- server streaming -----------------------------------------------------------------------

    def server_stream(
        self,
        method: str,
        request: Any,
        *,
        codec: CodecLike | None = None,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        wait_for_ready: bool | None = None,
        on_decode_error: DecodePolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        resume: Callable[[Any], Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> RpcStream:
        """One request, a Stream of responses (nothing is sent until the Stream is iterated).

        ``resume`` turns on reconnection: after a retryable failure (status in
        :data:`~streamnb.grpc.errors.RETRYABLE_CODES` by default, or per ``retry.retry_on``)
        the call is re-opened with ``resume(last_delivered_response)`` as its request, with
        ``Stream.resilient``'s exponential backoff (``retry``, default 8 attempts without
        progress, 50 ms doubling up to 2 s). With a feed whose events carry a sequence number::

            feed = client.server_stream(
                "/streamnb.demo.v1.EventFeed/Subscribe", SubscribeRequest(count=10_000),
                codec=Event,
                resume=lambda ev: SubscribeRequest(start=ev.seq + 1, count=10_000),
            )

        the consumer sees every event exactly once, in order, across disconnects.
        ``on_decode_error="skip"`` sends undecodable messages to ``dead_letter`` (one is
        created if not given; see ``.dead_letter``) instead of failing the stream.
        """
        path = _method_path(method)
        c = self._codec_for(codec)
        md = self._call_metadata(metadata)
        t = self._resolve_timeout(timeout)
        dl = _decode_sink(on_decode_error, dead_letter)
        mc = self._callable("server_stream", path)

        def open_run() -> AsyncIterator[Any]:
            stats = CallStats(path, "server_stream")
            stream._stats = stats
            deadline = _Deadline(t)
            if resume is None:
                return self._server_stream_attempt(
                    mc, path, c, request, md, deadline, wait_for_ready, stats, dl, final=True
                )
            return self._resumed(
                mc,
                path,
                c,
                request,
                md,
                deadline,
                wait_for_ready,
                stats,
                dl,
                resume,
                retry,
                breaker,
            )

        stream = RpcStream(open_run, CallStats(path, "server_stream"), dl)
        return stream

    async def _server_stream_attempt(
        self,
        mc: Any,
        path: str,
        codec: Codec,
        request: Any,
        md: tuple[tuple[str, str | bytes], ...],
        deadline: _Deadline,
        wait_for_ready: bool | None,
        stats: CallStats,
        dead_letter: DeadLetter[Any] | None,
        *,
        final: bool,
    ) -> AsyncIterator[Any]:
        """One call of a server stream. ``final``: this attempt's end is the run's end."""
        if self._closed:
            raise ClientClosedError(f"GrpcClient({self.target!r}) is closed: cannot call {path}")
        data = self._encode(codec, path, request, 0)
        remaining = deadline.remaining()
        if remaining is not None and remaining <= 0:
            exc = RpcError(
                path,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "deadline exceeded before the call could be (re)opened",
                received=stats.received,
                sent=stats.sent,
            )
            if final:
                self._failed(stats, exc)
            raise exc
        if not stats.started:
            self._started(stats, md, remaining)
        call = mc(data, timeout=remaining, metadata=md, wait_for_ready=wait_for_ready)
        live = self._live
        live.add(call)
        stats.sent += 1
        stats.bytes_sent += len(data)
        decode = codec.decode
        index = stats.received  # message index, counted over the run
        nbytes = 0
        try:
            try:
                async for raw in call:
                    nbytes += len(raw)
                    try:
                        item = decode(raw)
                    except Exception as exc:
                        stats.received = index + 1
                        stats.bytes_received += nbytes
                        nbytes = 0
                        self._decode_failed(path, index, raw, exc, stats, dead_letter)
                        index += 1
                        continue
                    index += 1
                    stats.received = index
                    yield item
            except grpc.aio.AioRpcError as exc:
                stats.bytes_received += nbytes
                nbytes = 0
                raise self._rpc_error(path, exc, stats) from exc
            except asyncio.CancelledError:
                if not _task_is_cancelling() and call.cancelled():
                    raise self._local_cancel_error(path, stats) from None
                raise
        except BaseException as exc:
            stats.bytes_received += nbytes
            nbytes = 0
            if final:
                if isinstance(exc, GeneratorExit):
                    self._finished(stats, "CANCELLED")
                else:
                    self._failed(stats, exc)
            elif isinstance(exc, RpcError):  # a resumed run: count the failed attempt
                stats.errors += 1
                stats.code = exc.code.name if exc.code is not None else "DECODE_ERROR"
            raise
        else:
            stats.bytes_received += nbytes
            if final:
                self._finished(stats, "OK")
        finally:
            call.cancel()  # no-op when the call has finished; stops it on break/cancel/close
            live.discard(call)

    def _decode_failed(
        self,
        path: str,
        index: int,
        raw: bytes,
        exc: Exception,
        stats: CallStats,
        dead_letter: DeadLetter[Any] | None,
    ) -> None:
        stats.decode_errors += 1
        err = DecodeError(path, index, raw, f"{type(exc).__name__}: {exc}")
        err.__cause__ = exc
        if dead_letter is None:
            raise err
        stats.errors += 1
        dead_letter.add(path, index, raw, err)

    async def _resumed(
        self,
        mc: Any,
        path: str,
        codec: Codec,
        request: Any,
        md: tuple[tuple[str, str | bytes], ...],
        deadline: _Deadline,
        wait_for_ready: bool | None,
        stats: CallStats,
        dead_letter: DeadLetter[Any] | None,
        resume: Callable[[Any], Any],
        retry: RetryPolicy | None,
        breaker: CircuitBreaker | None,
    ) -> AsyncIterator[Any]:
        attempts = 0

        def attempt(token: Any) -> AsyncIterator[Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                stats.reconnects += 1
                _log.info(
                    "streamnb.grpc.reconnect",
                    method=path,
                    attempt=attempts,
                    received=stats.received,
                    last_error=stats.code,
                )
            req = request if token is None else resume(token[0])
            return self._server_stream_attempt(
                mc, path, codec, req, md, deadline, wait_for_ready, stats, dead_letter, final=False
            )

        policy = retry or RetryPolicy(
            max_attempts=8, initial=0.05, max_delay=2.0, retry_on=_retryable_rpc
        )

        # The checkpoint keeps the last delivered item (boxed: an item may be None); resume()
        # turns it into the next request only when a reconnection needs one.
        inner = Stream.resilient(attempt, checkpoint=_box, retry=policy, breaker=breaker)
        try:
            async with inner.open() as it:
                async for item in it:
                    yield item
        except GeneratorExit:
            self._finished(stats, "CANCELLED")
            raise
        except BaseException as exc:
            counted = isinstance(exc, RpcError) or isinstance(exc.__cause__, RpcError)
            self._failed(stats, exc, count=not counted)
            raise
        self._finished(stats, "OK")

    # -- client streaming -----------------------------------------------------------------------

    async def client_stream(
        self,
        method: str,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        codec: CodecLike | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
        metadata: MetadataLike | None = None,
        wait_for_ready: bool | None = None,
    ) -> Any:
        """Send every request of ``requests`` (a sync/async iterable or a Stream); get one response.

        If the server answers before all requests are sent, the rest are not sent. If the
        request source raises, the call is cancelled and its exception propagates (with a note
        naming the method and the request index).

        Example: ``await client.client_stream("/streamnb.demo.v1.Json/Aggregate", range(10))``.
        """
        path = _method_path(method)
        c = self._codec_for(codec)
        md = self._call_metadata(metadata)
        t = self._resolve_timeout(timeout)
        stats = CallStats(path, "client_stream")
        self._started(stats, md, t)
        call = self._callable("client_stream", path)(
            timeout=t, metadata=md, wait_for_ready=wait_for_ready
        )
        self._live.add(call)
        sender = asyncio.get_running_loop().create_task(
            self._send_all(call, requests, c, path, stats), name=f"streamnb.grpc.send {path}"
        )
        try:
            try:
                raw = await call  # completes on the response, an error or the deadline
            except grpc.aio.AioRpcError as exc:
                err = _sender_error(sender)
                if err is not None:
                    raise err from None
                raise self._rpc_error(path, exc, stats) from exc
            except asyncio.CancelledError:
                if not _task_is_cancelling() and call.cancelled():
                    await asyncio.wait([sender])
                    err = _sender_error(sender)
                    if err is not None:
                        raise err from None
                    raise self._local_cancel_error(path, stats) from None
                raise
            response = _decode_response(c, path, raw, stats)
        except BaseException as exc:
            call.cancel()
            self._failed(stats, exc)
            raise
        finally:
            self._live.discard(call)
            await _stop(sender)
        self._finished(stats, "OK")
        return response

    async def _send_all(
        self,
        call: Any,
        requests: Iterable[Any] | AsyncIterable[Any],
        codec: Codec,
        path: str,
        stats: CallStats,
    ) -> None:
        """Write every request, then half-close. Returns early if the call has ended.

        A failing request source (or encoder) cancels the call and re-raises.

        The loop is the hot path of client and bidirectional streaming, so per request it does
        only what raw grpc.aio does plus the encode and two counter updates: a plain ``for``
        over a sync iterable (no async-generator hop), no ``call.done()`` probe (``write``
        raises ``InvalidStateError`` once the call has ended, which ends the loop the same way).
        """
        encode = codec.encode
        write = call.write
        index = 0
        try:
            if _is_sync_source(requests):
                it = iter(requests)  # type: ignore[arg-type]
                try:
                    for obj in it:
                        try:
                            data = encode(obj)
                        except Exception as exc:
                            raise EncodeError(path, index, f"{type(exc).__name__}: {exc}") from exc
                        try:
                            await write(data)
                        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                            return  # the call ended (answered or failed): its status tells
                        index += 1
                        stats.sent = index
                        stats.bytes_sent += len(data)
                finally:
                    close = getattr(it, "close", None)
                    if close is not None:
                        close()
            else:
                async with _request_iterator(requests) as ait:
                    async for obj in ait:
                        try:
                            data = encode(obj)
                        except Exception as exc:
                            raise EncodeError(path, index, f"{type(exc).__name__}: {exc}") from exc
                        try:
                            await write(data)
                        except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                            return  # the call ended (answered or failed): its status tells
                        index += 1
                        stats.sent = index
                        stats.bytes_sent += len(data)
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except BaseException as exc:
            if not isinstance(exc, EncodeError):
                exc.add_note(f"while producing request #{index} of {path}")
            call.cancel()
            raise
        if not call.done():
            try:
                await call.done_writing()
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                return

    # -- bidirectional --------------------------------------------------------------------------

    def bidi(
        self,
        method: str,
        requests: Iterable[Any] | AsyncIterable[Any],
        *,
        codec: CodecLike | None = None,
        timeout: float | None = None,
        metadata: MetadataLike | None = None,
        wait_for_ready: bool | None = None,
        on_decode_error: DecodePolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
    ) -> RpcStream:
        """Requests sent by an independent task, responses as a Stream.

        ``requests`` is iterated once per iteration of the returned Stream (so pass a
        re-iterable, a Stream or a factory-built Stream to iterate the responses twice). The
        client half-closes when the requests end; the response Stream ends when the server
        finishes. Breaking out of the responses cancels the call and stops the sender.

        Example::

            answers = client.bidi("/streamnb.demo.v1.Agent/Chat",
                                  [Prompt(id=1, text="hi")], codec=AgentEvent)
            async for ev in answers:
                print(ev.WhichOneof("event"))
        """
        path = _method_path(method)
        c = self._codec_for(codec)
        md = self._call_metadata(metadata)
        t = self._resolve_timeout(timeout)
        dl = _decode_sink(on_decode_error, dead_letter)
        mc = self._callable("bidi", path)

        def open_run() -> AsyncIterator[Any]:
            stats = CallStats(path, "bidi")
            stream._stats = stats
            return self._bidi_run(mc, path, c, requests, md, t, wait_for_ready, stats, dl)

        stream = RpcStream(open_run, CallStats(path, "bidi"), dl)
        return stream

    async def _bidi_run(
        self,
        mc: Any,
        path: str,
        codec: Codec,
        requests: Iterable[Any] | AsyncIterable[Any],
        md: tuple[tuple[str, str | bytes], ...],
        deadline_s: float | None,
        wait_for_ready: bool | None,
        stats: CallStats,
        dead_letter: DeadLetter[Any] | None,
    ) -> AsyncIterator[Any]:
        if self._closed:
            raise ClientClosedError(f"GrpcClient({self.target!r}) is closed: cannot call {path}")
        self._started(stats, md, deadline_s)
        call = mc(timeout=deadline_s, metadata=md, wait_for_ready=wait_for_ready)
        live = self._live
        live.add(call)
        sender = asyncio.get_running_loop().create_task(
            self._send_all(call, requests, codec, path, stats), name=f"streamnb.grpc.send {path}"
        )
        decode = codec.decode
        index = 0
        nbytes = 0

        def sender_error() -> BaseException | None:
            if sender.done() and not sender.cancelled():
                return sender.exception()
            return None

        try:
            try:
                async for raw in call:
                    nbytes += len(raw)
                    try:
                        item = decode(raw)
                    except Exception as exc:
                        stats.received = index + 1
                        self._decode_failed(path, index, raw, exc, stats, dead_letter)
                        index += 1
                        continue
                    index += 1
                    stats.received = index
                    yield item
            except grpc.aio.AioRpcError as exc:
                err = _sender_error(sender)
                if err is not None:
                    raise err from None
                raise self._rpc_error(path, exc, stats) from exc
            except asyncio.CancelledError:
                if not _task_is_cancelling() and call.cancelled():
                    if not sender.done():
                        await asyncio.wait([sender])
                    err = _sender_error(sender)
                    if err is not None:
                        raise err from None
                    raise self._local_cancel_error(path, stats) from None
                raise
            err = _sender_error(sender)
            if err is not None:
                raise err
        except BaseException as exc:
            stats.bytes_received += nbytes
            nbytes = 0
            if isinstance(exc, GeneratorExit):
                self._finished(stats, "CANCELLED")
            else:
                self._failed(stats, exc)
            raise
        else:
            stats.bytes_received += nbytes
            self._finished(stats, "OK")
        finally:
            call.cancel()
            live.discard(call)
            await _stop(sender)

    # -- reflection -----------------------------------------------------------------------------

    def _reflector(self) -> Any:
        if self._reflection is None:
            from .reflection import Reflector

            self._reflection = Reflector(self)
        return self._reflection

    async def services(self, *, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109
        """Names of the services the server exposes through reflection (sorted).

        Example: ``await client.services()`` -> ``['grpc.health.v1.Health', ...]``.
        """
        names: list[str] = await self._reflector().services(deadline_s=timeout)
        return names

    async def methods(
        self,
        service: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> list[Any]:
        """The methods of ``service`` (:class:`~streamnb.grpc.reflection.MethodInfo`: name,
        path, shape, input/output type names), from the server's descriptors."""
        methods: list[Any] = await self._reflector().methods(service, deadline_s=timeout)
        return methods

    async def call(
        self,
        method: str,
        request: Any = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
        metadata: MetadataLike | None = None,
        on_decode_error: DecodePolicy = "raise",
        int64_as_str: bool = False,
    ) -> Any:
        """Call any method of a reflecting server with dicts, like ``grpcurl``.

        The method's shape decides the rest: unary and client-streaming calls return the
        response dict; server-streaming and bidirectional ones return an :class:`RpcStream` of
        dicts. ``request`` is a dict (unary, server streaming) or an iterable of dicts
        (client streaming, bidirectional); ``None`` means an empty request (or no requests).

        Response dicts carry 64-bit integer fields (``uint64 seq``...) as ints, at any depth;
        ``int64_as_str=True`` keeps protobuf's JSON mapping, which makes them strings.
        Request dicts accept either (``{"seq": 7}`` or ``{"seq": "7"}``).

        Example::

            stream = await client.call("streamnb.demo.v1.EventFeed/Subscribe", {"count": 3})
            print(await stream.collect())
        """
        result: Any = await self._reflector().call(
            method,
            request,
            deadline_s=timeout,
            metadata=metadata,
            on_decode_error=on_decode_error,
            int64_as_str=int64_as_str,
        )
        return result


def _retryable_rpc(exc: BaseException) -> bool:
    """Default retry predicate of resumed streams: RpcErrors with a retryable status."""
    if isinstance(exc, RpcError):
        return exc.code is not None and exc.code.name in RETRYABLE_CODES
    return False


def _sender_error(sender: asyncio.Task[None]) -> BaseException | None:
    """The exception the request sender ended with (None if it is running or succeeded)."""
    if sender.done() and not sender.cancelled():
        return sender.exception()
    return None


async def _stop(sender: asyncio.Task[None]) -> None:
    """Cancel the request sender if still running and wait for it (its error is retrieved)."""
    if not sender.done():
        sender.cancel()
    await asyncio.wait([sender])
    if not sender.cancelled():
        sender.exception()  # mark retrieved: no "exception was never retrieved" warnings


def _box(item: Any) -> tuple[Any]:
    return (item,)


def _is_sync_source(obj: object) -> bool:
    """A plain iterable (list, range, generator): iterated with ``for``, not ``async for``."""
    return (
        not isinstance(obj, Stream) and not hasattr(obj, "__aiter__") and hasattr(obj, "__iter__")
    )


class _request_iterator:
    """Async iteration over any sync/async iterable or Stream, closed on exit."""

    __slots__ = ("_cm", "_it", "_obj")

    def __init__(self, obj: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._obj = obj
        self._cm: Any = None
        self._it: Any = None

    async def __aenter__(self) -> AsyncIterator[Any]:
        obj = self._obj
        if isinstance(obj, Stream):
            self._cm = obj.open()
            it: AsyncIterator[Any] = await self._cm.__aenter__()
            return it
        if hasattr(obj, "__aiter__"):
            self._it = obj.__aiter__()
            return self._it  # type: ignore[no-any-return]
        if hasattr(obj, "__iter__"):
            self._it = _from_sync(iter(obj))
            return self._it  # type: ignore[no-any-return]
        raise TypeError(
            f"requests must be an iterable, an async iterable or a Stream, got {type(obj).__name__}"
        )

    async def __aexit__(self, *exc: object) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)
        elif self._it is not None:
            aclose = getattr(self._it, "aclose", None)
            if aclose is not None:
                await aclose()


def _decode_response(codec: Codec, path: str, raw: bytes, stats: CallStats) -> Any:
    """The single response of a unary or client-streaming call, counted and decoded."""
    stats.received, stats.bytes_received = 1, len(raw)
    try:
        return codec.decode(raw)
    except Exception as exc:
        stats.decode_errors += 1
        raise DecodeError(path, 0, raw, f"{type(exc).__name__}: {exc}") from exc


def _decode_sink(
    on_decode_error: str, dead_letter: DeadLetter[Any] | None
) -> DeadLetter[Any] | None:
    """Where undecodable messages go: None (raise) or a dead letter (created if not given)."""
    if on_decode_error not in ("raise", "skip"):
        raise ValueError(f"on_decode_error={on_decode_error!r}: use 'raise' or 'skip'")
    if on_decode_error == "skip" and dead_letter is None:
        return DeadLetter()
    return dead_letter

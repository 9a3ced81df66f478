"""The gRPC client: all four call shapes, with Streams where messages flow.

::

    async with GrpcClient("127.0.0.1:50051") as client:            # JSON codec by default
        reply = await client.unary("/streamnb.demo.v1.Json/Get", {"seq": 3})
        feed = client.server_stream("/streamnb.demo.v1.Json/Subscribe", {"count": 1000})
        async with feed.open() as it:                              # one RPC per iteration
            async for event in it:
                ...
            print(it.snapshots("call"))                            # what the call moved
        summary = await client.client_stream("/streamnb.demo.v1.Json/Aggregate", [1, 2, 3])
        answers = client.bidi("/streamnb.demo.v1.Json/Chat", ["hello", "what time is it"])
        print(await answers.collect())

How a call runs (the shape of httpx's client: a base and a chain of small steps passing one
object along):

1. ``_spec`` - the one prologue - checks the arguments and the client, and freezes what the
   call is into a :class:`~streamnb.grpc._call.CallSpec`.
2. Each run of it (an await; an iteration of a response Stream) gets a ``CallRun``: the spec,
   the run's live counters and its deadline. A response Stream is built with
   ``Stream.from_run``, so the counters are registered on the iteration's run
   (``it.snapshots("call")``, reachable through any operator chained on the Stream) and never
   on the Stream definition.
3. ``_Attempt`` opens one grpc call (the one closed-client check, the deadline, the request
   sender task) and, on the way out, maps grpc's failures and a local cancellation to
   :class:`RpcError` - the one place that does.
4. ``send_requests`` is the one send loop (sync and async request sources);
   ``_responses`` the one decode loop (server streaming and bidirectional); ``_single`` the
   single-response calls (unary and client streaming); ``_resumed`` reconnects a server stream
   on ``Stream.resilient``.
5. ``_end`` - the one finish step - records the outcome in ``client.history`` and the log.

Design notes

* grpc only ever sees bytes (identity serialisers); the codec runs in this module. A message
  that does not decode raises :class:`DecodeError` naming the method and message index - or,
  with ``on_decode_error="skip"``, goes to a :class:`streamnb.DeadLetter` and the stream goes on.
* Iterating a response Stream twice makes two calls; the call is cancelled when the consumer
  breaks, is cancelled, or closes the iteration. Closing the client cancels every call still
  open; a call on a closed client raises :class:`~streamnb.errors.ClientClosedError`.
* ``timeout`` is a deadline for the whole call (for a resumed stream: for all its attempts, the
  backoff sleeps included).
* Sending in ``bidi``/``client_stream`` runs in its own task, awaiting grpc's flow control (so
  at most one request is in flight in this process); it half-closes when the requests end. A
  request source that raises cancels the call and the consumer gets *that* exception.
* Per run a :class:`~streamnb.metrics.CallSnapshot` tells messages, bytes, errors and
  reconnects; every finished call's snapshot is kept in ``client.history`` (bounded).
  Logs (structlog): ``streamnb.grpc.call_started`` / ``call_finished`` / ``call_failed`` /
  ``reconnect``, with auth metadata redacted. Nothing is logged per message.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any

import grpc

from .._log import get_logger
from .._runstate import RunState
from .._validate import check_choice, check_seconds
from ..errors import ArgumentTypeError, ClientClosedError, InvalidArgumentError
from ..metrics import CallSnapshot
from ..recovery import CircuitBreaker, DeadLetter, RetryPolicy
from ..stream import Stream
from ._call import (
    CallCounters,
    CallRun,
    CallShape,
    CallSpec,
    Deadline,
    DecodePolicy,
    MetadataLike,
    OneShotGuard,
    code_of,
    encode_request,
    metadata_pairs,
    method_path,
    redact_metadata,
    send_requests,
)
from .codecs import CodecLike, resolve_codec
from .errors import RETRYABLE_CODES, DecodeError, RpcError
from .reflection import MethodInfo, Reflector

__all__ = [
    "CallShape",
    "DecodePolicy",
    "GrpcClient",
    "MetadataLike",
    "RpcStream",
    "call_snapshot",
    "redact_metadata",
]

_log = get_logger("streamnb.grpc")


class RpcStream(Stream[Any]):
    """The Stream of responses of a server-streaming or bidirectional call.

    A plain :class:`streamnb.Stream` (operators, ``monitor``, ``open``...); each iteration
    opens a new call and registers its counters on that iteration's run: read them with
    ``it.snapshots("call")[method]`` (a :class:`~streamnb.metrics.CallSnapshot`), also after
    ``.map()`` and other operators, or, once the call ended, in ``client.history``.
    ``dead_letter`` is where undecodable messages go under ``on_decode_error="skip"``.

    Example::

        feed = client.server_stream(FEED + "Subscribe", SubscribeRequest(count=5), codec=Event)
        async with feed.map(lambda ev: ev.seq).open() as it:
            seqs = [s async for s in it]
            print(it.snapshots("call")[feed.method].received)     # 5
    """

    __slots__ = ("_dead_letter", "_method")

    def __init__(
        self,
        open_run: Callable[[RunState], AsyncIterator[Any]],
        method: str,
        dead_letter: DeadLetter[Any] | None,
    ) -> None:
        super().__init__(Stream.from_run(open_run))
        self._method = method
        self._dead_letter = dead_letter

    @property
    def method(self) -> str:
        """The call's path (``/pkg.Service/Method``): its key in ``it.snapshots("call")``."""
        return self._method

    @property
    def dead_letter(self) -> DeadLetter[Any] | None:
        """Undecodable messages (only with ``on_decode_error="skip"``)."""
        return self._dead_letter


def call_snapshot(iteration: Any, method: str | None = None) -> CallSnapshot:
    """The :class:`~streamnb.metrics.CallSnapshot` of a call in a run, typed.

    ``iteration`` is an ``Iteration`` (``async with stream.open() as it``) or its
    ``RunState``; ``method`` the call's key (``feed.method``), or None when the run holds
    exactly one call. Works on any Stream chained on a response Stream (``.map()``...).

    Example::

        async with feed.map(parse).open() as it:
            async for row in it:
                ...
            print(call_snapshot(it).received)
    """
    state: RunState = iteration if isinstance(iteration, RunState) else iteration.state
    calls = state.snapshots("call")
    if method is None:
        if len(calls) != 1:
            raise InvalidArgumentError(
                f"call_snapshot(method=None): the run holds {len(calls)} calls "
                f"({sorted(calls)}); name one"
            )
        (snap,) = calls.values()
    elif method in calls:
        snap = calls[method]
    else:
        raise InvalidArgumentError(
            f"call_snapshot(method={method!r}): the run holds no such call; it has {sorted(calls)}"
        )
    assert isinstance(snap, CallSnapshot)
    return snap


def _task_is_cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _sender_error(sender: asyncio.Task[None] | None) -> BaseException | None:
    """The exception the request sender ended with (None if it is running or succeeded)."""
    if sender is not None and sender.done() and not sender.cancelled():
        return sender.exception()
    return None


async def _stop(sender: asyncio.Task[None]) -> None:
    """Cancel the request sender if still running and wait for it (its error is retrieved)."""
    if not sender.done():
        sender.cancel()
    await asyncio.wait([sender])
    if not sender.cancelled():
        sender.exception()  # mark retrieved: no "exception was never retrieved" warnings


class _ClientBase:
    """Channel lifecycle, live calls, history and the steps every call goes through."""

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
        self._metadata = metadata_pairs(metadata)
        self._timeout = None if timeout is None else check_seconds("GrpcClient", "timeout", timeout)
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
        #: Snapshots of finished calls, oldest first (bounded).
        self.history: deque[CallSnapshot] = deque(maxlen=history)
        self._reflection: Reflector | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.aio.Channel:
        """The underlying ``grpc.aio.Channel`` (opened on first use)."""
        return self._ensure_channel()

    def _check_open(self, path: str | None = None) -> None:
        """The one closed-client check: ``ClientClosedError`` naming the client (and call)."""
        if self._closed:
            what = f": cannot call {path}" if path else ""
            raise ClientClosedError(f"GrpcClient({self.target!r}) is closed{what}")

    def _ensure_channel(self) -> grpc.aio.Channel:
        self._check_open()
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

    # -- step 1: the prologue -------------------------------------------------------------------

    def _spec(
        self,
        shape: CallShape,
        method: str,
        *,
        codec: CodecLike | None,
        timeout: float | None,
        metadata: MetadataLike | None,
        wait_for_ready: bool | None,
        on_decode_error: DecodePolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        resume: Callable[[Any], Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> CallSpec:
        """Everything about a call, checked and frozen before anything is sent."""
        path = method_path(method)
        self._check_open(path)
        check_choice(shape, "on_decode_error", on_decode_error, ("raise", "skip"))
        if on_decode_error == "raise" and dead_letter is not None:
            raise InvalidArgumentError(
                f"{shape}({path!r}, dead_letter=...): a dead letter receives undecodable "
                "messages only with on_decode_error='skip'"
            )
        if on_decode_error == "skip" and dead_letter is None:
            dead_letter = DeadLetter()
        if timeout is not None:
            timeout = check_seconds(shape, "timeout", timeout)
        if resume is not None and not callable(resume):
            raise ArgumentTypeError(
                f"server_stream({path!r}, resume={resume!r}): expected a function of the "
                "last delivered response that returns the next request"
            )
        key = (shape, path)
        invoke = self._callables.get(key)
        if invoke is None:
            ch = self._ensure_channel()
            factory = {
                "unary": ch.unary_unary,
                "server_stream": ch.unary_stream,
                "client_stream": ch.stream_unary,
                "bidi": ch.stream_stream,
            }[shape]
            invoke = self._callables[key] = factory(path)  # no (de)serialisers: bytes only
        return CallSpec(
            path=path,
            shape=shape,
            codec=self._codec if codec is None else resolve_codec(codec),
            metadata=self._metadata + metadata_pairs(metadata),
            timeout=self._timeout if timeout is None else timeout,
            wait_for_ready=wait_for_ready,
            invoke=invoke,
            dead_letter=dead_letter,
            resume=resume,
            retry=retry,
            breaker=breaker,
        )

    @staticmethod
    def _new_run(spec: CallSpec, run: RunState | None = None) -> CallRun:
        """The per-run object; registered on the Stream's ``run`` as its ``"call"`` observable.

        Two calls of the same method in one run (a merge of two feeds) are told apart as
        ``path``, ``path #2``, ...
        """
        name = spec.path
        if run is not None:
            taken = run.observed("call")
            n = 1
            while name in taken:
                n += 1
                name = f"{spec.path} #{n}"
        counters = CallCounters(spec, name)
        if run is not None:
            run.observe("call", counters)
            if spec.dead_letter is not None:
                run.dead_letters.setdefault(name, spec.dead_letter)
        return CallRun(spec, counters, Deadline(spec.timeout))

    # -- step 3: one attempt (open, cancel mapping, cleanup) ------------------------------------

    def _attempt(self, run: CallRun, source: Any) -> _Attempt:
        return _Attempt(self, run, source)

    def _started(self, run: CallRun, remaining: float | None) -> None:
        run.counters.start()
        _log.debug(
            "streamnb.grpc.call_started",
            method=run.spec.path,
            shape=run.spec.shape,
            target=self.target,
            metadata=redact_metadata(run.spec.metadata),
            timeout=remaining,
        )

    def _local_cancel_error(self, run: CallRun) -> RpcError:
        reason = "the client was closed" if self._closed else "the call was cancelled locally"
        c = run.counters
        return RpcError(
            run.spec.path, grpc.StatusCode.CANCELLED, reason, received=c.received, sent=c.sent
        )

    # -- step 4: the decode loop of streamed responses ------------------------------------------

    async def _responses(self, run: CallRun, source: Any, *, final: bool) -> AsyncIterator[Any]:
        """One call's responses, decoded. ``final``: this attempt's end is the run's end."""
        counters = run.counters
        try:
            async with self._attempt(run, source) as call:
                decode = run.spec.codec.decode
                index = counters.received  # message index, counted over the run
                nbytes = 0
                try:
                    async for raw in call:
                        nbytes += len(raw)
                        try:
                            item = decode(raw)
                        except Exception as exc:
                            counters.received = index + 1
                            _decode_failed(run, index, raw, exc)
                            index += 1
                            continue
                        index += 1
                        counters.received = index
                        yield item
                finally:
                    counters.bytes_received += nbytes
        except BaseException as exc:
            if final:
                self._end(run, exc)
            raise
        if final:
            self._end(run, None)

    async def _once(
        self,
        shape: CallShape,
        method: str,
        source: Any,
        codec: CodecLike | None,
        timeout: float | None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
        metadata: MetadataLike | None,
        wait_for_ready: bool | None,
    ) -> Any:
        """A unary or client-streaming call, from its arguments to its decoded response."""
        spec = self._spec(
            shape,
            method,
            codec=codec,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
        )
        return await self._single(self._new_run(spec), source)

    async def _single(self, run: CallRun, source: Any) -> Any:
        """The one response of a unary or client-streaming call, decoded; the run ended."""
        counters = run.counters
        try:
            async with self._attempt(run, source) as call:
                raw = await call  # completes on the response, an error or the deadline
            counters.received, counters.bytes_received = 1, len(raw)
            try:
                response = run.spec.codec.decode(raw)
            except Exception as exc:
                counters.decode_errors += 1
                raise DecodeError(run.spec.path, 0, raw, f"{type(exc).__name__}: {exc}") from exc
        except BaseException as exc:
            self._end(run, exc)
            raise
        self._end(run, None)
        return response

    # -- step 5: the end of a run ---------------------------------------------------------------

    def _end(self, run: CallRun, exc: BaseException | None) -> None:
        """Record how the run ended (once): ``client.history`` and a log event."""
        counters = run.counters
        if exc is None:
            counters.finish("OK")
        elif isinstance(exc, GeneratorExit):
            counters.finish("CANCELLED")  # the consumer stopped early: not a failure
        else:
            counters.failed(exc)
            counters.finish(code_of(exc))
        snap = counters.snapshot()
        self.history.append(snap)
        if exc is None or isinstance(exc, GeneratorExit):
            _log.debug("streamnb.grpc.call_finished", **snap.as_dict())
        else:
            _log.info(
                "streamnb.grpc.call_failed", error=f"{type(exc).__name__}: {exc}", **snap.as_dict()
            )

    # -- resumed server streams ------------------------------------------------------------------

    async def _resumed(self, run: CallRun, request: Any) -> AsyncIterator[Any]:
        """A server stream re-opened after retryable failures, on ``Stream.resilient``.

        Every backoff sleep is capped by the run's deadline, so the run fails with
        DEADLINE_EXCEEDED at its deadline, not after it. A failing ``resume=`` callback is
        never retried: it raises with its own type and a note naming the method and the item.
        """
        spec, counters = run.spec, run.counters
        resume = spec.resume
        assert resume is not None
        attempts = 0
        delivered = 0
        resume_failure: list[BaseException] = []

        def attempt(token: Any) -> AsyncIterator[Any]:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                counters.reconnects += 1
                _log.info(
                    "streamnb.grpc.reconnect",
                    method=spec.path,
                    attempt=attempts,
                    received=counters.received,
                    last_error=counters.code,
                )
            if token is None:
                req = request
            else:
                try:
                    req = resume(token[0])
                except Exception as exc:
                    exc.add_note(
                        f"streamnb: resume= failed while reconnecting {spec.path} after item "
                        f"#{delivered - 1} ({_safe_repr(token[0])})"
                    )
                    resume_failure.append(exc)
                    raise
            return self._responses(run, req, final=False)

        policy = _CallRetry.around(spec.retry, run.deadline, resume_failure)
        # The checkpoint keeps the last delivered item (boxed: an item may be None); resume()
        # turns it into the next request only when a reconnection needs one.
        inner = Stream.resilient(attempt, checkpoint=_box, retry=policy, breaker=spec.breaker)
        try:
            async with inner.open() as it:
                async for item in it:
                    delivered += 1
                    yield item
        except BaseException as exc:
            self._end(run, exc)
            raise
        self._end(run, None)


class _Attempt:
    """One grpc call of a run: opened on enter, mapped and cleaned up on exit.

    Enter: the closed-client check, the deadline check, the call (with its one request, or a
    sender task writing the request source). Exit: grpc's ``AioRpcError`` becomes
    :class:`RpcError`; a local cancellation (the client closed, the call cancelled from
    outside while the task itself was not) becomes an ``RpcError(CANCELLED)``; a request
    source that failed wins over both; the failure is counted; the call is cancelled (a no-op
    once finished), forgotten by the client, and the sender stopped.
    """

    __slots__ = ("_call", "_client", "_run", "_sender", "_source")

    def __init__(self, client: _ClientBase, run: CallRun, source: Any) -> None:
        self._client = client
        self._run = run
        self._source = source
        self._call: Any = None
        self._sender: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        client, run = self._client, self._run
        spec, counters = run.spec, run.counters
        client._check_open(spec.path)
        single = spec.shape in ("unary", "server_stream")
        data = encode_request(spec.codec, spec.path, self._source, 0) if single else b""
        remaining = run.deadline.remaining()
        if remaining is not None and remaining <= 0:
            exc = run.deadline.exceeded(spec.path, counters, "before the call could be (re)opened")
            counters.failed(exc)
            raise exc
        if not counters.started:
            client._started(run, remaining)
        kw = {
            "timeout": remaining,
            "metadata": spec.metadata,
            "wait_for_ready": spec.wait_for_ready,
        }
        if single:
            call = spec.invoke(data, **kw)
            counters.sent += 1
            counters.bytes_sent += len(data)
        else:
            call = spec.invoke(**kw)
        self._call = call
        client._live.add(call)
        if not single:
            self._sender = asyncio.get_running_loop().create_task(
                send_requests(call, self._source, run), name=f"streamnb.grpc.send {spec.path}"
            )
        return call

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        call, sender, run = self._call, self._sender, self._run
        try:
            if isinstance(exc, grpc.aio.AioRpcError):
                err = _sender_error(sender)
                if err is not None:
                    raise err from None
                c = run.counters
                raise RpcError(
                    run.spec.path, exc.code(), exc.details(), received=c.received, sent=c.sent
                ) from exc
            if (
                isinstance(exc, asyncio.CancelledError)
                and not _task_is_cancelling()
                and call.cancelled()
            ):
                if sender is not None and not sender.done():
                    await asyncio.wait([sender])
                err = _sender_error(sender)
                if err is not None:
                    raise err from None
                raise self._client._local_cancel_error(run) from None
            if exc is None:
                err = _sender_error(sender)
                if err is not None:
                    raise err
        except BaseException as mapped:
            run.counters.failed(mapped)
            raise
        finally:
            call.cancel()  # no-op when the call has finished; stops it on break/cancel/close
            self._client._live.discard(call)
            if sender is not None:
                await _stop(sender)
        if exc is not None and not isinstance(exc, GeneratorExit):
            run.counters.failed(exc)


@dataclasses.dataclass(frozen=True)
class _CallRetry(RetryPolicy):
    """A resumed call's retry policy: the user's (or the default), with every backoff sleep
    capped by the call's deadline, and neither the deadline nor a failing ``resume=`` callback
    ever retried."""

    base: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    deadline: Deadline = dataclasses.field(default_factory=lambda: Deadline(None))

    @classmethod
    def around(
        cls, retry: RetryPolicy | None, deadline: Deadline, never: list[BaseException]
    ) -> _CallRetry:
        base = retry or RetryPolicy(
            max_attempts=8, initial=0.05, max_delay=2.0, retry_on=_retryable_rpc
        )

        def retry_on(exc: BaseException) -> bool:
            if any(exc is e for e in never):
                return False
            if _is_deadline(exc) and (left := deadline.remaining()) is not None and left <= 0:
                return False
            return base.retry_on(exc)

        copied = {f.name: getattr(base, f.name) for f in dataclasses.fields(RetryPolicy)}
        return cls(**{**copied, "retry_on": retry_on}, base=base, deadline=deadline)

    def delay(self, attempt: int) -> float:
        """The base policy's delay, ending at the deadline at the latest."""
        return self.deadline.cap(self.base.delay(attempt))


def _is_deadline(exc: BaseException) -> bool:
    return isinstance(exc, RpcError) and exc.code == grpc.StatusCode.DEADLINE_EXCEEDED


def _retryable_rpc(exc: BaseException) -> bool:
    """Default retry predicate of resumed streams: RpcErrors with a retryable status."""
    if isinstance(exc, RpcError):
        return exc.code is not None and exc.code.name in RETRYABLE_CODES
    return False


def _decode_failed(run: CallRun, index: int, raw: bytes, exc: Exception) -> None:
    """Message ``index`` did not decode: raise a DecodeError, or dead-letter it and go on."""
    counters = run.counters
    counters.decode_errors += 1
    err = DecodeError(run.spec.path, index, raw, f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    dead_letter = run.spec.dead_letter
    if dead_letter is None:
        raise err
    counters.errors += 1
    dead_letter.add(run.spec.path, index, raw, err)


def _box(item: Any) -> tuple[Any]:
    return (item,)


def _safe_repr(item: Any) -> str:
    """``repr(item)`` shortened - or ``<Type object at 0x...>`` when its repr raises."""
    try:
        text = repr(item)
    except Exception:
        text = f"<{type(item).__name__} object at {id(item):#x}>"
    return text if len(text) <= 120 else text[:117] + "..."


class GrpcClient(_ClientBase):
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

    async def __aenter__(self) -> GrpcClient:
        self._ensure_channel()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the channel is connected (raises TimeoutError after ``timeout`` s)."""
        async with asyncio.timeout(timeout):
            await self._ensure_channel().channel_ready()

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
        return await self._once("unary", method, request, codec, timeout, metadata, wait_for_ready)

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
        progress, 50 ms doubling up to 2 s; every sleep ends at ``timeout`` at the latest).
        With a feed whose events carry a sequence number::

            feed = client.server_stream(
                "/streamnb.demo.v1.EventFeed/Subscribe", SubscribeRequest(count=10_000),
                codec=Event,
                resume=lambda ev: SubscribeRequest(start=ev.seq + 1, count=10_000),
            )

        the consumer sees every event exactly once, in order, across disconnects. If
        ``resume`` itself raises, the stream fails with that exception (never retried), noted
        ``resume= failed while reconnecting METHOD after item #k``.
        ``on_decode_error="skip"`` sends undecodable messages to ``dead_letter`` (one is
        created if not given; see ``.dead_letter``) instead of failing the stream.
        """
        spec = self._spec(
            "server_stream",
            method,
            codec=codec,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
            on_decode_error=on_decode_error,
            dead_letter=dead_letter,
            resume=resume,
            retry=retry,
            breaker=breaker,
        )

        def open_run(state: RunState) -> AsyncIterator[Any]:
            run = self._new_run(spec, state)
            if spec.resume is None:
                return self._responses(run, request, final=True)
            return self._resumed(run, request)

        return RpcStream(open_run, spec.path, spec.dead_letter)

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
        return await self._once(
            "client_stream", method, requests, codec, timeout, metadata, wait_for_ready
        )

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

        ``requests`` is iterated once per iteration of the returned Stream: pass a
        re-iterable (a list, a Stream) to iterate the responses twice. A one-shot source (a
        generator) serves one iteration; a second raises ``StreamConsumedError`` (rather than
        silently sending nothing). The client half-closes when the requests end; the response
        Stream ends when the server finishes. Breaking out of the responses cancels the call
        and stops the sender.

        Example::

            answers = client.bidi("/streamnb.demo.v1.Agent/Chat",
                                  [Prompt(id=1, text="hi")], codec=AgentEvent)
            async for ev in answers:
                print(ev.WhichOneof("event"))
        """
        spec = self._spec(
            "bidi",
            method,
            codec=codec,
            timeout=timeout,
            metadata=metadata,
            wait_for_ready=wait_for_ready,
            on_decode_error=on_decode_error,
            dead_letter=dead_letter,
        )
        once = OneShotGuard(requests) if OneShotGuard.needed(requests) else None

        def open_run(state: RunState) -> AsyncIterator[Any]:
            if once is not None:
                once.take(spec.path)
            return self._responses(self._new_run(spec, state), requests, final=True)

        return RpcStream(open_run, spec.path, spec.dead_letter)

    # -- reflection -----------------------------------------------------------------------------

    def _reflector(self) -> Reflector:
        if self._reflection is None:
            self._reflection = Reflector(self, timeout=self._timeout, metadata=self._metadata)
        return self._reflection

    async def services(self, *, timeout: float | None = None) -> list[str]:  # noqa: ASYNC109
        """Names of the services the server exposes through reflection (sorted).

        Example: ``await client.services()`` -> ``['grpc.health.v1.Health', ...]``.
        """
        return await self._reflector().services(deadline_s=timeout)

    async def methods(
        self,
        service: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the server
    ) -> list[MethodInfo]:
        """The methods of ``service`` (:class:`~streamnb.grpc.reflection.MethodInfo`: name,
        path, shape, input/output type names), from the server's descriptors."""
        return await self._reflector().methods(service, deadline_s=timeout)

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
        return await self._reflector().call(
            method,
            request,
            deadline_s=timeout,
            metadata=metadata,
            on_decode_error=on_decode_error,
            int64_as_str=int64_as_str,
        )

"""One gRPC call as data, and its request side.

A call is decided once, by the client's prologue, into a frozen :class:`CallSpec` (method
path, shape, codec, metadata, timeout, decode policy, resume options, the grpc multi-callable).
Every run of it - one await for a unary call, one iteration of a response Stream - gets a
:class:`CallRun`: the spec, the run's live :class:`CallCounters` (registered on the Stream's
run as its ``"call"`` observable) and the run's :class:`Deadline`. The client's steps (open an
attempt, send, decode, finish) take that one object.

This module also holds the one send loop, :func:`send_requests`, for every kind of request
source (a list, a generator, an async iterable, a Stream)::

    spec = client._spec(...)                 # the prologue (see GrpcClient)
    run = CallRun(spec, CallCounters(spec), Deadline(spec.timeout))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import grpc

from .._callstats import CallStats
from ..errors import StreamConsumedError
from ..stream import Stream
from .codecs import Codec
from .errors import DecodeError, EncodeError, RpcError

__all__ = [
    "CallCounters",
    "CallRun",
    "CallShape",
    "CallSpec",
    "Deadline",
    "DecodePolicy",
    "Metadata",
    "MetadataLike",
    "OneShotGuard",
    "code_of",
    "encode_request",
    "metadata_pairs",
    "method_path",
    "redact_metadata",
    "send_requests",
]

CallShape = Literal["unary", "server_stream", "client_stream", "bidi"]
MetadataLike: TypeAlias = Mapping[str, str | bytes] | Sequence[tuple[str, str | bytes]]
Metadata: TypeAlias = tuple[tuple[str, str | bytes], ...]
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


def metadata_pairs(metadata: MetadataLike | None) -> Metadata:
    """Metadata as a tuple of ``(lower-case key, value)`` pairs (a mapping or pairs accepted)."""
    if not metadata:
        return ()
    if isinstance(metadata, Mapping):
        return tuple((str(k).lower(), v) for k, v in metadata.items())
    return tuple((str(k).lower(), v) for k, v in metadata)


def method_path(method: str) -> str:
    """Normalise ``pkg.Service/Method``, ``/pkg.Service/Method``, ``pkg.Service.Method``.

    >>> method_path("pkg.Service.Method")
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


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything decided about a call before it opens (built by the client's one prologue).

    ``invoke`` is grpc's multi-callable (bytes in, bytes out); ``dead_letter`` is where
    undecodable messages go (None: they raise); ``resume``/``retry``/``breaker`` are the
    reconnection options of a resumed server stream (``resume`` None: no reconnection).
    """

    path: str
    shape: CallShape
    codec: Codec
    metadata: Metadata
    timeout: float | None
    wait_for_ready: bool | None
    invoke: Any
    dead_letter: Any = None
    resume: Callable[[Any], Any] | None = None
    retry: Any = None
    breaker: Any = None


class CallCounters(CallStats):
    """The live counters of one run of a gRPC call (:class:`~streamnb._callstats.CallStats`,
    named and shaped by its :class:`CallSpec`); readers take :meth:`snapshot` (frozen).

    ``errors`` counts failed attempts and undecodable messages; ``code`` is the latest status
    name (``"OK"``, ``"UNAVAILABLE"``..., ``None`` while the first attempt runs). What gRPC adds
    is :meth:`failed` and its ``counted`` marker: one failure is seen by several steps (the
    attempt that raised it, then the run's end), and is counted once.
    """

    __slots__ = ("counted",)

    def __init__(self, spec: CallSpec, name: str | None = None) -> None:
        super().__init__(spec.path if name is None else name, spec.path, spec.shape)
        #: the latest exception already counted in ``errors`` (so the run's end counts it once)
        self.counted: BaseException | None = None

    def failed(self, exc: BaseException) -> None:
        """Count a failure (once per exception) and take its status name."""
        seen = self.counted
        if seen is None or (exc is not seen and exc.__cause__ is not seen):
            self.errors += 1
        self.counted = exc
        self.code = code_of(exc)


def code_of(exc: BaseException) -> str:
    """The status name a failure is recorded under (``"UNAVAILABLE"``, ``"CANCELLED"``...)."""
    if isinstance(exc, RpcError) and exc.code is not None:
        return str(exc.code.name)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    if isinstance(exc, DecodeError):
        return "DECODE_ERROR"
    return type(exc).__name__


class Deadline:
    """A call-wide deadline shared by the attempts of one run (None: no deadline)."""

    __slots__ = ("_at", "timeout")

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._at = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        """Seconds left (may be <= 0), or None without a deadline."""
        if self._at is None:
            return None
        return self._at - time.monotonic()

    def cap(self, delay: float) -> float:
        """``delay`` shortened so that it ends at the deadline at the latest."""
        left = self.remaining()
        return delay if left is None else max(0.0, min(delay, left))

    def exceeded(self, path: str, counters: CallCounters, when: str) -> RpcError:
        """The DEADLINE_EXCEEDED error of this run, raised before an attempt could open."""
        return RpcError(
            path,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the call's deadline of {self.timeout} s passed {when}",
            received=counters.received,
            sent=counters.sent,
        )


@dataclass(slots=True)
class CallRun:
    """One run of a call - the object the client's steps pass along.

    For a response Stream, one iteration; ``counters`` are registered on that iteration's
    run (``it.snapshots("call")``) and, once it ends, kept in ``client.history``.
    """

    spec: CallSpec
    counters: CallCounters
    deadline: Deadline


class OneShotGuard:
    """Remembers that a one-shot request source (a generator) was handed to a call already.

    A second iteration of a bidirectional Stream built on a generator would otherwise send
    nothing and look like a call with no requests; it raises ``StreamConsumedError`` instead,
    like ``Stream(generator)``.
    """

    __slots__ = ("_taken", "_what")

    def __init__(self, requests: object) -> None:
        self._what = type(requests).__name__
        self._taken = False

    @staticmethod
    def needed(requests: object) -> bool:
        """Whether ``requests`` can be iterated only once (an iterator, not an iterable)."""
        return hasattr(requests, "__next__") or hasattr(requests, "__anext__")

    def take(self, path: str) -> None:
        """Mark the source used; raise ``StreamConsumedError`` the second time."""
        if self._taken:
            raise StreamConsumedError(
                f"bidi({path!r}): the requests are a one-shot {self._what} that an earlier "
                "iteration already consumed; pass a re-iterable (a list), a Stream, or call "
                "bidi() again with a fresh generator to iterate the responses again"
            )
        self._taken = True


def encode_request(codec: Codec, path: str, obj: Any, index: int) -> bytes:
    """``codec.encode(obj)``, failures raised as :class:`EncodeError` naming request ``index``."""
    try:
        return codec.encode(obj)
    except Exception as exc:
        raise EncodeError(path, index, f"{type(exc).__name__}: {exc}") from exc


async def _no_async() -> Any:
    raise StopAsyncIteration


class _Requests:
    """Iteration over any request source, closed on exit: ``next_sync`` for plain iterables
    (no async hop per request), ``next_async`` for async iterables and Streams."""

    __slots__ = ("_cm", "_it", "_obj", "next_async", "next_sync")

    def __init__(self, obj: Iterable[Any] | AsyncIterable[Any]) -> None:
        self._obj = obj
        self._cm: Any = None
        self._it: Any = None
        self.next_sync: Callable[[], Any] | None = None
        self.next_async: Callable[[], Awaitable[Any]] = _no_async

    async def __aenter__(self) -> _Requests:
        obj: Any = self._obj
        if isinstance(obj, Stream):
            self._cm = obj.open()  # a Stream: an Iteration, closed deterministically
            self._it = await self._cm.__aenter__()
            self.next_async = self._it.__anext__
        elif hasattr(obj, "__aiter__"):
            self._it = obj.__aiter__()
            self.next_async = self._it.__anext__
        elif hasattr(obj, "__iter__"):
            self._it = iter(obj)
            self.next_sync = self._it.__next__
        else:
            raise TypeError(
                "requests must be an iterable, an async iterable or a Stream, got "
                f"{type(obj).__name__}"
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)
            return
        it = self._it
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            await aclose()
            return
        close = getattr(it, "close", None)
        if close is not None:
            close()


async def send_requests(
    call: Any, requests: Iterable[Any] | AsyncIterable[Any], run: CallRun
) -> None:
    """Write every request, then half-close. Returns early if the call has ended.

    The one send loop of client-streaming and bidirectional calls, for sync and async request
    sources alike. A failing request source (or encoder) cancels the call and re-raises, with
    a note naming the request index. Per request it does only what raw grpc.aio does plus the
    encode and two counter updates; ``write`` raising ``InvalidStateError`` once the call has
    ended stops the loop (no ``call.done()`` probe per request).
    """
    spec, counters = run.spec, run.counters
    encode = spec.codec.encode
    write = call.write
    path = spec.path
    index = 0
    try:
        async with _Requests(requests) as source:
            next_sync, next_async = source.next_sync, source.next_async
            while True:
                try:
                    obj = next_sync() if next_sync is not None else await next_async()
                except (StopIteration, StopAsyncIteration):
                    break
                try:
                    data = encode(obj)
                except Exception as exc:
                    raise EncodeError(path, index, f"{type(exc).__name__}: {exc}") from exc
                try:
                    await write(data)
                except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                    return  # the call ended (answered or failed): its status tells
                index += 1
                counters.sent = index
                counters.bytes_sent += len(data)
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

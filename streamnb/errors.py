"""The streamnb exception tree.

Every error streamnb raises on its own account derives from :class:`StreamnbError`, so
``except StreamnbError`` catches all of them and nothing else. Exceptions raised by *your*
functions (a ``map`` callback, a source) propagate with their own type; streamnb only adds a
note (``exc.add_note``) naming the stage and the item index where they happened.

Two branches tell what to do about an error. A :class:`UsageError` means the call was wrong
(fix the code; it is raised up front, before anything runs, and is also a ``ValueError`` or
``TypeError`` where that fits). A :class:`StreamError` means something failed while a stream
ran (the data, the network, a limit you set) - handle it, retry it, or let it surface.

The tree below is checked against the classes by the test suite::

    StreamnbError
     ├── UsageError                 the API was used the wrong way
     │    ├── InvalidArgumentError  an argument has the wrong value (also ValueError)
     │    │    └── WindowConfigError    a window with no bound, or a non-positive one
     │    ├── ArgumentTypeError     an argument has the wrong type (also TypeError)
     │    ├── StreamConsumedError   a one-shot source iterated a second time
     │    ├── InvalidTransitionError    pause/resume/stop of a run in the wrong state
     │    ├── NoWindowError         to_pandas() of a run without such a window
     │    ├── ClientClosedError     (streamnb.grpc) a call on a closed GrpcClient
     │    └── DaskStageError        (streamnb.dask) a Dask stage used the wrong way
     └── StreamError                a stream failed while running
          ├── EmptyStreamError      first() on a stream that ended without an item
          ├── CollectLimitError     collect(limit=N) on a stream longer than N
          ├── BufferOverflowError   buffer(overflow="error") found its buffer full
          ├── BufferTimeoutError    buffer(put_timeout=s) waited longer than s for room
          ├── RetryExhaustedError   a resilient source or per-item retry gave up
          ├── CircuitOpenError      a CircuitBreaker is open and refused the call
          ├── PipelineStoppedError  a run was stopped before it finished
          ├── StrayCancelledError   user code raised CancelledError, the stream was not cancelled
          ├── RpcError              (streamnb.grpc) a failed call: method, code, details
          │    └── DecodeError      a message that could not be decoded: method, index
          ├── HttpError             (streamnb.http) a failed request: url, status, body excerpt
          │    └── HttpDecodeError  an event that could not be decoded: url, index
          └── EncodeError           (streamnb.grpc) a request that could not be encoded

Example::

    from streamnb import Stream, UsageError, StreamError

    try:
        Stream(range(3)).batch(0)
    except UsageError as exc:        # also a ValueError
        print(exc)                   # batch(size=0): must be >= 1
"""

from __future__ import annotations

__all__ = [
    "ArgumentTypeError",
    "BufferOverflowError",
    "BufferTimeoutError",
    "CircuitOpenError",
    "ClientClosedError",
    "CollectLimitError",
    "DaskStageError",
    "EmptyStreamError",
    "HttpDecodeError",
    "HttpError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "NoWindowError",
    "PipelineStoppedError",
    "RetryExhaustedError",
    "StrayCancelledError",
    "StreamConsumedError",
    "StreamError",
    "StreamnbError",
    "UsageError",
    "WindowConfigError",
]


class StreamnbError(Exception):
    """Base class of every error streamnb raises itself.

    ``retryable`` tells resilient sources whether trying again could succeed.
    """

    retryable: bool = False


# -- misuse ------------------------------------------------------------------------------------
class UsageError(StreamnbError):
    """The API was used the wrong way: the message names the method and what to change."""


class InvalidArgumentError(UsageError, ValueError):
    """An argument has a value the method cannot use (out of range, NaN, unknown name)."""


class WindowConfigError(InvalidArgumentError):
    """A window was configured without a bound, with both, or with a non-positive one."""


class ArgumentTypeError(UsageError, TypeError):
    """An argument has a type the method cannot use (a str where a number is needed...)."""


class StreamConsumedError(UsageError):
    """A Stream over a one-shot iterator (a generator, an open call) was iterated twice.

    Build the Stream from a factory (``Stream(lambda: gen())``) or a re-iterable
    (a list, a range) to iterate it more than once.
    """


class InvalidTransitionError(UsageError):
    """A run was asked to pause, resume or stop in a state that does not allow it."""


class NoWindowError(UsageError, LookupError):
    """``Run.window`` / ``Run.to_pandas()`` on a run whose stream has no such ``.window(...)``."""


class ClientClosedError(UsageError, RuntimeError):
    """A call was made on a ``GrpcClient`` after it was closed."""


class DaskStageError(UsageError):
    """A ``DaskExecutor`` was misused: used after shutdown, or given a ``scatter`` keyword the
    function does not accept or Dask reserves."""


# -- runtime failures --------------------------------------------------------------------------
class StreamError(StreamnbError):
    """A stream failed while running: the data, the network or a limit you set."""


class EmptyStreamError(StreamError):
    """``first()`` found no item."""


class CollectLimitError(StreamError):
    """``collect(limit=N)`` met item N+1: the stream is longer than you allowed to buffer."""


class BufferOverflowError(StreamError):
    """A ``buffer(overflow="error")`` stage was full when an item arrived."""


class BufferTimeoutError(StreamError):
    """A ``buffer(put_timeout=...)`` producer waited too long for room."""


class RetryExhaustedError(StreamError):
    """Retries ran out; ``__cause__`` is the last failure."""


class CircuitOpenError(StreamError):
    """The circuit breaker is open: calls fail fast until its reset timeout has passed."""


class PipelineStoppedError(StreamError):
    """A run was stopped (``stop()``, the stop button) before it finished."""


class StrayCancelledError(StreamError):
    """A stage's user code (a source, a ``map`` function...) raised ``CancelledError`` while
    nobody cancelled the stream: it awaited something that another task cancelled.

    Letting that ``CancelledError`` travel on would end the stream early and silently (a task
    boundary takes it for a cancellation) or hang it; instead the run fails with this error,
    which names the stage and the item, and whose ``__cause__`` is the stray ``CancelledError``.
    A real cancellation of the consumer (``task.cancel()``, ``asyncio.timeout``) still ends the
    stream with ``CancelledError``.
    """


class HttpError(StreamError):
    """An HTTP request of ``streamnb.http`` failed: a status >= 400, or the connection broke.

    Attributes: ``url`` (secret query parameters redacted), ``status`` (the HTTP status, or
    ``None`` when no response came: refused, reset, timed out, a body cut short), ``body``
    (an excerpt of the response body, at most 500 characters), ``reason`` (what went wrong),
    ``received`` (events delivered before the failure) and ``retryable`` - true for a broken
    connection and for 408, 429, 502, 503 and 504, so a resumed stream reconnects on those and
    gives up on the rest (a 401 will not heal by retrying).

    Example::

        try:
            await sse(url).count()
        except HttpError as exc:
            print(exc.status, exc.body)
    """

    RETRYABLE_STATUS: frozenset[int] = frozenset({408, 429, 502, 503, 504})

    def __init__(
        self,
        url: str,
        status: int | None,
        body: str = "",
        *,
        reason: str = "",
        method: str = "GET",
        received: int = 0,
    ) -> None:
        self.url = url
        self.status = status
        self.body = body[:500]
        self.reason = reason
        self.method = method
        self.received = received
        self.retryable = status is None or status in self.RETRYABLE_STATUS
        super().__init__(self._message())

    def _message(self) -> str:
        if self.status is None:
            what = f"failed: {self.reason or 'the connection broke'}"
        else:
            what = f"answered {self.status} {self.reason}".rstrip()
        text = f"{self.method} {self.url} {what}"
        if self.body:
            text += f"; body: {self.body!r}"
        if self.status == 401:
            text += " (check the API key or token: it was refused)"
        return text + f" (after {self.received} event(s) received)"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_http_error, (type(self), self.__dict__.copy()))


class HttpDecodeError(HttpError):
    """Event ``index`` (0-based, counted over the stream) from ``url`` could not be decoded.

    ``data`` is the raw event text (kept for a dead letter); the decoder's exception is
    ``__cause__``. Not retryable: the same bytes would fail again. Pass
    ``on_decode_error="skip"`` to send such events to a DeadLetter instead.
    """

    def __init__(self, url: str, index: int, data: str, reason: str) -> None:
        self.index = index
        self.data = data
        super().__init__(url, None, reason=reason, received=index)
        self.retryable = False

    def _message(self) -> str:
        preview = self.data[:40] + ("..." if len(self.data) > 40 else "")
        return (
            f"{self.url}: event #{self.index} ({preview!r}) could not be decoded: "
            f"{self.reason}. Use on_decode_error='skip' to send undecodable events to a "
            "DeadLetter instead."
        )


def _rebuild_http_error(cls: type[HttpError], state: dict[str, object]) -> HttpError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    StreamError.__init__(err, err._message())
    return err

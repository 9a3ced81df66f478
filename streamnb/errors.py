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
     │    ├── DaskStageError        (streamnb.dask) a Dask stage used the wrong way
     │    └── MissingExtraError     an optional dependency is not installed (also ImportError)
     └── StreamError                a stream failed while running
          ├── EmptyStreamError      first() on a stream that ended without an item
          ├── CollectLimitError     collect(limit=N) on a stream longer than N
          ├── BufferOverflowError   buffer(overflow="error") found its buffer full
          ├── BufferTimeoutError    buffer(put_timeout=s) waited longer than s for room
          ├── RetryExhaustedError   a resilient source or per-item retry gave up
          ├── CircuitOpenError      a CircuitBreaker is open and refused the call
          ├── PipelineStoppedError  a run was stopped before it finished
          ├── RpcError              (streamnb.grpc) a failed call: method, code, details
          │    └── DecodeError      a message that could not be decoded: method, index
          ├── EncodeError           (streamnb.grpc) a request that could not be encoded
          ├── LateItemError         an item behind the watermark of a keyed window
          └── KeyLimitError         a keyed window met more keys than its max_keys

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
    "InvalidArgumentError",
    "InvalidTransitionError",
    "KeyLimitError",
    "LateItemError",
    "MissingExtraError",
    "NoWindowError",
    "PipelineStoppedError",
    "RetryExhaustedError",
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


class MissingExtraError(UsageError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the
    ``pip install 'streamnb[extra]'`` that brings it."""


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


class LateItemError(StreamError):
    """An item arrived behind the watermark of a keyed window: its window was already closed.

    Raised with ``late="raise"``; with the default ``late="dead_letter"`` it is the error
    recorded next to the item in the dead letter.
    """


class KeyLimitError(StreamError):
    """A keyed window met a new key while ``max_keys`` keys already had open windows."""

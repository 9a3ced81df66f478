"""The streamnb exception tree.

Every error streamnb raises on its own account derives from :class:`StreamnbError`, so
``except StreamnbError`` catches all of them and nothing else. Exceptions raised by *your*
functions (a ``map`` callback, a source) propagate with their own type; streamnb only adds a
note (``exc.add_note``) naming the stage and the item index where they happened.

::

    StreamnbError
     ├── StreamConsumedError      a one-shot source iterated a second time
     ├── EmptyStreamError         first() on a stream that ended without an item
     ├── CollectLimitError        collect(limit=N) on a stream longer than N
     ├── BufferOverflowError      buffer(overflow="error") found its buffer full
     ├── BufferTimeoutError       buffer(put_timeout=s) waited longer than s for room
     ├── RetryExhaustedError      a resilient source or per-item retry gave up
     ├── CircuitOpenError         a CircuitBreaker is open and refused the call
     ├── PipelineStoppedError     a run was stopped before it finished
     ├── RpcError                 (streamnb.grpc) a failed call: method, code, details
     │    └── DecodeError         a message that could not be decoded: method, index
     ├── EncodeError              (streamnb.grpc) a request that could not be encoded
     └── DaskStageError           (streamnb.dask) a Dask stage used the wrong way
"""

from __future__ import annotations

__all__ = [
    "BufferOverflowError",
    "BufferTimeoutError",
    "CircuitOpenError",
    "CollectLimitError",
    "EmptyStreamError",
    "PipelineStoppedError",
    "RetryExhaustedError",
    "StreamConsumedError",
    "StreamnbError",
]


class StreamnbError(Exception):
    """Base class of every error streamnb raises itself.

    ``retryable`` tells resilient sources whether trying again could succeed.
    """

    retryable: bool = False


class StreamConsumedError(StreamnbError):
    """A Stream over a one-shot iterator (a generator, an open call) was iterated twice.

    Build the Stream from a factory (``Stream(lambda: gen())``) or a re-iterable
    (a list, a range) to iterate it more than once.
    """


class EmptyStreamError(StreamnbError):
    """``first()`` found no item."""


class CollectLimitError(StreamnbError):
    """``collect(limit=N)`` met item N+1: the stream is longer than you allowed to buffer."""


class BufferOverflowError(StreamnbError):
    """A ``buffer(overflow="error")`` stage was full when an item arrived."""


class BufferTimeoutError(StreamnbError):
    """A ``buffer(put_timeout=...)`` producer waited too long for room."""


class RetryExhaustedError(StreamnbError):
    """Retries ran out; ``__cause__`` is the last failure."""


class CircuitOpenError(StreamnbError):
    """The circuit breaker is open: calls fail fast until its reset timeout has passed."""


class PipelineStoppedError(StreamnbError):
    """A run was stopped (``stop()``, the stop button) before it finished."""

"""streamnb: streaming patterns made tangible in Jupyter.

The core - :class:`Stream` and its operators, backpressure buffers, error recovery and
metrics - needs only the standard library and structlog, so ``import streamnb`` works in a
plain script. The gRPC adapter (``streamnb.grpc``, extra ``[grpc]``), the notebook layer
(``streamnb.notebook``, extra ``[notebook]``) and the Dask stage (``streamnb.dask``, extra
``[dask]``) are imported only when you use them.

Example::

    import asyncio
    from streamnb import Stream

    async def main() -> None:
        evens = Stream(range(10)).map(lambda x: x * 2).filter(lambda x: x % 4 == 0)
        print(await evens.collect())   # [0, 4, 8, 12, 16]

    asyncio.run(main())
"""

from ._tasks import running_tasks
from .buffer import Overflow
from .errors import (
    ArgumentTypeError,
    BufferOverflowError,
    BufferTimeoutError,
    CircuitOpenError,
    ClientClosedError,
    CollectLimitError,
    DaskStageError,
    EmptyStreamError,
    InvalidArgumentError,
    InvalidTransitionError,
    NoWindowError,
    PipelineStoppedError,
    RetryExhaustedError,
    StrayCancelledError,
    StreamConsumedError,
    StreamError,
    StreamnbError,
    UsageError,
    WindowConfigError,
)
from .metrics import (
    BufferSnapshot,
    CallSnapshot,
    ConcurrencySnapshot,
    Meter,
    MetricsSnapshot,
    Observable,
    ResilientSnapshot,
    Snapshot,
)
from .recovery import (
    CircuitBreaker,
    CircuitState,
    DeadLetter,
    DeadLetterEntry,
    ErrorPolicy,
    RetryPolicy,
    default_retryable,
)
from .stream import Iteration, Stream

__version__ = "0.1.0"

__all__ = [
    "ArgumentTypeError",
    "BufferOverflowError",
    "BufferSnapshot",
    "BufferTimeoutError",
    "CallSnapshot",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "ClientClosedError",
    "CollectLimitError",
    "ConcurrencySnapshot",
    "DaskStageError",
    "DeadLetter",
    "DeadLetterEntry",
    "EmptyStreamError",
    "ErrorPolicy",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "Iteration",
    "Meter",
    "MetricsSnapshot",
    "NoWindowError",
    "Observable",
    "Overflow",
    "PipelineStoppedError",
    "ResilientSnapshot",
    "RetryExhaustedError",
    "RetryPolicy",
    "Snapshot",
    "StrayCancelledError",
    "Stream",
    "StreamConsumedError",
    "StreamError",
    "StreamnbError",
    "UsageError",
    "WindowConfigError",
    "__version__",
    "default_retryable",
    "running_tasks",
]

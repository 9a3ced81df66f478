"""Per-stage metrics: cheap counters on the hot path, plain-data snapshots for everyone else.

A :class:`Meter` is created for each ``.monitor(name)`` point of a running stream. The stage
that feeds it keeps its counts in local variables (one integer increment per item) and
*publishes* them to the meter every so often: the publishing pace adapts so that it happens
roughly every 20 ms of stream time (every item for a slow stream, at most every
:data:`MAX_PUBLISH_STEP` items for a fast one). Readers - the notebook dashboard, the log
reporter, your code - call :meth:`Meter.snapshot`, which returns a frozen
:class:`MetricsSnapshot`; nothing is computed per item for them.

Example::

    s = Stream(range(1000)).map(str).monitor("strings", size=len)
    async with s.open() as it:
        async for _ in it:
            pass
        print(it.metrics()["strings"].items)   # 1000
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ._log import get_logger

if TYPE_CHECKING:
    from .recovery import DeadLetter

__all__ = [
    "MAX_PUBLISH_STEP",
    "PUBLISH_INTERVAL",
    "BufferObservable",
    "BufferSnapshot",
    "CallSnapshot",
    "ConcurrencySnapshot",
    "KeyedWindowSnapshot",
    "Meter",
    "MetricsSnapshot",
    "Observable",
    "ResilientSnapshot",
    "Snapshot",
    "StageStatus",
    "TaskReporter",
    "TaskSnapshot",
    "snapshots",
]

_log = get_logger("streamnb.metrics")

#: Seconds between two publications of a running stage's counters.
PUBLISH_INTERVAL = 0.02
#: Most items that pass between two looks at the clock (so at most this many are unpublished).
MAX_PUBLISH_STEP = 1024

StageStatus = Literal["idle", "running", "done", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What one monitored point of a stream has seen, at ``taken_at`` (``time.monotonic``).

    Rates are measured from the first item (not from construction), ``window_rate`` over the
    last ``window`` seconds. ``latency`` (seconds) needs ``monitor(timestamp=...)``; the buffer
    fields are filled when the monitored stage is a ``buffer``. ``errors`` counts failures seen at
    this point, including items a ``skip`` policy sent to the dead-letter sink.
    """

    name: str
    status: StageStatus
    items: int
    errors: int
    dropped: int
    bytes: int
    elapsed: float
    rate: float
    window_rate: float
    bytes_rate: float
    latency: float | None
    latency_max: float | None
    buffer_depth: int | None
    buffer_capacity: int | None
    buffer_high_water: int | None
    total: int | None
    error: str | None
    taken_at: float
    #: seconds the buffer's producer spent waiting for room (backpressure), buffers only
    buffer_blocked_seconds: float | None = None

    @property
    def utilisation(self) -> float | None:
        """Buffer depth / capacity in [0, 1], or None when the stage is not a buffer."""
        if self.buffer_capacity is None or self.buffer_depth is None:
            return None
        return self.buffer_depth / self.buffer_capacity if self.buffer_capacity else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate when a total is known, else None."""
        if self.total is None or self.rate <= 0:
            return None
        return max(0.0, (self.total - self.items) / self.rate)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas)."""
        d = asdict(self)
        d["utilisation"] = self.utilisation
        return d


@dataclass(frozen=True, slots=True)
class BufferSnapshot:
    """One ``buffer`` stage at ``taken_at``: depth now, high-water, drops, backpressure.

    ``blocked_seconds`` is the time the producer spent waiting for room (``block`` policy) -
    a direct measure of backpressure.
    """

    name: str
    capacity: int
    depth: int
    high_water: int
    dropped: int
    blocked_seconds: float
    overflow: str
    taken_at: float

    @property
    def utilisation(self) -> float:
        """depth / capacity in [0, 1]."""
        return self.depth / self.capacity if self.capacity else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TaskSnapshot:
    """The tasks an executor ran for one stage: how it grouped the stage's calls (Dask).

    An executor that packs several calls into one task (:class:`streamnb.dask.DaskExecutor`)
    reports this with the stage's :class:`ConcurrencySnapshot`, counted from the stage's
    start: ``sent`` tasks, ``in_flight`` now (the executor's), ``done`` finished ones that
    held ``calls`` calls and ran ``run_seconds`` on their workers in all. ``overhead_seconds``
    is the executor's recent estimate of a task's cost beyond its calls (round trip,
    scheduling), ``batch_size`` the calls per task it aims at now (None until measured).

    Example::

        t = it.stages["map(score)"].tasks
        print(t.items_per_task, t.task_seconds)   # e.g. 10.0, 0.051
    """

    sent: int
    in_flight: int
    done: int
    calls: int
    run_seconds: float
    overhead_seconds: float | None
    batch_size: int | None

    @property
    def items_per_task(self) -> float | None:
        """Mean calls per finished task (None before one finished)."""
        return self.calls / self.done if self.done else None

    @property
    def task_seconds(self) -> float | None:
        """Mean seconds a finished task ran on its worker (None before one finished)."""
        return self.run_seconds / self.done if self.done else None

    def since(self, start: TaskSnapshot) -> TaskSnapshot:
        """The counts since ``start`` (an earlier snapshot of the same executor); the
        gauges (``in_flight``, ``overhead_seconds``, ``batch_size``) are this one's."""
        return TaskSnapshot(
            sent=self.sent - start.sent,
            in_flight=self.in_flight,
            done=self.done - start.done,
            calls=self.calls - start.calls,
            run_seconds=self.run_seconds - start.run_seconds,
            overhead_seconds=self.overhead_seconds,
            batch_size=self.batch_size,
        )

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas), with the two means."""
        d = asdict(self)
        d["items_per_task"] = self.items_per_task
        d["task_seconds"] = self.task_seconds
        return d


@runtime_checkable
class TaskReporter(Protocol):
    """An executor that groups calls into tasks and says how (``DaskExecutor``): a concurrent
    stage that runs on one adds its :meth:`task_snapshot` to the stage's snapshot."""

    def task_snapshot(self) -> TaskSnapshot: ...


@dataclass(frozen=True, slots=True)
class ConcurrencySnapshot:
    """One concurrent stage (``map(concurrency=N)``, ``executor=``) at ``taken_at``.

    ``in_flight`` calls are running now, ``max_in_flight`` is the most there have been, never
    above ``concurrency`` - unless the stage follows its executor's ``preferred_concurrency``
    (``map`` on a Dask executor without ``concurrency=``): then ``concurrency`` is the figure
    now, which may have been higher earlier in the run. ``executor`` names the executor
    (None for async functions on the loop); ``dashboard_link`` is a cluster dashboard's URL
    when the executor has one (Dask). ``tasks`` is how the executor grouped the stage's
    calls into tasks (a :class:`TaskSnapshot`, for an executor that groups them - Dask;
    None otherwise).
    """

    name: str
    concurrency: int
    in_flight: int
    max_in_flight: int
    started: int
    completed: int
    failed: int
    executor: str | None
    dashboard_link: str | None
    taken_at: float
    tasks: TaskSnapshot | None = None

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas); ``tasks`` as a nested dict (or None)."""
        d = asdict(self)
        if self.tasks is not None:
            d["tasks"] = self.tasks.as_dict()
        return d


@dataclass(frozen=True, slots=True)
class ResilientSnapshot:
    """A ``Stream.resilient`` source (or a resumed gRPC stream) at ``taken_at``.

    ``failures`` counts failed attempts, ``reconnects`` the new sources opened after one;
    ``delivered`` the items handed downstream in all; ``last_error`` the latest failure.
    """

    name: str
    delivered: int
    failures: int
    reconnects: int
    last_error: str | None
    taken_at: float

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """One gRPC call (or one run of a response Stream, reconnects included) at ``taken_at``.

    ``errors`` counts failed attempts and undecodable messages; ``code`` is the final status
    name (``"OK"``, ``"UNAVAILABLE"``..., ``None`` while running).
    """

    name: str
    method: str
    shape: str
    sent: int
    received: int
    bytes_sent: int
    bytes_received: int
    errors: int
    decode_errors: int
    reconnects: int
    code: str | None
    elapsed: float
    taken_at: float

    @property
    def rate(self) -> float:
        """Messages received per second."""
        return self.received / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (for logs, JSON, pandas)."""
        d = asdict(self)
        d["rate"] = self.rate
        return d


@dataclass(frozen=True, slots=True)
class KeyedWindowSnapshot:
    """A keyed window stage at one moment: what the dashboard and metrics read.

    ``late`` counts the items behind the watermark (dead-lettered, included or raised),
    ``closed`` the windows emitted, ``open`` the windows still open over ``keys`` keys,
    ``evicted`` the windows closed early by ``max_keys`` (``on_max_keys="evict"``).
    """

    name: str
    shape: str
    items: int
    late: int
    closed: int
    open: int
    keys: int
    evicted: int
    watermark: float | None
    max_keys: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": self.shape,
            "items": self.items,
            "late": self.late,
            "closed": self.closed,
            "open": self.open,
            "keys": self.keys,
            "evicted": self.evicted,
            "watermark": self.watermark,
            "max_keys": self.max_keys,
        }


#: What a run's observables return: one frozen dataclass per kind of stage.
Snapshot = (
    MetricsSnapshot
    | BufferSnapshot
    | ConcurrencySnapshot
    | ResilientSnapshot
    | CallSnapshot
    | KeyedWindowSnapshot
)


class BufferObservable(Protocol):
    """What a monitor placed right after a ``buffer`` reads: the buffer's snapshot."""

    def snapshot(self) -> BufferSnapshot: ...


@runtime_checkable
class Observable(Protocol):
    """The one metrics protocol: anything a run registers answers ``snapshot()`` with a frozen
    dataclass (cheap, safe from any task, never blocking); readers - the dashboard, logs, your
    code - read only snapshots, never the live object's fields."""

    @property
    def name(self) -> str: ...

    def snapshot(self) -> Snapshot: ...


@dataclass(eq=False)
class Meter:
    """Counters of one monitored point, fed by its stage, read through :meth:`snapshot`.

    ``size`` maps an item to its size in bytes (your choice: ``len`` for bytes, a protobuf
    message's ``ByteSize``...). ``timestamp`` maps an item to the wall-clock time
    (``time.time()``) it was created, for end-to-end latency: the monitor applies it to every
    item (so a failing one fails on the same item at any speed) and the age of the latest
    item is sampled when counters are published. ``log_every`` (seconds) and/or ``log_every_items``
    emit a ``streamnb.metrics`` structlog event at that period while items flow (checked when
    counters are published, so an item-count period is honoured to within one publication
    step), and a ``streamnb.summary`` event when the stage ends.
    """

    name: str
    size: Callable[[Any], int] | None = None
    timestamp: Callable[[Any], float] | None = None
    total: int | None = None
    window: float = 5.0
    log_every: float | None = None
    log_every_items: int | None = None
    clock: Callable[[], float] = time.monotonic
    # published state
    items: int = 0
    bytes: int = 0
    errors: int = 0
    status: StageStatus = "idle"
    error: str | None = None
    first_t: float | None = None
    last_t: float | None = None
    dead_letter: DeadLetter[Any] | None = None
    #: the buffer right before this monitor, if any: its snapshot fills the buffer fields
    buffer: BufferObservable | None = None
    _samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=256))
    _latencies: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    _next_log: float = 0.0
    _next_log_items: int = 0

    # -- writer side (the stage) -------------------------------------------------------------
    def start(self) -> None:
        """Reset the counters: the stage starts (called once per run by the stage)."""
        self.items = self.bytes = self.errors = 0
        self.status = "running"
        self.error = None
        self.first_t = self.last_t = None
        self._samples.clear()
        self._latencies.clear()
        self._next_log_items = self.log_every_items or 0

    def publish(self, items: int, nbytes: int, stamp: float | None) -> None:
        """Take the stage's counts; ``stamp`` is ``timestamp(latest item)`` (the stage calls
        ``timestamp`` on every item, so a failing one fails on the same item at any speed),
        or None: the age of that item now is a latency sample."""
        now = self.clock()
        if self.first_t is None:
            if not items:
                return
            self.first_t = now
            if self.log_every is not None:
                self._next_log = now + self.log_every
        self.items = items
        self.bytes = nbytes
        self.last_t = now
        self._samples.append((now, items))
        if stamp is not None:
            self._latencies.append(time.time() - stamp)
        due = self.log_every is not None and now >= self._next_log
        if self.log_every_items is not None and items >= self._next_log_items:
            due = True
        if due:
            if self.log_every is not None:
                self._next_log = now + self.log_every
            if self.log_every_items is not None:
                step = self.log_every_items
                self._next_log_items = (items // step + 1) * step
            _log.info("streamnb.metrics", **self._log_fields())

    def finish(self, items: int, nbytes: int, exc: BaseException | None) -> None:
        """Publish the final counts and the way the stage ended."""
        if items != self.items or self.first_t is None:
            now = self.clock()
            if self.first_t is None and items:
                self.first_t = now
            self.items, self.bytes, self.last_t = items, nbytes, now
            self._samples.append((now, items))
        if exc is None or isinstance(exc, GeneratorExit):
            self.status = "done"  # GeneratorExit: the consumer stopped early, not a failure
        elif _is_cancel(exc):
            self.status = "cancelled"
        else:
            self.status = "failed"
            self.errors += 1
            self.error = f"{type(exc).__name__}: {exc}"
        if self.log_every is not None or self.log_every_items is not None:
            _log.info("streamnb.summary", **self._log_fields())

    # -- reader side ------------------------------------------------------------------------
    def snapshot(self) -> MetricsSnapshot:
        """A frozen copy of the counters with the rates derived from them."""
        now = self.clock()
        end = now if self.status == "running" else (self.last_t or now)
        elapsed = (end - self.first_t) if self.first_t is not None else 0.0
        rate = self.items / elapsed if elapsed > 0 else 0.0
        bytes_rate = self.bytes / elapsed if elapsed > 0 else 0.0
        window_rate = self._window_rate(end)
        lat = list(self._latencies)
        buf = self.buffer.snapshot() if self.buffer is not None else None
        dl_errors = self.dead_letter.count if self.dead_letter is not None else 0
        return MetricsSnapshot(
            name=self.name,
            status=self.status,
            items=self.items,
            errors=self.errors + dl_errors,
            dropped=buf.dropped if buf is not None else 0,
            bytes=self.bytes,
            elapsed=elapsed,
            rate=rate,
            window_rate=window_rate,
            bytes_rate=bytes_rate,
            latency=(sum(lat) / len(lat)) if lat else None,
            latency_max=max(lat) if lat else None,
            buffer_depth=buf.depth if buf is not None else None,
            buffer_capacity=buf.capacity if buf is not None else None,
            buffer_high_water=buf.high_water if buf is not None else None,
            total=self.total,
            error=self.error,
            taken_at=now,
            buffer_blocked_seconds=buf.blocked_seconds if buf is not None else None,
        )

    def _window_rate(self, end: float) -> float:
        samples = self._samples
        if not samples:
            return 0.0
        t_last, n_last = samples[-1]
        if self.status == "running":
            # a stall since the last publication must pull the rate down
            t_last = max(t_last, end)
        horizon = t_last - self.window
        t0, n0 = samples[0]
        for t, n in samples:
            if t >= horizon:
                break
            t0, n0 = t, n
        if t0 < horizon and len(samples) > 1:
            t0 = horizon
        dt = t_last - t0
        if dt <= 0:
            return 0.0
        return max(0.0, (n_last - n0) / dt)

    def _log_fields(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {
            "stage": snap.name,
            "status": snap.status,
            "items": snap.items,
            "errors": snap.errors,
            "dropped": snap.dropped,
            "bytes": snap.bytes,
            "rate": round(snap.rate, 1),
            "window_rate": round(snap.window_rate, 1),
            "elapsed": round(snap.elapsed, 3),
        }


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)


def snapshots(meters: Mapping[str, Meter]) -> dict[str, MetricsSnapshot]:
    """Snapshot every meter of a mapping (name -> snapshot)."""
    return {name: m.snapshot() for name, m in meters.items()}

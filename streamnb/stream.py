"""The fluent, lazy, typed :class:`Stream`.

A Stream is a *definition*: a source plus a chain of operators. Every operator returns a new
Stream and changes nothing, so two branches built from one definition never share state.
Nothing runs until you iterate. Each iteration builds fresh machinery (meters, buffers,
dead-letter sinks, windows) reachable from the :class:`Iteration` that ``open()`` returns, and
closes everything upstream on every exit path: exhaustion, ``break``, an exception, or
cancellation.

Example::

    from streamnb import Stream

    async def main() -> None:
        s = (
            Stream(range(1_000))
            .map(lambda x: x * 2)
            .filter(lambda x: x % 3 == 0)
            .monitor("evens")
            .batch(100)
        )
        async with s.open() as it:        # guaranteed cleanup, per-run metrics
            async for chunk in it:
                print(len(chunk))
            print(it.metrics()["evens"].items)   # 334
        print(await s.take(2).collect())  # [[0, 6, ...], [...]]: a new, independent run
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from concurrent.futures import Executor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack, cast, overload

from ._cancel import check_stray
from ._fuse import fuse
from ._iter import aclose, aiter_any
from ._runstate import ObservableKind, RunState
from ._validate import check_int
from .buffer import Overflow
from .errors import ArgumentTypeError, CollectLimitError, EmptyStreamError, StreamConsumedError
from .metrics import BufferSnapshot, ConcurrencySnapshot, Meter, MetricsSnapshot, Snapshot
from .operators import (
    Batch,
    Buffer,
    Enumerate,
    Filter,
    FlatMap,
    Fragment,
    Link,
    Map,
    Merge,
    Monitor,
    Operator,
    Sample,
    Scan,
    Skip,
    Take,
    TakeWhile,
    Tap,
    Throttle,
    Zip,
)
from .operators import Window as WindowOperator
from .operators.keyed import KeyedWindow
from .recovery import (
    CircuitBreaker,
    DeadLetter,
    ErrorPolicy,
    ResilientStats,
    RetryPolicy,
    resilient,
)

if TYPE_CHECKING:
    import pandas as pd

    from .keyed import WindowShape
    from .notebook.runner import Run, RunSummary
    from .window import Window

__all__ = ["Iteration", "RunOptions", "Stream"]

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")

Source = Iterable[T] | AsyncIterable[T] | Callable[[], Iterable[T] | AsyncIterable[T]]

#: Default cap of ``collect()``: beyond it, ``CollectLimitError`` (pass ``limit=None`` to lift).
DEFAULT_COLLECT_LIMIT = 10_000


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------


async def _open_factory(factory: Callable[[], Any]) -> AsyncGenerator[Any, None]:
    obj = factory()
    # the factory of a from_run source holds the run, whose roots hold this generator: keeping
    # it would make a cycle that the garbage collector finalises all at once after a bare
    # ``async for ... break``, closing the inner generators twice
    del factory
    try:
        it = aiter_any(obj)
    except TypeError:
        raise TypeError(
            f"Stream(factory): the factory returned {type(obj).__name__}, "
            "not an iterable or async iterable"
        ) from None
    try:
        async for x in it:
            yield x
    except asyncio.CancelledError as exc:
        check_stray(exc, "the source")
        raise
    finally:
        await aclose(it)


class _RunFactory:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[RunState], Any]) -> None:
        self.factory = factory


class _Source:
    """Resolves what ``Stream(source)`` was given into a fresh iterator per iteration."""

    __slots__ = ("_consumed", "_kind", "_obj")

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self._consumed = False
        if hasattr(obj, "__anext__"):
            self._kind = "async_once"
        elif isinstance(obj, _RunFactory):
            self._kind = "run_factory"
        elif hasattr(obj, "__aiter__"):
            self._kind = "async"
        elif hasattr(obj, "__next__"):
            self._kind = "sync_once"
        elif hasattr(obj, "__iter__") or hasattr(obj, "__getitem__"):
            self._kind = "sync"
        elif callable(obj):
            self._kind = "factory"
        else:
            raise TypeError(
                f"Stream(source): expected an iterable, an async iterable, or a zero-argument "
                f"function returning one; got {type(obj).__name__}"
            )

    @property
    def names_strays(self) -> bool:
        """Whether the iterator :meth:`open` returns names a stray ``CancelledError`` itself
        (a factory's is opened by :func:`_open_factory`, which does)."""
        return self._kind in ("factory", "run_factory")

    def open(self, run: RunState) -> tuple[Any, bool]:
        """(iterator, is_sync) for one iteration."""
        kind, obj = self._kind, self._obj
        if kind == "run_factory":
            return _open_factory(lambda: obj.factory(run)), False
        if kind.endswith("_once"):
            if self._consumed:
                raise StreamConsumedError(
                    f"this Stream reads a one-shot {type(obj).__name__} that was already "
                    "iterated; build it from a factory (Stream(lambda: make_source())) or a "
                    "re-iterable (a list, a range) to iterate it again"
                )
            self._consumed = True
        if kind == "factory":
            # opened on the first pull, so a run that never starts opens nothing
            return _open_factory(obj), False
        if kind.startswith("async"):
            return obj.__aiter__(), False
        return iter(obj), True


# --------------------------------------------------------------------------------------------
# per-run state
# --------------------------------------------------------------------------------------------
class Iteration(Generic[T]):
    """One run of a Stream: an async context manager that builds the run and closes it.

    ``async with stream.open() as it: async for x in it: ...`` - ``it`` is this object;
    iterating it iterates the run's generator directly (no per-item wrapper).

    Besides guaranteed cleanup it gives access to the run's live state: ``meters`` and
    ``metrics()`` (one entry per ``monitor``), ``buffers`` (per ``buffer``), ``dead_letters``
    (per stage with an error policy), ``windows`` (per ``window``) and ``stages`` (per concurrent
    ``map``: calls in flight). ``buffers``, ``stages`` and ``metrics()`` are frozen snapshots
    taken when read; ``snapshots()`` gives every observable of the run, resilient sources and
    gRPC calls included.
    """

    def __init__(self, stream: Stream[T]) -> None:
        self._stream = stream
        self._state = RunState()
        self._it: AsyncIterator[T] | None = None

    async def __aenter__(self) -> Iteration[T]:
        self._it = self._stream._build(self._state)
        return self

    def __aiter__(self) -> AsyncIterator[T]:
        # the built generator itself: ``async for`` pays nothing per item for this wrapper
        if self._it is None:
            raise RuntimeError("use 'async with stream.open() as it:' before iterating it")
        return self._it

    async def __anext__(self) -> T:
        return await self.__aiter__().__anext__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        it, self._it = self._it, None
        await aclose(it)
        # a generator that never started does not run its cleanup when closed: close the
        # sources themselves too (closing a finished generator is a no-op)
        for root in self._state.roots:
            await aclose(root)
            close = getattr(root, "close", None)
            if close is not None and not inspect.iscoroutinefunction(close):
                close()

    @property
    def meters(self) -> dict[str, Meter]:
        """The live meter of every ``monitor`` (read them with ``metrics()``)."""
        return cast(dict[str, Meter], self._state.observed("monitor"))

    @property
    def buffers(self) -> dict[str, BufferSnapshot]:
        """A snapshot of every ``buffer`` now (name -> frozen BufferSnapshot)."""
        return cast(dict[str, BufferSnapshot], self._state.snapshots("buffer"))

    @property
    def dead_letters(self) -> dict[str, DeadLetter[Any]]:
        return self._state.dead_letters

    @property
    def windows(self) -> dict[str, Window]:
        return self._state.windows

    @property
    def stages(self) -> dict[str, ConcurrencySnapshot]:
        """A snapshot of every concurrent ``map`` stage now (name -> ConcurrencySnapshot)."""
        return cast(dict[str, ConcurrencySnapshot], self._state.snapshots("concurrency"))

    @property
    def state(self) -> RunState:
        """The run's registry of observables, dead letters and windows."""
        return self._state

    def snapshots(self, kind: ObservableKind | None = None) -> dict[str, Snapshot]:
        """Frozen snapshots of what the run registered (see :meth:`RunState.snapshots`)."""
        return self._state.snapshots(kind)

    def metrics(self) -> dict[str, MetricsSnapshot]:
        """A snapshot per monitored stage (name -> frozen MetricsSnapshot)."""
        return cast(dict[str, MetricsSnapshot], self._state.snapshots("monitor"))


# --------------------------------------------------------------------------------------------
# Stream
# --------------------------------------------------------------------------------------------
class Stream(Generic[T]):
    """A lazy, re-usable definition of an asynchronous stream of ``T``.

    ``Stream(source)`` accepts a sync or async iterable, or a zero-argument function that
    returns one (called anew for every iteration). A one-shot source (a generator object, an
    open call) can be iterated once; a second iteration raises ``StreamConsumedError`` rather
    than silently yielding nothing.

    Iterate with ``async for`` (cleanup happens when the loop ends; after a ``break`` it is
    left to the event loop's async-generator finaliser) or, for deterministic cleanup and
    access to the run's metrics, ``async with stream.open() as it: async for x in it``.
    The terminals (``collect``, ``first``, ``count``, ``reduce``, ``for_each``) always clean up.
    """

    __slots__ = ("_op", "_parent", "_source")

    def __init__(self, source: Source[T]) -> None:
        if isinstance(source, Stream):
            self._source: _Source | None = None
            self._parent: Stream[Any] | None = source
            self._op: Operator | None = None
            return
        self._source = _Source(source)
        self._parent = None
        self._op = None

    def then(self, op: Operator) -> Stream[Any]:
        """This stream followed by ``op``: how every operator method below is written, and
        how you add your own (see :mod:`streamnb.operators.base` for the protocol).

        Example::

            Stream(items).then(Distinct())      # fused with the operators around it
        """
        if not isinstance(op, Operator):
            raise ArgumentTypeError(
                f"then(op={op!r}): expected a streamnb.operators.Operator, got {type(op).__name__}"
            )
        s: Stream[Any] = Stream.__new__(Stream)
        s._source = None
        s._parent = self
        s._op = op
        return s

    # -- building ---------------------------------------------------------------------------
    def _chain(self) -> tuple[_Source, list[Operator]]:
        ops: list[Operator] = []
        node: Stream[Any] | None = self
        while node is not None:
            if node._op is not None:
                ops.append(node._op)
            if node._source is not None:
                ops.reverse()
                return node._source, ops
            node = node._parent
        raise AssertionError("a Stream without a source")  # pragma: no cover

    def _build(self, run: RunState) -> AsyncIterator[T]:
        source, ops = self._chain()
        cur, is_sync = source.open(run)
        run.roots.append(cur)
        link = Link(run)
        frags: list[tuple[str, Fragment]] = []
        for op in ops:
            link = Link(run, prev=link)
            frag = op.fragment(link)
            if frag is not None:
                frags.append((op.label, frag))
                if frag.tail:  # what follows must not skip the tail: a new fused run
                    cur, is_sync, frags = fuse(frags, cur, is_sync), False, []
                continue
            if frags or is_sync:
                cur, is_sync, frags = fuse(frags, cur, is_sync), False, []
            cur = op.stage(cur, link)
        if frags or is_sync or not (ops or source.names_strays):
            # a bare async iterable still goes through the fused loop, which names a stray
            # CancelledError from it (a factory's generator names its own)
            cur = fuse(frags, cur, is_sync)
        return cast(AsyncIterator[T], cur)

    def open(self) -> Iteration[T]:
        """Start an iteration as an async context manager (cleanup on every exit path)."""
        return Iteration(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._build(RunState())

    def __repr__(self) -> str:
        _, ops = self._chain()
        return "Stream(" + " -> ".join(["source", *(op.label for op in ops)]) + ")"

    # -- transform --------------------------------------------------------------------------
    @overload
    def map(
        self,
        fn: Callable[[T], Awaitable[U]],
        *,
        concurrency: int | None = ...,
        ordered: bool = ...,
        executor: None = ...,
        on_error: ErrorPolicy = ...,
        dead_letter: DeadLetter[Any] | None = ...,
        retry: RetryPolicy | None = ...,
        breaker: CircuitBreaker | None = ...,
        name: str | None = ...,
    ) -> Stream[U]: ...
    @overload
    def map(
        self,
        fn: Callable[[T], U],
        *,
        concurrency: int | None = ...,
        ordered: bool = ...,
        executor: Executor | None = ...,
        on_error: ErrorPolicy = ...,
        dead_letter: DeadLetter[Any] | None = ...,
        retry: RetryPolicy | None = ...,
        breaker: CircuitBreaker | None = ...,
        name: str | None = ...,
    ) -> Stream[U]: ...
    def map(
        self,
        fn: Callable[[T], Any],
        *,
        concurrency: int | None = None,
        ordered: bool = True,
        executor: Executor | None = None,
        on_error: ErrorPolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        name: str | None = None,
    ) -> Stream[Any]:
        """Apply ``fn`` (plain or ``async def``) to every item.

        ``concurrency=N`` runs up to N calls at once (async functions, or plain ones with an
        ``executor``); results keep input order unless ``ordered=False``. ``executor`` is any
        ``concurrent.futures.Executor`` (threads, processes, ``dask_client.get_executor()``).
        Without ``concurrency`` the stage runs one call at a time - except on an executor
        that has a ``preferred_concurrency`` (a :class:`streamnb.dask.DaskExecutor`): then
        the stage's concurrency is that value and follows it through the run (it is
        ``2 x worker threads`` until the executor has timed the first calls, then
        ``calls per task x 2 x worker threads``, so that its tasks fill). An explicit
        ``concurrency`` always wins. E.g. ``map(score, executor=DaskExecutor(client))``.
        ``on_error``: ``"raise"`` (default; the exception gets a note naming this stage and
        the item index), ``"skip"`` (the item and its exception go to ``dead_letter``, a
        :class:`DeadLetter`, which is created per run if you pass none), or ``"retry"``
        (per ``retry``, a :class:`RetryPolicy`; then raise). ``breaker`` guards every call.
        """
        return self.then(
            Map(fn, concurrency, ordered, executor, on_error, dead_letter, retry, breaker, name)
        )

    def filter(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Keep the items for which ``predicate`` (plain or async) is true."""
        return self.then(Filter(predicate))

    def tap(self, fn: Callable[[T], Any]) -> Stream[T]:
        """Call ``fn`` (plain or async) on every item for its side effect; pass items on."""
        return self.then(Tap(fn))

    def flat_map(
        self, fn: Callable[[T], Iterable[U] | AsyncIterable[U] | Awaitable[Iterable[U]]]
    ) -> Stream[U]:
        """Replace each item by the items of the iterable (or async iterable) ``fn`` returns."""
        return self.then(FlatMap(fn))

    def enumerate(self, start: int = 0) -> Stream[tuple[int, T]]:
        """Pair every item with its index: ``(start, x0), (start + 1, x1), ...``."""
        return self.then(Enumerate(start))

    def scan(self, fn: Callable[[A, T], A], initial: A) -> Stream[A]:
        """Running fold: emits ``fn(acc, x)`` after every item (``initial`` is not emitted)."""
        return self.then(Scan(fn, initial))

    # -- select -----------------------------------------------------------------------------
    def take(self, n: int) -> Stream[T]:
        """The first ``n`` items. Pulls exactly ``n`` items upstream, then closes the source."""
        return self.then(Take(n))

    def skip(self, n: int) -> Stream[T]:
        """Drop the first ``n`` items."""
        return self.then(Skip(n))

    def take_while(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Items while ``predicate`` holds; the first failing item ends the stream (dropped)."""
        return self.then(TakeWhile(predicate))

    def sample(self, every: int) -> Stream[T]:
        """Every ``every``-th item: items 0, every, 2*every, ... (load shedding by sampling)."""
        return self.then(Sample(every))

    def throttle(self, rate: float) -> Stream[T]:
        """At most ``rate`` items per second (evenly spaced; the producer is slowed down)."""
        return self.then(Throttle(rate))

    # -- chunking, backpressure -------------------------------------------------------------
    def batch(self, size: int, within: float | None = None) -> Stream[list[T]]:
        """Lists of up to ``size`` items; with ``within``, a list is also emitted once
        ``within`` seconds passed since its first item. The last partial list is emitted."""
        return self.then(Batch(size, within))

    def buffer(
        self,
        size: int,
        overflow: Overflow = "block",
        *,
        put_timeout: float | None = None,
        name: str | None = None,
    ) -> Stream[T]:
        """Decouple producer and consumer with a bounded buffer filled by its own task.

        ``overflow`` when full: ``"block"`` (the producer waits: backpressure),
        ``"drop_oldest"``, ``"drop_newest"``, or ``"error"`` (raise ``BufferOverflowError``).
        ``put_timeout`` bounds a blocked producer's wait (``BufferTimeoutError``). Producer
        errors reach the consumer after the items accepted before them. Statistics:
        ``iteration.buffers[name]`` (capacity, depth, high_water, dropped, blocked_seconds).
        """
        return self.then(Buffer(size, overflow, put_timeout, name))

    # -- combine ----------------------------------------------------------------------------
    def merge(self, *others: Stream[Any], buffer: int = 64) -> Stream[Any]:
        """Interleave this stream and ``others`` as their items arrive (each runs in its own
        task; at most ``buffer`` items wait). The first failure stops the others and is raised
        after the items already received."""
        return self.then(Merge([_as_stream(o)._build for o in others], buffer))

    def zip(self, *others: Stream[Any]) -> Stream[tuple[Any, ...]]:
        """Tuples of one item from each stream, until the shortest ends."""
        return self.then(Zip([_as_stream(o)._build for o in others]))

    # -- observe ----------------------------------------------------------------------------
    def monitor(
        self,
        name: str,
        *,
        size: Callable[[T], int] | None = None,
        timestamp: Callable[[T], float] | None = None,
        total: int | None = None,
        log_every: float | None = None,
        log_every_items: int | None = None,
    ) -> Stream[T]:
        """Count what passes this point under ``name`` (see :class:`streamnb.Meter`).

        ``size`` gives an item's size in bytes, ``timestamp`` its creation time
        (``time.time()``) for latency, ``total`` the expected count (for an ETA);
        ``log_every`` seconds / ``log_every_items`` items emit ``streamnb.metrics`` log events
        (and ``streamnb.summary`` at the end).

        Placed right after a ``buffer`` it also reports the buffer's depth and drops; after a
        stage with an error policy, its dead-letter count as errors.
        """
        return self.then(Monitor(name, size, timestamp, total, log_every, log_every_items))

    def window(
        self, last: int | None = None, seconds: float | None = None, name: str = "window"
    ) -> Stream[T]:
        """Keep the most recent items (``last`` of them, or those of the last ``seconds``) in a
        bounded ring, readable any time as ``iteration.windows[name].to_pandas()``."""
        return self.then(WindowOperator(last, seconds, name))

    def keyed_window(
        self, shape: WindowShape, *, name: str | None = None, **options: Any
    ) -> Stream[dict[str, Any]]:
        """Rows of closed keyed event-time windows (:mod:`streamnb.keyed`): ``shape`` is
        ``tumbling(size)``, ``sliding(size, every)`` or ``session(gap)``; ``options`` are
        ``by=``, ``time=``, ``aggs=``, ``allowed_lateness=``, ``late=``, ``max_keys=``,
        ``on_max_keys=``, ``keep=`` (closed windows kept for ``to_pandas``), checked up front.
        Late items are counted and dead-lettered, never dropped silently; each run registers a
        ``"window"`` snapshot.

        Example::

            per_kind = Stream(events).keyed_window(
                tumbling(1.0), by="kind", time="ts", aggs={"n": "count"}, name="per-kind"
            )
        """
        return self.then(KeyedWindow(shape, name=name, **options))

    @classmethod
    def from_run(cls, factory: Callable[[RunState], Iterable[T] | AsyncIterable[T]]) -> Stream[T]:
        """A source that sees the run it feeds: ``factory(run)`` is called anew at the first
        pull of every iteration with that iteration's :class:`RunState`, so the source can
        register what it wants to show (``run.observe("call", stats)``) on the run itself -
        never on the definition.

        Example::

            def open_feed(run: RunState) -> AsyncIterator[Event]:
                counter = ReconnectCounter("feed")
                run.observe("resilient", counter)
                return feed(counter)

            stream = Stream.from_run(open_feed)
        """
        return cls(cast(Any, _RunFactory(factory)))

    # -- resilient source -------------------------------------------------------------------
    @classmethod
    def resilient(
        cls,
        factory: Callable[[Any], Iterable[T] | AsyncIterable[T]],
        *,
        checkpoint: Callable[[T], Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        name: str = "resilient",
    ) -> Stream[T]:
        """A source that survives failures and resumes *after* the last delivered item.

        ``factory(token)`` opens the source: ``token`` is None the first time; after a failure
        it is ``checkpoint(last_delivered_item)`` (default: the number of items delivered so
        far), so the new source continues exactly where the consumer is - nothing lost,
        nothing repeated. Only failures that ``retry.retry_on`` accepts are retried, with
        exponential backoff and jitter; the budget (``max_attempts`` consecutive failures)
        resets after progress. A ``breaker`` is consulted before every (re)connection.

        Each run registers a :class:`~streamnb.recovery.ResilientStats` under ``name``:
        ``it.snapshots("resilient")[name]`` counts delivered items, failures, reconnects.
        """
        policy = retry or RetryPolicy()

        def open_run(run: RunState) -> AsyncIterator[T]:
            stats = ResilientStats(name)
            run.observe("resilient", stats)
            return resilient(factory, checkpoint, policy, breaker, stats)

        return Stream.from_run(open_run)

    # -- terminals --------------------------------------------------------------------------
    async def collect(self, limit: int | None = DEFAULT_COLLECT_LIMIT) -> list[T]:
        """All items in a list - bounded: more than ``limit`` items raise CollectLimitError.

        Buffering a whole stream is the classic streaming anti-pattern, so the unbounded
        form must be asked for: ``collect(limit=None)``. To keep only the first N items, use
        ``take(N).collect()``.
        """
        if limit is not None:
            check_int("collect", "limit", limit)
        out: list[T] = []
        async with self.open() as it:
            if limit is None:
                async for x in it:
                    out.append(x)
                return out
            async for x in it:
                if len(out) >= limit:
                    raise CollectLimitError(
                        f"collect(limit={limit}): the stream has more than {limit} items. "
                        f"Use .take({limit}).collect() for the first {limit}, process items "
                        "as they come (async for, for_each), or collect(limit=None) if you "
                        "really want all of them in memory"
                    )
                out.append(x)
        return out

    async def first(self) -> T:
        """The first item (pulls exactly one); EmptyStreamError if there is none."""
        async with self.take(1).open() as it:
            async for x in it:
                return x
        raise EmptyStreamError("first(): the stream ended without any item")

    async def count(self) -> int:
        """Number of items (consumes the stream without keeping them)."""
        n = 0
        async with self.open() as it:
            async for _ in it:
                n += 1
        return n

    async def reduce(self, fn: Callable[[A, T], A], initial: A) -> A:
        """Fold the stream: ``fn(fn(initial, x0), x1) ...``."""
        acc = initial
        async with self.open() as it:
            async for x in it:
                acc = fn(acc, x)
        return acc

    async def for_each(
        self,
        fn: Callable[[T], Any],
        *,
        concurrency: int | None = None,
        executor: Executor | None = None,
        on_error: ErrorPolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Call ``fn`` on every item (up to ``concurrency`` at once); returns how many
        calls succeeded. ``concurrency`` (default as for :meth:`map`) and error policies as
        for :meth:`map`."""
        n = 0
        mapped = self.then(
            Map(fn, concurrency, False, executor, on_error, dead_letter, retry, method="for_each")
        )
        async with mapped.open() as it:
            async for _ in it:
                n += 1
        return n

    async def to_pandas(self, limit: int) -> pd.DataFrame:
        """The first ``limit`` items as a DataFrame (see :class:`streamnb.Window` for the
        columns); the stream is closed after them."""
        from .window import Window

        check_int("to_pandas", "limit", limit, minimum=1)
        w = Window(last=limit)
        async with self.take(limit).open() as it:
            async for x in it:
                w.append(x)
        return w.to_pandas()

    # -- running in a notebook (streamnb[notebook]) --------------------------------------------
    async def run(self, **options: Unpack[RunOptions]) -> RunSummary:
        """Run to the end with a live dashboard (text progress outside a notebook);
        ``streamnb.notebook.run(self, **options)`` (see :class:`RunOptions`)."""
        from .notebook.runner import run

        return await run(self, **options)

    def start(self, **options: Unpack[RunOptions]) -> Run:
        """Run in the background on the running loop; returns a :class:`Run` handle at once
        (``streamnb.notebook.start``; see :class:`RunOptions`)."""
        from .notebook.runner import start

        return start(self, **options)

    def run_sync(self, **options: Unpack[RunOptions]) -> RunSummary:
        """Run to the end from synchronous code (a script, or a notebook cell);
        ``streamnb.notebook.run_sync`` (see :class:`RunOptions`)."""
        from .notebook.runner import run_sync

        return run_sync(self, **options)


class RunOptions(TypedDict, total=False):
    """The keyword arguments of ``Stream.run`` / ``start`` / ``run_sync`` - those of
    :func:`streamnb.notebook.run`, written once.

    ``name`` identifies the run (a run going under that name is stopped first); ``total``
    (items) gives the progress bar an end; ``refresh`` is the dashboard's rate in Hz;
    ``display`` is True (widget in a notebook, text elsewhere), False, ``"widget"`` or
    ``"text"``; ``window`` names the window the dashboard shows (False: none).
    """

    name: str | None
    total: int | None
    refresh: float
    display: bool | str
    window: str | bool | None


def _as_stream(obj: Any) -> Stream[Any]:
    return obj if isinstance(obj, Stream) else Stream(obj)

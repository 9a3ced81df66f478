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
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from concurrent.futures import Executor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from ._concurrent import concurrent_map
from ._fuse import Fragment, fuse
from ._runstate import ObservableKind, RunState
from .buffer import BufferStats, Overflow, _Channel, _check_overflow
from .errors import CollectLimitError, EmptyStreamError, StreamConsumedError
from .metrics import Meter, MetricsSnapshot, Snapshot
from .recovery import (
    CircuitBreaker,
    DeadLetter,
    ErrorPolicy,
    RetryPolicy,
    _ItemPolicy,
    annotate,
    describe,
    resilient,
)

if TYPE_CHECKING:
    import pandas as pd

    from .notebook.runner import Run, RunSummary
    from .window import Window

__all__ = ["Iteration", "Stream"]

T = TypeVar("T")
U = TypeVar("U")
A = TypeVar("A")

Source = Iterable[T] | AsyncIterable[T] | Callable[[], Iterable[T] | AsyncIterable[T]]

#: Default cap of ``collect()``: beyond it, ``CollectLimitError`` (pass ``limit=None`` to lift).
DEFAULT_COLLECT_LIMIT = 10_000


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
def _is_async_fn(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


async def _from_sync(it: Iterator[T]) -> AsyncGenerator[T, None]:
    try:
        for x in it:
            yield x
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


async def _open_factory(factory: Callable[[], Any]) -> AsyncGenerator[Any, None]:
    obj = factory()
    try:
        it = _aiter_any(obj)
    except TypeError:
        raise TypeError(
            f"Stream(factory): the factory returned {type(obj).__name__}, "
            "not an iterable or async iterable"
        ) from None
    try:
        async for x in it:
            yield x
    finally:
        await _aclose(it)


def _aiter_any(obj: Any) -> AsyncIterator[Any]:
    """An async iterator over any sync or async iterable (a Stream included)."""
    if hasattr(obj, "__aiter__"):
        return cast(AsyncIterator[Any], obj.__aiter__())
    try:
        it = iter(obj)  # not hasattr(__iter__): sequences with only __getitem__ count too
    except TypeError:
        raise TypeError(
            f"expected an iterable or async iterable, got {type(obj).__name__}"
        ) from None
    return _from_sync(it)


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
class _Run(RunState):
    """The core's per-run tables on top of the shared :class:`RunState` registry."""

    def __init__(self) -> None:
        super().__init__()
        self.meters: dict[str, Meter] = {}
        self.buffers: dict[str, BufferStats] = {}
        self.stages: dict[str, dict[str, Any]] = {}


@dataclass
class _Link:
    """What the previous stage of a run offers to a monitor placed right after it."""

    buffer: BufferStats | None = None
    dead_letter: DeadLetter[Any] | None = None
    prev: _Link | None = None


class Iteration(Generic[T]):
    """One run of a Stream: an async context manager that builds the run and closes it.

    ``async with stream.open() as it: async for x in it: ...`` - ``it`` is this object;
    iterating it iterates the run's generator directly (no per-item wrapper).

    Besides guaranteed cleanup it gives access to the run's live state: ``meters`` and
    ``metrics()`` (one entry per ``monitor``), ``buffers`` (per ``buffer``), ``dead_letters``
    (per stage with an error policy), ``windows`` (per ``window``) and ``stages`` (extra live
    figures such as in-flight calls of a concurrent map).
    """

    def __init__(self, stream: Stream[T]) -> None:
        self._stream = stream
        self._state = _Run()
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
        await _aclose(it)
        # a generator that never started does not run its cleanup when closed: close the
        # sources themselves too (closing a finished generator is a no-op)
        for root in self._state.roots:
            await _aclose(root)
            close = getattr(root, "close", None)
            if close is not None and not inspect.iscoroutinefunction(close):
                close()

    @property
    def meters(self) -> dict[str, Meter]:
        return self._state.meters

    @property
    def buffers(self) -> dict[str, BufferStats]:
        return self._state.buffers

    @property
    def dead_letters(self) -> dict[str, DeadLetter[Any]]:
        return self._state.dead_letters

    @property
    def windows(self) -> dict[str, Window]:
        return self._state.windows

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        return self._state.stages

    @property
    def state(self) -> RunState:
        """The run's registry of observables, dead letters and windows."""
        return self._state

    def snapshots(self, kind: ObservableKind | None = None) -> dict[str, Snapshot]:
        """Frozen snapshots of what the run registered (see :meth:`RunState.snapshots`)."""
        return self._state.snapshots(kind)

    def metrics(self) -> dict[str, MetricsSnapshot]:
        """A snapshot per monitored stage (name -> frozen MetricsSnapshot)."""
        return {name: m.snapshot() for name, m in self._state.meters.items()}


# --------------------------------------------------------------------------------------------
# operators
# --------------------------------------------------------------------------------------------
class _Op:
    """An operator in a Stream definition; ``fragment`` for fusable ones, else ``build``."""

    fusable = False
    label = "op"

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:  # pragma: no cover
        raise TypeError(f"{self.label} is not fusable")

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        raise TypeError(f"{self.label} must be fused")  # pragma: no cover


class _MapOp(_Op):
    def __init__(
        self,
        fn: Callable[[Any], Any],
        concurrency: int,
        ordered: bool,
        executor: Executor | None,
        on_error: str,
        dead_letter: DeadLetter[Any] | None,
        retry: RetryPolicy | None,
        breaker: CircuitBreaker | None,
        name: str | None,
    ) -> None:
        self.label = name or f"map({describe(fn)})"
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"{self.label}: concurrency={concurrency!r} must be an int >= 1")
        self.is_async = _is_async_fn(fn)
        if self.is_async and executor is not None:
            raise ValueError(
                f"{self.label}: executor= runs plain functions; {describe(fn)} is async"
            )
        if concurrency > 1 and not self.is_async and executor is None:
            raise ValueError(
                f"{self.label}: concurrency={concurrency} needs executor= for a plain "
                "function (it cannot overlap with others on the event loop): threads, "
                "processes, a Dask client's executor - or make it async"
            )
        self.fn = fn
        self.concurrency = concurrency
        self.ordered = ordered
        self.executor = executor
        _ItemPolicy(self.label, on_error, None, retry)  # validate now, not at run time
        self.on_error = on_error
        self.dead_letter = dead_letter
        self.retry = retry
        self.breaker = breaker
        self.fusable = executor is None and concurrency == 1

    def _policy(self, run: _Run, link: _Link) -> _ItemPolicy:
        policy = _ItemPolicy(self.label, self.on_error, self.dead_letter, self.retry)
        if self.on_error != "raise":
            run.dead_letters[run.unique(run.dead_letters, self.label, "error-policy")] = (
                policy.dead_letter
            )
            link.dead_letter = policy.dead_letter
        return policy

    def _effective_fn(self) -> Callable[[Any], Any]:
        fn, breaker = self.fn, self.breaker
        if breaker is None:
            return fn
        if self.is_async:

            async def guarded_async(x: Any) -> Any:
                return await breaker.call(fn, x)

            return guarded_async
        return lambda x: breaker.call_sync(fn, x)

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:
        policy = self._policy(run, link)
        aw = "await " if self.is_async else ""
        params: dict[str, Any] = {f"f{j}": self._effective_fn()}
        if self.on_error == "raise":
            return Fragment(self.label, [f"x = {aw}f{j}(x)"], params)
        handler = policy.handle_async if self.is_async else policy.handle_sync
        params[f"h{j}"] = handler
        body = [
            f"c{j} += 1",
            "try:",
            f"    x = {aw}f{j}(x)",
            f"except Exception as _e{j}:",
            f"    x = await h{j}(f{j}, x, c{j} - 1, _e{j})",
            "    if x is _SKIP:",
            "        continue",
        ]
        return Fragment(
            self.label, body, params, init=[f"c{j} = 0"], one_to_one=False, counter=True
        )

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        policy = self._policy(run, link)
        stats: dict[str, Any] = {}
        if self.executor is not None:
            # the plain function travels to the executor; a breaker stays here, around the
            # awaited call, so its state is this process's and nothing extra is shipped
            executor, plain, breaker = self.executor, self.fn, self.breaker
            loop = asyncio.get_running_loop()
            stats["executor"] = executor

            def offload(x: Any) -> Awaitable[Any]:
                return loop.run_in_executor(executor, plain, x)

            afn: Callable[[Any], Awaitable[Any]] = offload
            if breaker is not None:

                async def guarded(x: Any) -> Any:
                    return await breaker.call(offload, x)

                afn = guarded
        else:
            afn = self._effective_fn()
        run.stages[self.label] = stats
        return concurrent_map(src, afn, self.concurrency, self.ordered, policy, stats)


class _SimpleOp(_Op):
    """A fusable operator described by a template of lines (``{j}`` is its suffix)."""

    fusable = True

    def __init__(
        self,
        label: str,
        body: list[str],
        params: dict[str, Any],
        init: list[str] | None = None,
        one_to_one: bool = True,
        user_code: bool = True,
    ) -> None:
        self.label = label
        self.body = body
        self.params = params
        self.init = init or []
        self.one_to_one = one_to_one
        self.user_code = user_code

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:
        return Fragment(
            self.label,
            [s.replace("{j}", str(j)) for s in self.body],
            {k.replace("{j}", str(j)): v for k, v in self.params.items()},
            init=[s.replace("{j}", str(j)) for s in self.init],
            one_to_one=self.one_to_one,
            user_code=self.user_code,
        )


class _MonitorOp(_Op):
    fusable = True

    def __init__(
        self,
        name: str,
        size: Callable[[Any], int] | None,
        timestamp: Callable[[Any], float] | None,
        total: int | None,
        log_every: float | None,
        log_every_items: int | None,
    ) -> None:
        self.label = f"monitor({name!r})"
        self.name = name
        self.size = size
        self.timestamp = timestamp
        self.total = total
        self.log_every = log_every
        self.log_every_items = log_every_items

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:
        m = Meter(
            run.unique(run.meters, self.name, "monitor"),
            size=self.size,
            timestamp=self.timestamp,
            total=self.total,
            log_every=self.log_every,
            log_every_items=self.log_every_items,
        )
        if link.prev is not None:
            m.buffer, m.dead_letter = link.prev.buffer, link.prev.dead_letter
        m._start()
        run.meters[self.name] = m
        params: dict[str, Any] = {f"m{j}": m}
        if self.size is not None:
            params[f"s{j}"] = self.size
        return Fragment(
            self.label,
            [],
            params,
            meter=m,
            user_code=False,
            sized=self.size is not None,
            stamped=self.timestamp is not None,
        )


class _WindowOp(_Op):
    fusable = True

    def __init__(self, last: int | None, seconds: float | None, name: str) -> None:
        from .window import Window

        self.label = f"window({name!r})"
        self.name = name
        self.last, self.seconds = last, seconds
        Window(last=last, seconds=seconds)  # validate the arguments now

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:
        from .window import Window

        w = Window(last=self.last, seconds=self.seconds, name=self.name)
        run.windows[run.unique(run.windows, self.name, "window")] = w
        return Fragment(self.label, [f"w{j}(x)"], {f"w{j}": w.append}, user_code=False)


class _BatchOp(_Op):
    def __init__(self, size: int, within: float | None) -> None:
        if size < 1:
            raise ValueError(f"batch(size={size}): must be >= 1")
        if within is not None and within <= 0:
            raise ValueError(f"batch(within={within}): must be > 0 seconds")
        self.size, self.within = size, within
        self.label = f"batch({size})"
        self.fusable = within is None

    def fragment(self, j: int, run: _Run, link: _Link) -> Fragment:
        return Fragment(
            self.label,
            [
                f"a{j}(x)",
                f"if len(c{j}) < N{j}:",
                "    continue",
                f"x = c{j}",
                f"c{j} = []",
                f"a{j} = c{j}.append",
            ],
            {f"N{j}": self.size},
            init=[f"c{j} = []", f"a{j} = c{j}.append"],
            tail=[f"if c{j}:", f"    yield c{j}"],
            one_to_one=False,
            ends_run=True,
            user_code=False,
        )

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        assert self.within is not None
        return _timed_batch(src, self.size, self.within)


async def _timed_batch(
    src: AsyncIterator[T], size: int, within: float
) -> AsyncGenerator[list[T], None]:
    chan: _Channel[T] = _Channel("batch", max(size, 16))
    chan.start([src])
    q = chan._q
    clock = time.monotonic
    chunk: list[T] = []
    deadline = 0.0
    try:
        while True:
            if q:
                chunk.append(chan._take())
                if len(chunk) == 1:
                    deadline = clock() + within
                if len(chunk) >= size or clock() >= deadline:
                    out, chunk = chunk, []
                    yield out
            elif chan.finished:
                if q:
                    continue
                if chunk:
                    out, chunk = chunk, []
                    yield out
                chan.raise_if_failed()
                return
            elif chunk:
                left = deadline - clock()
                if left <= 0 or not await chan.wait(left):
                    out, chunk = chunk, []
                    yield out
            else:
                await chan.wait()
    finally:
        await chan.aclose()


class _GenOp(_Op):
    """A non-fusable operator implemented by an async generator function."""

    def __init__(self, label: str, gen: Callable[[AsyncIterator[Any]], AsyncIterator[Any]]):
        self.label = label
        self.gen = gen

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        return self.gen(src)


class _BufferOp(_Op):
    def __init__(
        self, size: int, overflow: str, put_timeout: float | None, name: str | None
    ) -> None:
        _Channel(name or "buffer", size, overflow, put_timeout)  # validate now
        self.size, self.overflow, self.put_timeout = size, overflow, put_timeout
        self.name = name
        self.label = f"buffer({size}, {overflow})"

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        name = self.name or f"buffer{len(run.buffers) + 1}"
        chan: _Channel[Any] = _Channel(
            run.unique(run.buffers, name, "buffer"), self.size, self.overflow, self.put_timeout
        )
        run.buffers[name] = chan.stats
        link.buffer = chan.stats
        return chan.drain([src])


class _CombineOp(_Op):
    """merge / zip: the other streams are built into the same run."""

    def __init__(self, kind: str, others: tuple[Stream[Any], ...], capacity: int) -> None:
        self.kind, self.others, self.capacity = kind, others, capacity
        self.label = f"{kind}({len(others) + 1} streams)"

    def build(self, src: AsyncIterator[Any], run: _Run, link: _Link) -> AsyncIterator[Any]:
        srcs = [src] + [o._build(run) for o in self.others]
        if self.kind == "zip":
            return _zip(srcs)
        chan: _Channel[Any] = _Channel("merge", self.capacity)
        return chan.drain(srcs)


async def _zip(srcs: list[AsyncIterator[Any]]) -> AsyncGenerator[tuple[Any, ...], None]:
    try:
        while True:
            row = []
            for s in srcs:
                try:
                    row.append(await s.__anext__())
                except StopAsyncIteration:
                    return
            yield tuple(row)
    finally:
        for s in srcs:
            aclose = getattr(s, "aclose", None)
            if aclose is not None:
                await aclose()


async def _take(src: AsyncIterator[T], n: int) -> AsyncGenerator[T, None]:
    try:
        if n <= 0:
            return
        i = 0
        async for x in src:
            i += 1
            if i >= n:
                # close the source before handing out the last item: exactly n pulls
                aclose = getattr(src, "aclose", None)
                if aclose is not None:
                    await aclose()
                yield x
                return
            yield x
    finally:
        aclose = getattr(src, "aclose", None)
        if aclose is not None:
            await aclose()


async def _flat_map(
    src: AsyncIterator[Any], fn: Callable[[Any], Any], is_async: bool, label: str
) -> AsyncGenerator[Any, None]:
    index = -1
    try:
        async for x in src:
            index += 1
            try:
                inner = await fn(x) if is_async else fn(x)
                it = _aiter_any(inner)
            except Exception as exc:
                annotate(exc, label, index, x)
                raise
            try:
                async for y in it:
                    yield y
            finally:
                aclose = getattr(it, "aclose", None)
                if aclose is not None:
                    await aclose()
    finally:
        await _aclose(src)


async def _throttle(src: AsyncIterator[T], rate: float) -> AsyncGenerator[T, None]:
    interval = 1.0 / rate
    clock = time.monotonic
    next_t = clock()
    try:
        async for x in src:
            now = clock()
            if now < next_t:
                await asyncio.sleep(next_t - now)
                now = next_t
            next_t = max(next_t, now) + interval
            yield x
    finally:
        await _aclose(src)


async def _aclose(it: Any) -> None:
    aclose = getattr(it, "aclose", None)
    if aclose is not None:
        await aclose()


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
            self._op: _Op | None = None
            return
        self._source = _Source(source)
        self._parent = None
        self._op = None

    def _then(self, op: _Op) -> Stream[Any]:
        s: Stream[Any] = Stream.__new__(Stream)
        s._source = None
        s._parent = self
        s._op = op
        return s

    # -- building ---------------------------------------------------------------------------
    def _chain(self) -> tuple[_Source, list[_Op]]:
        ops: list[_Op] = []
        node: Stream[Any] | None = self
        while node is not None:
            if node._op is not None:
                ops.append(node._op)
            if node._source is not None:
                ops.reverse()
                return node._source, ops
            node = node._parent
        raise AssertionError("a Stream without a source")  # pragma: no cover

    def _build(self, run: _Run) -> AsyncIterator[T]:
        source, ops = self._chain()
        cur, is_sync = source.open(run)
        run.roots.append(cur)
        link = _Link()
        frags: list[Fragment] = []
        for op in ops:
            link = _Link(prev=link)
            if op.fusable:
                frag = op.fragment(len(frags), run, link)
                frags.append(frag)
                if frag.ends_run:
                    cur, is_sync, frags = fuse(frags, cur, is_sync), False, []
                continue
            if frags or is_sync:
                cur, is_sync, frags = fuse(frags, cur, is_sync), False, []
            cur = op.build(cur, run, link)
        if frags or is_sync:
            cur = fuse(frags, cur, is_sync)
        return cast(AsyncIterator[T], cur)

    def open(self) -> Iteration[T]:
        """Start an iteration as an async context manager (cleanup on every exit path)."""
        return Iteration(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._build(_Run())

    def __repr__(self) -> str:
        _, ops = self._chain()
        return "Stream(" + " -> ".join(["source", *(op.label for op in ops)]) + ")"

    # -- transform --------------------------------------------------------------------------
    @overload
    def map(
        self,
        fn: Callable[[T], Awaitable[U]],
        *,
        concurrency: int = ...,
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
        concurrency: int = ...,
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
        concurrency: int = 1,
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
        ``on_error``: ``"raise"`` (default; the exception gets a note naming this stage and
        the item index), ``"skip"`` (the item and its exception go to ``dead_letter``, a
        :class:`DeadLetter`, which is created per run if you pass none), or ``"retry"``
        (per ``retry``, a :class:`RetryPolicy`; then raise). ``breaker`` guards every call.
        """
        return self._then(
            _MapOp(fn, concurrency, ordered, executor, on_error, dead_letter, retry, breaker, name)
        )

    def filter(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Keep the items for which ``predicate`` (plain or async) is true."""
        aw = "await " if _is_async_fn(predicate) else ""
        return self._then(
            _SimpleOp(
                f"filter({describe(predicate)})",
                [f"if not {aw}p{{j}}(x):", "    continue"],
                {"p{j}": predicate},
                one_to_one=False,
            )
        )

    def tap(self, fn: Callable[[T], Any]) -> Stream[T]:
        """Call ``fn`` (plain or async) on every item for its side effect; pass items on."""
        aw = "await " if _is_async_fn(fn) else ""
        return self._then(_SimpleOp(f"tap({describe(fn)})", [f"{aw}t{{j}}(x)"], {"t{j}": fn}))

    def flat_map(
        self, fn: Callable[[T], Iterable[U] | AsyncIterable[U] | Awaitable[Iterable[U]]]
    ) -> Stream[U]:
        """Replace each item by the items of the iterable (or async iterable) ``fn`` returns."""
        label = f"flat_map({describe(fn)})"
        is_async = _is_async_fn(fn)
        return self._then(_GenOp(label, lambda src: _flat_map(src, fn, is_async, label)))

    def enumerate(self, start: int = 0) -> Stream[tuple[int, T]]:
        """Pair every item with its index: ``(start, x0), (start + 1, x1), ...``."""
        return self._then(
            _SimpleOp(
                "enumerate",
                ["x = (e{j}, x)", "e{j} += 1"],
                {"e0{j}": start},
                init=["e{j} = e0{j}"],
                user_code=False,
            )
        )

    def scan(self, fn: Callable[[A, T], A], initial: A) -> Stream[A]:
        """Running fold: emits ``fn(acc, x)`` after every item (``initial`` is not emitted)."""
        return self._then(
            _SimpleOp(
                f"scan({describe(fn)})",
                ["a{j} = f{j}(a{j}, x)", "x = a{j}"],
                {"f{j}": fn, "a0{j}": initial},
                init=["a{j} = a0{j}"],
            )
        )

    # -- select -----------------------------------------------------------------------------
    def take(self, n: int) -> Stream[T]:
        """The first ``n`` items. Pulls exactly ``n`` items upstream, then closes the source."""
        _check_count("take", "n", n)
        return self._then(_GenOp(f"take({n})", lambda src: _take(src, n)))

    def skip(self, n: int) -> Stream[T]:
        """Drop the first ``n`` items."""
        _check_count("skip", "n", n)
        return self._then(
            _SimpleOp(
                f"skip({n})",
                ["if s{j}:", "    s{j} -= 1", "    continue"],
                {"s0{j}": n},
                init=["s{j} = s0{j}"],
                one_to_one=False,
            )
        )

    def take_while(self, predicate: Callable[[T], Any]) -> Stream[T]:
        """Items while ``predicate`` holds; the first failing item ends the stream (dropped)."""
        aw = "await " if _is_async_fn(predicate) else ""
        return self._then(
            _SimpleOp(
                f"take_while({describe(predicate)})",
                # break, not return: a batch fused after it still emits its partial chunk
                [f"if not {aw}p{{j}}(x):", "    break"],
                {"p{j}": predicate},
                one_to_one=False,
            )
        )

    def sample(self, every: int) -> Stream[T]:
        """Every ``every``-th item: items 0, every, 2*every, ... (load shedding by sampling)."""
        _check_count("sample", "every", every, minimum=1)
        return self._then(
            _SimpleOp(
                f"sample(every={every})",
                ["if s{j}:", "    s{j} -= 1", "    continue", "s{j} = K{j}"],
                {"K{j}": every - 1},
                init=["s{j} = 0"],
                one_to_one=False,
            )
        )

    def throttle(self, rate: float) -> Stream[T]:
        """At most ``rate`` items per second (evenly spaced; the producer is slowed down)."""
        if rate <= 0:
            raise ValueError(f"throttle(rate={rate}): must be > 0 items per second")
        return self._then(_GenOp(f"throttle({rate}/s)", lambda src: _throttle(src, rate)))

    # -- chunking, backpressure -------------------------------------------------------------
    def batch(self, size: int, within: float | None = None) -> Stream[list[T]]:
        """Lists of up to ``size`` items; with ``within``, a list is also emitted once
        ``within`` seconds passed since its first item. The last partial list is emitted."""
        return self._then(_BatchOp(size, within))

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
        _check_overflow(overflow)
        return self._then(_BufferOp(size, overflow, put_timeout, name))

    # -- combine ----------------------------------------------------------------------------
    def merge(self, *others: Stream[Any], buffer: int = 64) -> Stream[Any]:
        """Interleave this stream and ``others`` as their items arrive (each runs in its own
        task; at most ``buffer`` items wait). The first failure stops the others and is raised
        after the items already received."""
        _check_count("merge", "buffer", buffer, minimum=1)
        return self._then(_CombineOp("merge", tuple(_as_stream(o) for o in others), buffer))

    def zip(self, *others: Stream[Any]) -> Stream[tuple[Any, ...]]:
        """Tuples of one item from each stream, until the shortest ends."""
        return self._then(_CombineOp("zip", tuple(_as_stream(o) for o in others), 0))

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
        return self._then(_MonitorOp(name, size, timestamp, total, log_every, log_every_items))

    def window(
        self, last: int | None = None, seconds: float | None = None, name: str = "window"
    ) -> Stream[T]:
        """Keep the most recent items (``last`` of them, or those of the last ``seconds``) in a
        bounded ring, readable any time as ``iteration.windows[name].to_pandas()``."""
        return self._then(_WindowOp(last, seconds, name))

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
    ) -> Stream[T]:
        """A source that survives failures and resumes *after* the last delivered item.

        ``factory(token)`` opens the source: ``token`` is None the first time; after a failure
        it is ``checkpoint(last_delivered_item)`` (default: the number of items delivered so
        far), so the new source continues exactly where the consumer is - nothing lost,
        nothing repeated. Only failures that ``retry.retry_on`` accepts are retried, with
        exponential backoff and jitter; the budget (``max_attempts`` consecutive failures)
        resets after progress. A ``breaker`` is consulted before every (re)connection.
        """
        policy = retry or RetryPolicy()
        return Stream(lambda: resilient(factory, checkpoint, policy, breaker, {}))

    # -- terminals --------------------------------------------------------------------------
    async def collect(self, limit: int | None = DEFAULT_COLLECT_LIMIT) -> list[T]:
        """All items in a list - bounded: more than ``limit`` items raise CollectLimitError.

        Buffering a whole stream is the classic streaming anti-pattern, so the unbounded
        form must be asked for: ``collect(limit=None)``. To keep only the first N items, use
        ``take(N).collect()``.
        """
        if limit is not None:
            _check_count("collect", "limit", limit)
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
        concurrency: int = 1,
        executor: Executor | None = None,
        on_error: ErrorPolicy = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        retry: RetryPolicy | None = None,
    ) -> int:
        """Call ``fn`` on every item (up to ``concurrency`` at once); returns how many
        calls succeeded. Error policies as for :meth:`map`."""
        n = 0
        mapped = self.map(
            fn,
            concurrency=concurrency,
            ordered=False,
            executor=executor,
            on_error=on_error,
            dead_letter=dead_letter,
            retry=retry,
            name=f"for_each({describe(fn)})",
        )
        async with mapped.open() as it:
            async for _ in it:
                n += 1
        return n

    async def to_pandas(self, limit: int) -> pd.DataFrame:
        """The first ``limit`` items as a DataFrame (see :class:`streamnb.Window` for the
        columns); the stream is closed after them."""
        from .window import Window

        _check_count("to_pandas", "limit", limit, minimum=1)
        w = Window(last=limit)
        async with self.take(limit).open() as it:
            async for x in it:
                w.append(x)
        return w.to_pandas()

    # -- running in a notebook (streamnb[notebook]) --------------------------------------------
    async def run(self, **kwargs: Any) -> RunSummary:
        """Run to the end with a live dashboard (text progress outside a notebook)."""
        from .notebook.runner import run

        return await run(self, **kwargs)

    def start(self, **kwargs: Any) -> Run:
        """Run in the background on the running loop; returns a :class:`Run` handle at once."""
        from .notebook.runner import start

        return start(self, **kwargs)

    def run_sync(self, **kwargs: Any) -> RunSummary:
        """Run to the end from synchronous code (a script, or a notebook cell)."""
        from .notebook.runner import run_sync

        return run_sync(self, **kwargs)


def _check_count(method: str, arg: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{method}({arg}={value!r}): expected an int")
    if value < minimum:
        raise ValueError(f"{method}({arg}={value}): must be >= {minimum}")


def _as_stream(obj: Any) -> Stream[Any]:
    return obj if isinstance(obj, Stream) else Stream(obj)

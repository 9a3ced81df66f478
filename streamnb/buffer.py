"""Bounded hand-off between a producer task and a consumer: the engine of ``buffer``, ``merge``
and time-bounded ``batch``.

Items sit in a ``deque`` and the two sides only park (on a future) when it is full or empty, so
a busy pipeline pays no event-loop round trip per item. The end of the stream is a flag, never
an item in the queue, so ``None`` is ordinary data. A producer's exception is kept and raised in
the consumer after the items accepted before it, with its original traceback. Closing the
consumer cancels the producers and waits for them: a full buffer can never hang the shutdown.

Example::

    s = Stream(fast_source()).buffer(100, overflow="drop_oldest", name="ingest")
    async with s.open() as it:
        async for item in it:
            ...
        print(it.buffers["ingest"].dropped)
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import suppress
from typing import Any, Generic, Literal, TypeVar

from .errors import BufferOverflowError, BufferTimeoutError

__all__ = ["BufferStats", "Overflow"]

T = TypeVar("T")

Overflow = Literal["block", "drop_oldest", "drop_newest", "error"]
_OVERFLOWS: tuple[str, ...] = ("block", "drop_oldest", "drop_newest", "error")


class BufferStats:
    """Live statistics of one buffer: always readable, also while the stream runs.

    ``depth`` is read from the queue itself; ``blocked_seconds`` is the time the producer spent
    waiting for room (``block`` policy) - a direct measure of backpressure.
    """

    __slots__ = ("_q", "blocked_seconds", "capacity", "dropped", "high_water", "name", "overflow")

    def __init__(self, name: str, capacity: int, overflow: str, q: deque[Any]) -> None:
        self.name = name
        self.capacity = capacity
        self.overflow = overflow
        self.high_water = 0
        self.dropped = 0
        self.blocked_seconds = 0.0
        self._q = q

    @property
    def depth(self) -> int:
        """Items waiting in the buffer right now."""
        return len(self._q)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "capacity": self.capacity,
            "depth": self.depth,
            "high_water": self.high_water,
            "dropped": self.dropped,
            "blocked_seconds": self.blocked_seconds,
            "overflow": self.overflow,
        }

    def __repr__(self) -> str:
        return (
            f"BufferStats({self.name!r}, depth={self.depth}/{self.capacity}, "
            f"high_water={self.high_water}, dropped={self.dropped}, "
            f"blocked_seconds={self.blocked_seconds:.3f})"
        )


def _check_overflow(overflow: str) -> None:
    if overflow not in _OVERFLOWS:
        raise ValueError(f"buffer(overflow={overflow!r}): expected one of {', '.join(_OVERFLOWS)}")


class _Channel(Generic[T]):
    """A bounded deque shared by producer tasks and one consumer (see module docstring)."""

    def __init__(
        self,
        name: str,
        capacity: int,
        overflow: str = "block",
        put_timeout: float | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"buffer size must be >= 1, got {capacity}")
        _check_overflow(overflow)
        if put_timeout is not None and put_timeout <= 0:
            raise ValueError(f"put_timeout must be > 0 seconds, got {put_timeout}")
        self._q: deque[T] = deque()
        self.stats = BufferStats(name, capacity, overflow, self._q)
        self._put_timeout = put_timeout
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self._open_producers = 0
        self._waiting = 0  # producers parked in _make_room
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- producer side ----------------------------------------------------------------------
    def start(self, sources: Sequence[AsyncIterator[T]]) -> None:
        loop = asyncio.get_running_loop()
        self._open_producers = len(sources)
        for src in sources:
            self._tasks.append(loop.create_task(self._pump(src)))

    def _wake_getter(self) -> None:
        g = self._getter
        if g is not None:
            self._getter = None
            if not g.done():
                g.set_result(None)

    async def _make_room(self) -> bool:
        """Called when the queue is full; True when the incoming item may be appended."""
        stats = self.stats
        overflow = stats.overflow
        q = self._q
        if overflow == "drop_oldest":
            q.popleft()
            stats.dropped += 1
            return True
        if overflow == "drop_newest":
            stats.dropped += 1
            return False
        if overflow == "error":
            raise BufferOverflowError(
                f"buffer {stats.name!r} is full ({stats.capacity} items) and its overflow "
                "policy is 'error': the consumer is slower than the producer. Use "
                "overflow='block' for backpressure or a drop policy to shed load."
            )
        # block: wait in line. A producer that arrives while others wait parks behind them
        # even if there is room, and a woken producer keeps its place at the head, so
        # several producers (a merge) share the buffer fairly instead of the fastest one
        # refilling every slot the consumer frees.
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        self._waiting += 1
        first = True
        try:
            while first or len(q) >= stats.capacity:
                fut = loop.create_future()
                if first:
                    self._putters.append(fut)
                else:
                    self._putters.appendleft(fut)
                first = False
                if self._put_timeout is None:
                    await fut
                else:
                    try:
                        async with asyncio.timeout(self._put_timeout):
                            await fut
                    except TimeoutError:
                        raise BufferTimeoutError(
                            f"buffer {stats.name!r} stayed full for {self._put_timeout} s "
                            "(put_timeout): the consumer stopped taking items."
                        ) from None
        finally:
            self._waiting -= 1
            stats.blocked_seconds += time.monotonic() - t0
        return True

    async def _pump(self, src: AsyncIterator[T]) -> None:
        q = self._q
        stats = self.stats
        cap = stats.capacity
        try:
            async for item in src:
                if (len(q) >= cap or self._waiting) and not await self._make_room():
                    continue
                q.append(item)
                n = len(q)
                if n > stats.high_water:
                    stats.high_water = n
                if self._getter is not None:
                    self._wake_getter()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._error is None:
                self._error = exc
            for t in self._tasks:  # the first failure stops the other producers
                if t is not asyncio.current_task():
                    t.cancel()
        finally:
            self._open_producers -= 1
            with suppress(Exception):
                aclose = getattr(src, "aclose", None)
                if aclose is not None:
                    await aclose()
            self._wake_getter()

    # -- consumer side ----------------------------------------------------------------------
    def _take(self) -> T:
        item = self._q.popleft()
        putters = self._putters
        while putters:
            p = putters.popleft()
            if not p.done():
                p.set_result(None)
                break
        return item

    @property
    def finished(self) -> bool:
        return self._open_producers <= 0 or self._error is not None

    async def wait(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Park until an item or the end arrives; False when ``timeout`` passed first."""
        fut = asyncio.get_running_loop().create_future()
        self._getter = fut
        if timeout is None:
            await fut
            return True
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            self._getter = None
            return False
        return True

    def raise_if_failed(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    async def drain(self, sources: Sequence[AsyncIterator[T]]) -> AsyncGenerator[T, None]:
        """Start a producer task per source; yield items until every producer ended, then
        raise a producer's error, if any."""
        q = self._q
        self.start(sources)
        try:
            while True:
                if q:
                    yield self._take()
                elif self.finished:
                    if q:
                        continue
                    self.raise_if_failed()
                    return
                else:
                    await self.wait()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()

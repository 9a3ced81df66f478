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
        print(it.buffers["ingest"].dropped)   # a frozen BufferSnapshot
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import suppress
from typing import Any, Generic, Literal, TypeVar

from ._cancel import cancel_and_wait, is_stray, stray_error
from ._iter import aclose
from ._validate import check_choice, check_int, check_seconds
from ._wake import wake, wake_first
from .errors import BufferOverflowError, BufferTimeoutError
from .metrics import BufferSnapshot

__all__ = ["OVERFLOWS", "Channel", "Overflow", "check_overflow"]

T = TypeVar("T")

Overflow = Literal["block", "drop_oldest", "drop_newest", "error"]
#: The overflow policies of a buffer, for validation.
OVERFLOWS: tuple[str, ...] = ("block", "drop_oldest", "drop_newest", "error")


def check_overflow(method: str, overflow: Any) -> str:
    """``overflow`` if it is one of :data:`OVERFLOWS`, else ``InvalidArgumentError``."""
    return check_choice(method, "overflow", overflow, OVERFLOWS)


class Channel(Generic[T]):
    """A bounded deque shared by producer tasks and one consumer (see module docstring).

    It is also the buffer's observable: ``snapshot()`` gives a frozen
    :class:`~streamnb.metrics.BufferSnapshot` (depth now, high-water, drops, time the
    producers spent blocked). ``method`` names the operator for argument errors.

    Example::

        chan: Channel[int] = Channel("ingest", 100, "drop_oldest")
        async for item in chan.drain([source]):
            ...
        chan.snapshot().dropped
    """

    def __init__(
        self,
        name: str,
        capacity: int,
        overflow: str = "block",
        put_timeout: float | None = None,
        *,
        method: str = "buffer",
    ) -> None:
        check_int(method, "size", capacity, minimum=1)
        check_overflow(method, overflow)
        if put_timeout is not None:
            check_seconds(method, "put_timeout", put_timeout)
        self.name = name
        self.capacity = capacity
        self.overflow = overflow
        self.high_water = 0
        self.dropped = 0
        self.blocked_seconds = 0.0
        self._q: deque[T] = deque()
        self._put_timeout = put_timeout
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        self._open_producers = 0
        self._waiting = 0  # producers parked in _make_room
        self._error: BaseException | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- observable -------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Items waiting in the buffer right now."""
        return len(self._q)

    def __len__(self) -> int:
        return len(self._q)

    def snapshot(self) -> BufferSnapshot:
        """A frozen copy of the buffer's figures (safe from any task, never blocks)."""
        return BufferSnapshot(
            name=self.name,
            capacity=self.capacity,
            depth=len(self._q),
            high_water=self.high_water,
            dropped=self.dropped,
            blocked_seconds=self.blocked_seconds,
            overflow=self.overflow,
            taken_at=time.monotonic(),
        )

    def __repr__(self) -> str:
        return (
            f"Channel({self.name!r}, depth={len(self._q)}/{self.capacity}, "
            f"high_water={self.high_water}, dropped={self.dropped})"
        )

    # -- producer side ----------------------------------------------------------------------
    def start(self, sources: Sequence[AsyncIterator[T]]) -> None:
        """Start one producer task per source."""
        loop = asyncio.get_running_loop()
        self._open_producers = len(sources)
        for src in sources:
            self._tasks.append(loop.create_task(self._pump(src)))

    def _wake_getter(self) -> None:
        g, self._getter = self._getter, None
        wake(g)

    async def _make_room(self) -> bool:
        """Called when the queue is full; True when the incoming item may be appended."""
        overflow = self.overflow
        q = self._q
        if overflow == "drop_oldest":
            q.popleft()
            self.dropped += 1
            return True
        if overflow == "drop_newest":
            self.dropped += 1
            return False
        if overflow == "error":
            raise BufferOverflowError(
                f"buffer {self.name!r} is full ({self.capacity} items) and its overflow "
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
            while first or len(q) >= self.capacity:
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
                            f"buffer {self.name!r} stayed full for {self._put_timeout} s "
                            "(put_timeout): the consumer stopped taking items."
                        ) from None
        finally:
            self._waiting -= 1
            self.blocked_seconds += time.monotonic() - t0
        return True

    async def _pump(self, src: AsyncIterator[T]) -> None:
        q = self._q
        cap = self.capacity
        try:
            async for item in src:
                if (len(q) >= cap or self._waiting) and not await self._make_room():
                    continue
                q.append(item)
                n = len(q)
                if n > self.high_water:
                    self.high_water = n
                if self._getter is not None:
                    self._wake_getter()
        except Exception as exc:
            self._fail(exc)
        except asyncio.CancelledError as exc:
            if not is_stray(exc):
                raise
            # the source awaited something another task cancelled: not the end of it
            err = stray_error(f"the source of {self.name!r}", exc)
            err.__cause__ = exc
            self._fail(err)
        finally:
            self._open_producers -= 1
            with suppress(Exception):
                await aclose(src)
            self._wake_getter()

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for t in self._tasks:  # the first failure stops the other producers
            if t is not asyncio.current_task():
                t.cancel()

    # -- consumer side ----------------------------------------------------------------------
    def take(self) -> T:
        """The oldest item (the buffer must not be empty); lets one parked producer on."""
        item = self._q.popleft()
        if self._putters:
            wake_first(self._putters)
        return item

    @property
    def finished(self) -> bool:
        """True once every producer ended (or one failed)."""
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
        """Raise the first producer's error, if any (once)."""
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
                    yield self.take()
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
        """Cancel the producers and wait until they have ended - also when this task is
        cancelled again meanwhile (see :func:`streamnb._cancel.cancel_and_wait`)."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks)

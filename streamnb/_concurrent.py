"""``map(fn, concurrency=N)``: N worker tasks share the upstream iterator.

A task per item would cost an event-loop round trip per item before ``fn`` even runs; N
long-lived workers pull the next item themselves, so the loop only switches where ``fn``
really waits. Ordered mode hands results back in input order and keeps at most ``2 * N``
finished-but-unconsumed results (the workers park beyond that), so memory stays bounded when
one slow item holds up the head (unordered mode has the same bound on results waiting for
the consumer). At most N calls are ever in flight; that is how the stage's
concurrency bounds an executor or a cluster.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from .recovery import SKIP, _ItemPolicy

_FAILED = object()


class _Pool:
    def __init__(
        self,
        src: AsyncIterator[Any],
        fn: Callable[[Any], Awaitable[Any]],
        n: int,
        ordered: bool,
        policy: _ItemPolicy,
    ) -> None:
        self.src = src
        self.fn = fn
        self.n = n
        self.ordered = ordered
        self.policy = policy
        # Only one worker may pull from the upstream generator at a time. Not asyncio.Lock:
        # its fairness (a newcomer queues behind a woken waiter) turns a single moment of
        # contention - the upstream pausing once - into a convoy that costs an event-loop
        # round trip per item from then on. Here a free puller is taken at once and a woken
        # waiter that finds it taken again simply waits again.
        self.pulling = False
        self.pull_waiters: deque[asyncio.Future[None]] = deque()
        self.next_in = 0  # index of the next item pulled from upstream
        self.next_out = 0  # ordered: index of the next result to yield
        self.results: dict[int, Any] = {}
        self.fifo: deque[Any] = deque()
        self.exhausted = False
        self.error: tuple[int, BaseException, Any] | None = None
        self.active = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.getter: asyncio.Future[None] | None = None
        self.room: asyncio.Future[None] | None = None
        self.limit = 2 * n

    def wake(self) -> None:
        g = self.getter
        if g is not None:
            self.getter = None
            if not g.done():
                g.set_result(None)

    def pending(self) -> int:
        return len(self.results) if self.ordered else len(self.fifo)

    async def worker(self) -> None:
        try:
            while self.error is None:
                while self.next_in - self.next_out >= self.limit:
                    if self.room is None:
                        self.room = asyncio.get_running_loop().create_future()
                    await self.room
                while self.pulling:
                    fut = asyncio.get_running_loop().create_future()
                    self.pull_waiters.append(fut)
                    await fut
                if self.exhausted or self.error is not None:
                    self._wake_puller()  # pass the news on: each waiter returns in turn
                    return
                self.pulling = True
                try:
                    x = await self.src.__anext__()
                except StopAsyncIteration:
                    self.exhausted = True
                    return
                except Exception as exc:
                    self.error = (self.next_in, exc, None)
                    return
                finally:
                    self.pulling = False
                    self._wake_puller()
                idx = self.next_in
                self.next_in += 1
                self.in_flight += 1
                if self.in_flight > self.max_in_flight:
                    self.max_in_flight = self.in_flight
                try:
                    y = await self.fn(x)
                except Exception as exc:
                    try:
                        y = await self.policy.handle_async(self.fn, x, idx, exc)
                    except Exception as final:
                        if self.error is None or self.error[0] > idx:
                            self.error = (idx, final, x)
                        y = _FAILED
                finally:
                    self.in_flight -= 1
                if self.ordered:
                    self.results[idx] = y
                    if idx == self.next_out:
                        self.wake()
                elif y is SKIP:
                    self.next_out += 1  # unordered: next_out counts results settled
                    self.free_room()
                elif y is not _FAILED:
                    self.fifo.append(y)
                    self.wake()
                if y is _FAILED:
                    self.wake()
        finally:
            self.active -= 1
            self.wake()

    def _wake_puller(self) -> None:
        waiters = self.pull_waiters
        while waiters:
            w = waiters.popleft()
            if not w.done():
                w.set_result(None)
                return

    def free_room(self) -> None:
        r = self.room
        if r is not None:
            self.room = None
            if not r.done():
                r.set_result(None)


async def concurrent_map(
    src: AsyncIterator[Any],
    fn: Callable[[Any], Awaitable[Any]],
    n: int,
    ordered: bool,
    policy: _ItemPolicy,
    stats: dict[str, Any] | None = None,
) -> AsyncGenerator[Any, None]:
    pool = _Pool(src, fn, n, ordered, policy)
    if stats is not None:
        stats["pool"] = pool
    loop = asyncio.get_running_loop()
    pool.active = n
    tasks = [loop.create_task(pool.worker()) for _ in range(n)]
    results = pool.results
    fifo = pool.fifo
    try:
        while True:
            if ordered:
                key = pool.next_out
                if key in results:
                    y = results.pop(key)
                    pool.next_out = key + 1
                    if pool.room is not None:
                        pool.free_room()
                    if y is _FAILED:
                        _raise(pool)
                    if y is not SKIP:
                        yield y
                    continue
            elif fifo:
                pool.next_out += 1
                if pool.room is not None:
                    pool.free_room()
                yield fifo.popleft()
                continue
            if pool.error is not None and (not ordered or pool.error[0] <= pool.next_out):
                _raise(pool)
            if pool.active == 0:
                if pool.error is not None:
                    _raise(pool)
                return
            fut = loop.create_future()
            pool.getter = fut
            await fut
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks)
        aclose = getattr(src, "aclose", None)
        if aclose is not None:
            await aclose()


def _raise(pool: _Pool) -> None:
    assert pool.error is not None
    raise pool.error[1]

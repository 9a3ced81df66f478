"""``map(fn, concurrency=N)``: N worker tasks share the upstream iterator.

A task per item would cost an event-loop round trip per item before ``fn`` even runs; N
long-lived workers pull the next item themselves, so the loop only switches where ``fn``
really waits. Ordered mode hands results back in input order and keeps at most ``2 * N``
finished-but-unconsumed results (the workers park beyond that), so memory stays bounded when
one slow item holds up the head (unordered mode has the same bound on results waiting for
the consumer). At most N calls are ever in flight; that is how the stage's
concurrency bounds an executor or a cluster.

A :class:`WorkerPool` is also the stage's observable: ``snapshot()`` returns a frozen
:class:`~streamnb.metrics.ConcurrencySnapshot` (in flight now and at most, items started,
completed - first try or after retries - and failed - skipped or raised -, the executor's
name and - when it has one - its ``dashboard_link``, and the tasks of an executor that groups
calls into tasks, a :class:`~streamnb.metrics.TaskSnapshot` counted from the stage's start).

``follow`` makes N track a value that changes as the run goes - a Dask executor's
``preferred_concurrency``, which grows once it has measured the function: it is read again
every ``N // 4`` items pulled (an integer comparison per item otherwise); new workers start
when it rose, and workers retire, at the end of their current item, when it fell below half
of N (so that a small wobble of the measurement does not start and stop workers).

Example::

    pool = WorkerPool("fetch", fetch, 8, ordered=True, policy=policy)
    run.observe("concurrency", pool)
    async for y in pool.run(source):
        ...
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from ._cancel import cancel_and_wait, is_stray, stray_error
from ._iter import aclose
from ._validate import check_int
from ._wake import wake, wake_first
from .metrics import ConcurrencySnapshot, TaskReporter
from .recovery import SKIP, ItemPolicy

__all__ = ["WorkerPool"]

_FAILED = object()


class WorkerPool:
    """N workers applying ``fn`` to the items of one upstream iterator (module docstring)."""

    def __init__(
        self,
        name: str,
        fn: Callable[[Any], Awaitable[Any]],
        n: int,
        ordered: bool,
        policy: ItemPolicy,
        executor: Any = None,
        follow: Callable[[], int] | None = None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.follow = follow
        self.n = self._followed() if follow is not None else n
        self.ordered = ordered
        self.policy = policy
        self.executor = executor
        # an executor that groups calls into tasks: its figures, counted from now
        self.reporter = executor if isinstance(executor, TaskReporter) else None
        self.tasks_at_start = self.reporter.task_snapshot() if self.reporter else None
        # next_in at which ``follow`` is read again (never, without one)
        self.recheck_at = 0 if follow is not None else sys.maxsize
        self.workers: list[asyncio.Task[None]] = []
        self.src: AsyncIterator[Any] | None = None
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
        self.upstream_failed = False  # the error is the source's, not an item's
        self.active = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0
        self.failed = 0
        self.getter: asyncio.Future[None] | None = None
        self.room: asyncio.Future[None] | None = None
        self.limit = 2 * self.n

    # -- observable -------------------------------------------------------------------------
    def snapshot(self) -> ConcurrencySnapshot:
        """A frozen copy of the stage's figures (``started`` = items handed to ``fn``)."""
        ex = self.executor
        executor = None
        link = None
        if ex is not None:
            executor = getattr(ex, "name", None) or type(ex).__name__
            link = getattr(ex, "dashboard_link", None)
        tasks = None
        if self.reporter is not None and self.tasks_at_start is not None:
            tasks = self.reporter.task_snapshot().since(self.tasks_at_start)
        return ConcurrencySnapshot(
            name=self.name,
            concurrency=self.n,
            in_flight=self.in_flight,
            max_in_flight=self.max_in_flight,
            started=self.next_in,
            completed=self.completed,
            failed=self.failed,
            executor=str(executor) if executor is not None else None,
            dashboard_link=str(link) if link is not None else None,
            taken_at=time.monotonic(),
            tasks=tasks,
        )

    # -- following a changing concurrency ---------------------------------------------------
    def _followed(self) -> int:
        assert self.follow is not None
        return check_int(self.name, "executor.preferred_concurrency", self.follow(), minimum=1)

    def _adapt(self, src: AsyncIterator[Any]) -> None:
        """Read ``follow`` again: start workers when it rose, let some retire when it fell
        below half of N (module docstring)."""
        try:
            target = self._followed()
        except Exception as exc:  # the stage ends with it, after the items pulled so far
            self._fail_upstream(exc)
            return
        if target > self.n and not self.exhausted and self.error is None:
            loop = asyncio.get_running_loop()
            self.active += target - self.n
            self.workers = [w for w in self.workers if not w.done()]  # the retired ones
            self.workers += [loop.create_task(self._worker(src)) for _ in range(target - self.n)]
            self.n, self.limit = target, 2 * target
        elif target < self.n // 2:
            self.n, self.limit = target, 2 * target  # the extra workers retire (_worker)
        self.recheck_at = self.next_in + max(1, self.n // 4)

    # -- workers ----------------------------------------------------------------------------
    def _wake_getter(self) -> None:
        g, self.getter = self.getter, None
        wake(g)

    def _free_room(self) -> None:
        r, self.room = self.room, None
        wake(r)

    async def _worker(self, src: AsyncIterator[Any]) -> None:
        try:
            while self.error is None:
                if self.active > self.n:
                    return  # retired: the stage's concurrency fell (``follow``)
                while self.next_in - self.next_out >= self.limit:
                    if self.room is None:
                        self.room = asyncio.get_running_loop().create_future()
                    await self.room
                while self.pulling:
                    fut = asyncio.get_running_loop().create_future()
                    self.pull_waiters.append(fut)
                    await fut
                if self.exhausted or self.error is not None:
                    wake_first(self.pull_waiters)  # pass the news on: each waiter in turn
                    return
                self.pulling = True
                try:
                    x = await src.__anext__()
                except StopAsyncIteration:
                    self.exhausted = True
                    return
                except Exception as exc:
                    self._fail_upstream(exc)
                    return
                except asyncio.CancelledError as exc:
                    if not is_stray(exc):
                        raise
                    err = stray_error(f"the source of {self.name}", exc)
                    err.__cause__ = exc
                    self._fail_upstream(err)
                    return
                finally:
                    self.pulling = False
                    wake_first(self.pull_waiters)
                idx = self.next_in
                self.next_in += 1
                if idx >= self.recheck_at:
                    self._adapt(src)
                self.in_flight += 1
                if self.in_flight > self.max_in_flight:
                    self.max_in_flight = self.in_flight
                try:
                    try:
                        y = await self.fn(x)
                    except Exception as exc:
                        y = await self.policy.handle_async(self.fn, x, idx, exc)
                except Exception as final:
                    self._fail_item(idx, final, x)
                    y = _FAILED
                except asyncio.CancelledError as exc:
                    if not is_stray(exc):
                        raise
                    # fn awaited something another task cancelled: a failure of this item,
                    # not the end of the worker (its result would never come)
                    err = stray_error(self.policy.stage, exc, index=idx, item=x)
                    err.__cause__ = exc
                    self._fail_item(idx, err, x)
                    y = _FAILED
                finally:
                    self.in_flight -= 1
                if y is SKIP or y is _FAILED:
                    self.failed += 1  # skipped to the dead letter, or failed for good
                else:
                    self.completed += 1  # at the first attempt or after retries
                if self.ordered:
                    self.results[idx] = y
                    if idx == self.next_out:
                        self._wake_getter()
                elif y is SKIP:
                    self.next_out += 1  # unordered: next_out counts results settled
                    self._free_room()
                elif y is not _FAILED:
                    self.fifo.append(y)
                    self._wake_getter()
                if y is _FAILED:
                    self._wake_getter()
        finally:
            self.active -= 1
            self._wake_getter()

    def _fail_upstream(self, exc: BaseException) -> None:
        # every item pulled before the failure is still delivered before it, in both modes
        self.error = (self.next_in, exc, None)
        self.upstream_failed = True

    def _fail_item(self, idx: int, exc: BaseException, x: Any) -> None:
        if self.error is None or self.error[0] > idx:
            self.error = (idx, exc, x)
            self.upstream_failed = False

    async def run(self, src: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """Start the workers on ``src``; yield results (in input order when ``ordered``)."""
        loop = asyncio.get_running_loop()
        ordered = self.ordered
        self.active = self.n
        self.workers = [loop.create_task(self._worker(src)) for _ in range(self.n)]
        results = self.results
        fifo = self.fifo
        try:
            while True:
                if ordered:
                    key = self.next_out
                    if key in results:
                        y = results.pop(key)
                        self.next_out = key + 1
                        if self.room is not None:
                            self._free_room()
                        if y is _FAILED:
                            self._raise()
                        if y is not SKIP:
                            yield y
                        continue
                elif fifo:
                    self.next_out += 1
                    if self.room is not None:
                        self._free_room()
                    yield fifo.popleft()
                    continue
                err = self.error
                if err is not None and (
                    err[0] <= self.next_out if ordered else not self.upstream_failed
                ):
                    # ordered: every result before the failing index is out; unordered: a
                    # failing item ends the stage at once, a failing source only once the
                    # items in flight are delivered (the workers end after them: active == 0)
                    self._raise()
                if self.active == 0:
                    if self.error is not None:
                        self._raise()
                    return
                fut = loop.create_future()
                self.getter = fut
                await fut
        finally:
            try:
                await cancel_and_wait(self.workers)
            finally:
                await aclose(src)

    def _raise(self) -> None:
        assert self.error is not None
        raise self.error[1]

"""Helpers shared by the core tests: sources that record what was pulled from them and
whether their ``finally`` ran, and a check that a run left no task behind.

Example::

    src = Tracked(range(10))
    assert await Stream(src).take(3).collect() == [0, 1, 2]
    assert src.pulled == 3 and src.finalized
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Iterator
from typing import Any

from streamnb import CircuitBreaker


class Tracked:
    """A factory of async generators over ``items`` that counts and records cleanup.

    ``pulled`` counts items handed out (incremented before each ``yield``, so pulling item
    n+1 is visible even if nobody receives it); ``finalized`` counts runs whose ``finally``
    ran; ``started`` counts runs. With ``fail_at=k`` the k-th pull raises ``exc`` instead.
    With ``gate_at=k`` the generator waits for ``gate`` (an Event) before item k, and sets
    ``parked`` while waiting - a deterministic way to make a source pause.
    """

    def __init__(
        self,
        items: Iterable[Any],
        *,
        fail_at: int | None = None,
        exc: BaseException | None = None,
        gate_at: int | None = None,
    ) -> None:
        self.items = list(items)
        self.fail_at = fail_at
        self.exc = exc if exc is not None else RuntimeError("source failed")
        self.gate_at = gate_at
        self.gate = asyncio.Event()
        self.parked = asyncio.Event()
        self.pulled = 0
        self.started = 0
        self.finalized = 0

    async def _gen(self) -> AsyncGenerator[Any, None]:
        self.started += 1
        try:
            for i, x in enumerate(self.items):
                if i == self.gate_at:
                    self.parked.set()
                    await self.gate.wait()
                if i == self.fail_at:
                    raise self.exc
                self.pulled += 1
                yield x
        finally:
            self.finalized += 1

    def __call__(self) -> AsyncGenerator[Any, None]:
        return self._gen()


class Endless:
    """A factory of endless async generators 0, 1, 2, ... that count pulls and cleanup.

    With ``park_after=k`` the generator blocks forever (on an Event nobody sets) after
    handing out k items, and sets ``parked``: a consumer of it is then provably waiting.
    """

    def __init__(self, park_after: int | None = None) -> None:
        self.park_after = park_after
        self.parked = asyncio.Event()
        self.pulled = 0
        self.finalized = 0

    async def _gen(self) -> AsyncGenerator[int, None]:
        i = 0
        try:
            while True:
                if i == self.park_after:
                    self.parked.set()
                    await asyncio.Event().wait()
                self.pulled += 1
                yield i
                i += 1
        finally:
            self.finalized += 1

    def __call__(self) -> AsyncGenerator[int, None]:
        return self._gen()


class SyncTracked:
    """A factory of plain generators over ``items`` that counts pulls and cleanup."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = list(items)
        self.pulled = 0
        self.finalized = 0

    def _gen(self) -> Iterator[Any]:
        try:
            for x in self.items:
                self.pulled += 1
                yield x
        finally:
            self.finalized += 1

    def __call__(self) -> Iterator[Any]:
        return self._gen()


async def settle(rounds: int = 50) -> None:
    """Let every ready task run for a while (event-loop turns, no wall-clock time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def assert_no_tasks_left() -> None:
    """Fail if any task other than the current one is still alive."""
    await settle(5)
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not others, f"tasks left behind: {others}"


class Resource:
    """An async iterator that stands for a real resource (an open call, a socket).

    Unlike a generator it is "open" from construction: ``opened`` and ``closed`` count across
    all instances made by one factory, so a test can check that everything opened was closed.
    ``limit=None`` makes it endless.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.opened = 0
        self.closed = 0
        self.pulled = 0

    def __call__(self) -> _ResourceIter:
        self.opened += 1
        return _ResourceIter(self)


class _ResourceIter:
    def __init__(self, owner: Resource) -> None:
        self._owner = owner
        self._i = 0
        self._closed = False

    def __aiter__(self) -> _ResourceIter:
        return self

    async def __anext__(self) -> int:
        if self._closed or (self._owner.limit is not None and self._i >= self._owner.limit):
            raise StopAsyncIteration
        self._i += 1
        self._owner.pulled += 1
        return self._i - 1

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner.closed += 1


class ManualClock:
    """A clock the test moves by hand, so a breaker's reset timeout passes instantly."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def opened_breaker() -> tuple[CircuitBreaker, ManualClock]:
    """A breaker that has just become half-open (one failure opened it, the timeout passed)."""
    clock = ManualClock()
    cb = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    cb.record_failure(RuntimeError("down"))
    assert cb.state == "open"
    clock.now += 11.0
    assert cb.state == "half_open"
    return cb, clock

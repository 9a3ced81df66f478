"""Waking a parked task: the one helper every hand-off in the core uses.

A stage that has nothing to do parks on a fresh ``Future`` (``await fut``); whoever makes
progress for it resolves that future. The future may already be done (cancelled by a timeout,
or woken twice), so resolving it is always guarded - written once here.

Example::

    fut = loop.create_future()
    wake(fut)                 # the waiter's ``await fut`` returns
    wake(fut)                 # a second wake is harmless
    wake_first(waiters)       # wake the first waiter of a deque that is still waiting
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["wake", "wake_first"]


def wake(fut: asyncio.Future[None] | None) -> None:
    """Resolve ``fut`` (a parked waiter) unless there is none or it is already done."""
    if fut is not None and not fut.done():
        fut.set_result(None)


def wake_first(waiters: deque[asyncio.Future[None]]) -> bool:
    """Pop waiters until one that still waits is woken; False when none was."""
    while waiters:
        w = waiters.popleft()
        if not w.done():
            w.set_result(None)
            return True
    return False

"""Cancellation done right, in one place: tell a real cancellation from a stray one, and stop
child tasks so that none outlives its stage - even when a second cancellation arrives during
the cleanup.

A *real* cancellation is one asked of the current task (``task.cancel()``, an expiring
``asyncio.timeout``): ``task.cancelling()`` is then above zero. A *stray* ``CancelledError``
is raised by user code that awaited something *another* task cancelled, while nobody asked
this task to stop. Treated as a cancellation it ends a producer task quietly (a buffer then
ends the stream early, as if the source were exhausted) or kills a worker (a concurrent map
then waits forever for its result), so the stages turn it into a
:class:`~streamnb.errors.StrayCancelledError` naming the stage and the item.

Example::

    try:
        y = await fn(x)
    except asyncio.CancelledError as exc:
        if is_stray(exc):
            raise stray_error("map(fetch)", exc, index=3, item=x) from exc
        raise
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .errors import StrayCancelledError
from .recovery import safe_repr

__all__ = ["cancel_and_wait", "check_stray", "is_stray", "stray_error"]

_NO_ITEM: Any = object()


def is_stray(exc: BaseException) -> bool:
    """True if ``exc`` is a ``CancelledError`` that nobody asked of the current task."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop: nothing to tell it from
        return False
    return task is not None and task.cancelling() == 0


def stray_error(
    stage: str, exc: BaseException, *, index: int | None = None, item: Any = _NO_ITEM
) -> StrayCancelledError:
    """The error that replaces a stray ``CancelledError`` raised in ``stage`` (raise it
    ``from exc``)."""
    where = f" on item #{index}" if index is not None else ""
    what = f" ({safe_repr(item)})" if item is not _NO_ITEM else ""
    return StrayCancelledError(
        f"{stage} raised CancelledError{where}{what} although the stream was not cancelled: "
        "it awaited something that another task cancelled. Catch it where it happens, or "
        "let the stream fail with it."
    )


def check_stray(
    exc: BaseException, stage: str, *, index: int | None = None, item: Any = _NO_ITEM
) -> None:
    """Raise the :class:`StrayCancelledError` replacing ``exc`` if it is a stray
    ``CancelledError``; return otherwise (the caller re-raises ``exc``).

    Example::

        except asyncio.CancelledError as exc:
            check_stray(exc, "the source of take(5)")
            raise
    """
    if is_stray(exc):
        raise stray_error(stage, exc, index=index, item=item) from exc


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one of them has ended.

    A cancellation of the *waiting* task during the wait does not abandon the children - that
    would leave them running (and a generator they are inside "already running" for whoever
    closes it next). It is passed on to them instead (so an awaiting ``finally`` of theirs is
    interrupted, as a second cancellation asks), the wait goes on until they have ended, and
    then ``CancelledError`` is raised here.
    """
    pending = {t for t in tasks if not t.done()}
    for t in pending:
        t.cancel()
    cancelled = False
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
            for t in pending:
                t.cancel()
            pending = {t for t in pending if not t.done()}
    if cancelled:
        raise asyncio.CancelledError

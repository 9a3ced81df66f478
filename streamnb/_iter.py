"""Source adapters shared by the core: any iterable as an async iterator, and closing one.

``Stream``, the resilient source and the gRPC request sender all accept "a sync or async
iterable"; these are the one place that turns such a thing into an async iterator and closes
it again, so every stage closes what it opened the same way.

Example::

    it = aiter_any([1, 2, 3])          # an async iterator over a plain list
    assert await it.__anext__() == 1
    await aclose(it)                   # runs the adapter's cleanup (closes the list iterator)
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, TypeVar, cast

__all__ = ["aclose", "aiter_any", "from_sync", "is_async_callable"]

T = TypeVar("T")


def is_async_callable(fn: Any) -> bool:
    """True for an ``async def`` function or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


async def from_sync(it: Iterator[T]) -> AsyncGenerator[T, None]:
    """An async generator over a sync iterator; closes the iterator (if it can) when done."""
    try:
        for x in it:
            yield x
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def aiter_any(obj: Any) -> AsyncIterator[Any]:
    """An async iterator over any sync or async iterable (a Stream included)."""
    if hasattr(obj, "__aiter__"):
        return cast(AsyncIterator[Any], obj.__aiter__())
    try:
        it = iter(obj)  # not hasattr(__iter__): sequences with only __getitem__ count too
    except TypeError:
        raise TypeError(
            f"expected an iterable or async iterable, got {type(obj).__name__}"
        ) from None
    return from_sync(it)


async def aclose(it: Any) -> None:
    """Close an async iterator if it has ``aclose`` (async generators do); else nothing."""
    close = getattr(it, "aclose", None)
    if close is not None:
        await close()

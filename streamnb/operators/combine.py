"""Operators that combine streams: ``merge`` and ``zip``.

The other streams are built into the same run (their stages register on it too): each is
given as a function ``build(run) -> AsyncIterator``.

Example::

    Stream(a).merge(Stream(b))        # Merge((b_build,), buffer=64) after a's stages
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

from .._cancel import check_stray
from .._iter import aclose
from .._runstate import RunState
from .._validate import check_int
from ..buffer import Channel
from .base import Link, Operator

__all__ = ["Builder", "Merge", "Zip"]

#: How a combining operator opens another stream inside the current run.
Builder = Callable[[RunState], AsyncIterator[Any]]


class Merge(Operator):
    """Interleave the streams as their items arrive (a producer task each, ``buffer`` items
    at most waiting); the first failure stops the others."""

    def __init__(self, others: Sequence[Builder], buffer: int = 64) -> None:
        self.capacity = check_int("merge", "buffer", buffer, minimum=1)
        self.others = tuple(others)
        self.label = f"merge({len(self.others) + 1} streams)"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        srcs = [src] + [build(link.run) for build in self.others]
        chan: Channel[Any] = Channel("merge", self.capacity, method="merge")
        return chan.drain(srcs)


class Zip(Operator):
    """Tuples of one item from each stream, until the shortest ends."""

    def __init__(self, others: Sequence[Builder]) -> None:
        self.others = tuple(others)
        self.label = f"zip({len(self.others) + 1} streams)"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        return _zip([src] + [build(link.run) for build in self.others])


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
    except asyncio.CancelledError as exc:
        check_stray(exc, "a source of zip")
        raise
    finally:
        for s in srcs:
            await aclose(s)

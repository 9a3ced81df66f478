"""Chunking: ``batch(size, within=)``.

One unit with both forms side by side, sharing validation: fused (``within=None``: a list
filled in the loop, emitted every ``size`` items, the partial one at the end) and unfused
(``within=s``: a producer task feeds a :class:`~streamnb.buffer.Channel` so a chunk can be
emitted on time even while the source is silent).

Example::

    Stream(rows).then(Batch(100, within=0.5))     # what Stream.batch(100, within=0.5) does
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from .._validate import check_int, check_seconds
from ..buffer import Channel
from .base import Fragment, Link, Operator

__all__ = ["Batch"]


class Batch(Operator):
    """Lists of up to ``size`` items; with ``within``, also once ``within`` seconds passed
    since a list's first item. The last partial list is emitted."""

    def __init__(self, size: int, within: float | None = None) -> None:
        self.size = check_int("batch", "size", size, minimum=1)
        self.within = None if within is None else check_seconds("batch", "within", within)
        self.label = f"batch({size})"

    def fragment(self, link: Link) -> Fragment | None:
        if self.within is not None:
            return None
        return Fragment(
            body=(
                "$add(x)",
                "if len($chunk) < $size:",
                "    continue",
                "x = $chunk",
                "$chunk = []",
                "$add = $chunk.append",
            ),
            params={"size": self.size},
            locals={"chunk": "[]", "add": "$chunk.append"},
            tail=("if $chunk:", "    yield $chunk"),
            calls_user=False,
        )

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        if self.within is None:
            return super().stage(src, link)
        return self._timed(src, self.within)

    async def _timed(self, src: AsyncIterator[Any], within: float) -> AsyncGenerator[Any, None]:
        size = self.size
        chan: Channel[Any] = Channel("batch", max(size, 16), method="batch")
        chan.start([src])
        clock = time.monotonic
        chunk: list[Any] = []
        deadline = 0.0
        try:
            while True:
                if chan:
                    chunk.append(chan.take())
                    if len(chunk) == 1:
                        deadline = clock() + within
                    if len(chunk) >= size or clock() >= deadline:
                        out, chunk = chunk, []
                        yield out
                elif chan.finished:
                    if chan:
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

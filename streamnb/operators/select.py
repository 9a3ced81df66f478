"""Operators that select items: ``take``, ``skip``, ``take_while``, ``sample``, ``throttle``.

Example::

    Stream(events).then(Sample(every=10))      # what Stream.sample(every=10) does
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any

from .._cancel import check_stray
from .._iter import aclose
from .._validate import check_int, check_number
from ..recovery import describe
from .base import Fragment, Link, Operator, user_call

__all__ = ["Sample", "Skip", "Take", "TakeWhile", "Throttle"]


class Take(Operator):
    """``take(n)``: the first ``n`` items; pulls exactly ``n`` upstream, then closes it."""

    def __init__(self, n: int) -> None:
        self.n = check_int("take", "n", n)
        self.label = f"take({n})"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        return self._run(src)

    async def _run(self, src: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        n = self.n
        try:
            if n <= 0:
                return
            i = 0
            async for x in src:
                i += 1
                if i >= n:
                    # close the source before handing out the last item: exactly n pulls
                    await aclose(src)
                    yield x
                    return
                yield x
        except asyncio.CancelledError as exc:
            check_stray(exc, f"the source of {self.label}")
            raise
        finally:
            await aclose(src)


class Skip(Operator):
    """``skip(n)``: drop the first ``n`` items."""

    def __init__(self, n: int) -> None:
        self.n = check_int("skip", "n", n)
        self.label = f"skip({n})"

    def fragment(self, link: Link) -> Fragment:
        return Fragment(
            body=("if $left:", "    $left -= 1", "    continue"),
            params={"n": self.n},
            locals={"left": "$n"},
            calls_user=False,
        )


class TakeWhile(Operator):
    """``take_while(predicate)``: items while it holds; the first failing one ends the
    stream (dropped)."""

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.label = f"take_while({describe(predicate)})"
        self.predicate = predicate

    def fragment(self, link: Link) -> Fragment:
        # break, not return: a batch fused after it still emits its partial chunk
        return user_call(("if not $p(x):", "    break"), self.predicate, self.label, "p").fragment()


class Sample(Operator):
    """``sample(every)``: items 0, every, 2*every, ... (load shedding by sampling)."""

    def __init__(self, every: int) -> None:
        self.every = check_int("sample", "every", every, minimum=1)
        self.label = f"sample(every={every})"

    def fragment(self, link: Link) -> Fragment:
        return Fragment(
            body=("if $left:", "    $left -= 1", "    continue", "$left = $gap"),
            params={"gap": self.every - 1},
            locals={"left": "0"},
            calls_user=False,
        )


class Throttle(Operator):
    """``throttle(rate)``: at most ``rate`` items per second, evenly spaced."""

    def __init__(self, rate: float) -> None:
        self.rate = check_number("throttle", "rate", rate, minimum=0.0, exclusive=True)
        self.label = f"throttle({rate}/s)"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        return self._run(src)

    async def _run(self, src: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        interval = 1.0 / self.rate
        clock = time.monotonic
        next_t = clock()
        try:
            async for x in src:
                now = clock()
                if now < next_t:
                    await asyncio.sleep(next_t - now)
                    now = next_t
                next_t = max(next_t, now) + interval
                yield x
        except asyncio.CancelledError as exc:
            check_stray(exc, f"the source of {self.label}")
            raise
        finally:
            await aclose(src)

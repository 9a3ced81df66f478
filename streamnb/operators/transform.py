"""Operators that transform items one by one: ``map``, ``filter``, ``tap``, ``flat_map``,
``enumerate``, ``scan``.

Each is one class (see :mod:`streamnb.operators.base` for the protocol). ``Map`` holds both
of its forms side by side - the fused loop line for ``concurrency=1`` and the worker pool for
``concurrency=N`` / ``executor=`` - sharing one validation and one error policy.

Example::

    Stream(rows).then(Map(parse, on_error="skip"))      # what Stream.map(parse, ...) does
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from .._cancel import check_stray
from .._concurrent import WorkerPool
from .._iter import aclose, aiter_any, is_async_callable
from .._validate import check_int
from ..errors import InvalidArgumentError
from ..recovery import CircuitBreaker, DeadLetter, ItemPolicy, RetryPolicy, annotate, describe
from .base import Fragment, Link, Operator, user_call

__all__ = ["Enumerate", "Filter", "FlatMap", "Map", "Scan", "Tap"]


class Map(Operator):
    """``map(fn, concurrency=, ordered=, executor=, on_error=, dead_letter=, retry=,
    breaker=, name=)``: fused when ``concurrency == 1`` without an executor, else a
    :class:`~streamnb._concurrent.WorkerPool` registered as the run's ``"concurrency"``
    observable. ``concurrency=None`` follows the executor's ``preferred_concurrency`` when it
    has one (a Dask executor), else means 1. ``method`` names the public method in argument
    errors (``for_each``)."""

    def __init__(
        self,
        fn: Callable[[Any], Any],
        concurrency: int | None = 1,
        ordered: bool = True,
        executor: Executor | None = None,
        on_error: str = "raise",
        dead_letter: DeadLetter[Any] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        name: str | None = None,
        *,
        method: str = "map",
    ) -> None:
        self.label = name or f"{method}({describe(fn)})"
        self.named = name is not None
        # no concurrency given, an executor that knows what it needs: the stage follows it
        self.follows = concurrency is None and hasattr(executor, "preferred_concurrency")
        if concurrency is None:
            concurrency = 1
        check_int(method, "concurrency", concurrency, minimum=1)
        self.is_async = is_async_callable(fn)
        if self.is_async and executor is not None:
            raise InvalidArgumentError(
                f"{self.label}: executor= runs plain functions; {describe(fn)} is async"
            )
        if concurrency > 1 and not self.is_async and executor is None:
            raise InvalidArgumentError(
                f"{self.label}: concurrency={concurrency} needs executor= for a plain "
                "function (it cannot overlap with others on the event loop): threads, "
                "processes, a Dask client's executor - or make it async"
            )
        self.fn = fn
        self.concurrency = concurrency
        self.ordered = ordered
        self.executor = executor
        ItemPolicy(self.label, on_error, None, retry)  # validate now, not at run time
        self.on_error = on_error
        self.dead_letter = dead_letter
        self.retry = retry
        self.breaker = breaker

    def _policy(self, link: Link) -> ItemPolicy:
        policy = ItemPolicy(self.label, self.on_error, self.dead_letter, self.retry)
        if self.on_error != "raise":
            run = link.run
            run.dead_letters[run.unique(run.dead_letters, self.label, "error-policy")] = (
                policy.dead_letter
            )
            link.dead_letter = policy.dead_letter
        return policy

    def _guarded(self) -> Callable[[Any], Any]:
        fn, breaker = self.fn, self.breaker
        if breaker is None:
            return fn
        if self.is_async:

            async def guarded_async(x: Any) -> Any:
                return await breaker.call(fn, x)

            return guarded_async
        return lambda x: breaker.call_sync(fn, x)

    # -- fused: concurrency=1 ---------------------------------------------------------------
    def fragment(self, link: Link) -> Fragment | None:
        if self.executor is not None or self.concurrency != 1:
            return None
        policy = self._policy(link)
        guarded = self._guarded()
        call = user_call(("x = $f(x)",), guarded, self.label)
        if self.on_error == "raise":
            return call.fragment()
        handler = policy.handle_async if self.is_async else policy.handle_sync

        def with_policy(lines: tuple[str, ...]) -> tuple[str, ...]:
            return (
                "try:",
                *("    " + s for s in lines),
                "except Exception as $err:",
                "    x = await $handle($raw, x, $index, $err)",
                "    if x is _SKIP:",
                "        continue",
            )

        return Fragment(
            body=with_policy(call.body),
            probing=None if call.probing is None else with_policy(call.probing),
            params={**call.params, "raw": guarded, "handle": handler},
            locals={**call.locals, "err": None},
        )

    # -- unfused: a worker pool -------------------------------------------------------------
    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        policy = self._policy(link)
        afn: Callable[[Any], Awaitable[Any]]
        if self.executor is not None:
            # the plain function travels to the executor; a breaker stays here, around the
            # awaited call, so its state is this process's and nothing extra is shipped
            executor, plain, breaker = self.executor, self.fn, self.breaker
            loop = asyncio.get_running_loop()
            # an executor that resolves futures of this loop itself (a DaskExecutor: one
            # hop per task instead of a concurrent.futures.Future and a hop per call)
            submit_async = getattr(executor, "submit_async", None)
            if submit_async is not None:

                def offload(x: Any) -> Awaitable[Any]:
                    return submit_async(plain, x)  # type: ignore[no-any-return]

            else:

                def offload(x: Any) -> Awaitable[Any]:
                    return loop.run_in_executor(executor, _no_stop_iteration, plain, x)

            afn = offload
            if breaker is not None:

                async def guarded(x: Any) -> Any:
                    return await breaker.call(offload, x)

                afn = guarded
        else:
            afn = self._guarded()
        run = link.run
        name = self.label if self.named else run.free_name("concurrency", self.label)
        follow = _preferred_concurrency(self.executor) if self.follows else None
        pool = WorkerPool(
            name, afn, self.concurrency, self.ordered, policy, self.executor, follow=follow
        )
        run.observe("concurrency", pool)
        return pool.run(src)


def _no_stop_iteration(fn: Callable[[Any], Any], x: Any) -> Any:
    """``fn(x)`` in an executor, with a ``StopIteration`` turned into a ``RuntimeError``: an
    asyncio future refuses to carry one, so the call would never complete (the stage hung).
    Module-level, so a process pool can pickle it."""
    try:
        return fn(x)
    except StopIteration as exc:
        raise RuntimeError(f"the function raised StopIteration: {exc!r}") from exc


def _preferred_concurrency(executor: Any) -> Callable[[], int]:
    """Reads ``executor.preferred_concurrency`` (a property that changes as it measures)."""
    return lambda: executor.preferred_concurrency


class Filter(Operator):
    """``filter(predicate)``: keep the items for which ``predicate`` is true."""

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.label = f"filter({describe(predicate)})"
        self.predicate = predicate

    def fragment(self, link: Link) -> Fragment:
        call = user_call(("if not $p(x):", "    continue"), self.predicate, self.label, "p")
        return call.fragment()


class Tap(Operator):
    """``tap(fn)``: call ``fn`` on every item for its side effect; pass items on."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.label = f"tap({describe(fn)})"
        self.fn = fn

    def fragment(self, link: Link) -> Fragment:
        return user_call(("$f(x)",), self.fn, self.label).fragment()


class Enumerate(Operator):
    """``enumerate(start)``: ``(start, x0), (start + 1, x1), ...``."""

    label = "enumerate"

    def __init__(self, start: int = 0) -> None:
        self.start = check_int("enumerate", "start", start, minimum=None)

    def fragment(self, link: Link) -> Fragment:
        return Fragment(
            body=("x = ($n, x)", "$n += 1"),
            params={"start": self.start},
            locals={"n": "$start"},
            calls_user=False,
        )


class Scan(Operator):
    """``scan(fn, initial)``: emits ``fn(acc, x)`` after every item."""

    def __init__(self, fn: Callable[[Any, Any], Any], initial: Any) -> None:
        self.label = f"scan({describe(fn)})"
        self.fn, self.initial = fn, initial

    def fragment(self, link: Link) -> Fragment:
        call = user_call(("$acc = $f($acc, x)", "x = $acc"), self.fn, self.label, args="$acc, x")
        return Fragment(
            body=call.body,
            probing=call.probing,
            params={**call.params, "initial": self.initial},
            locals={**call.locals, "acc": "$initial"},
        )


class FlatMap(Operator):
    """``flat_map(fn)``: replace each item by the items of the iterable ``fn`` returns."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.label = f"flat_map({describe(fn)})"
        self.fn = fn

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        return self._run(src)

    async def _run(self, src: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        fn, is_async, label = self.fn, is_async_callable(self.fn), self.label
        index = -1
        try:
            async for x in src:
                index += 1
                try:
                    inner = await fn(x) if is_async else fn(x)
                    if not is_async and inspect.isawaitable(inner):
                        inner = await inner  # a plain function returning a coroutine
                    it = aiter_any(inner)
                except Exception as exc:
                    annotate(exc, label, index, x)
                    raise
                except asyncio.CancelledError as exc:
                    check_stray(exc, label, index=index, item=x)
                    raise
                try:
                    async for y in it:
                        yield y
                except asyncio.CancelledError as exc:
                    check_stray(exc, label, index=index, item=x)
                    raise
                finally:
                    await aclose(it)
        except asyncio.CancelledError as exc:
            check_stray(exc, f"the source of {label}")
            raise
        finally:
            await aclose(src)

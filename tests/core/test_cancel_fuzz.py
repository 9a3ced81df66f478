"""Cancellation fuzz (issue 11): random chains, ended in random ways, always end cleanly.

Hypothesis draws a chain of buffer / concurrent map (ordered and unordered) / merge / zip /
``batch(within=)`` / throttle / window over sources that may fail, may be endless, and may
``await`` in their ``finally``; then ends it by running to completion, ``break``, a
``task.cancel()`` or an ``asyncio.timeout`` at a random point - sometimes with a second
cancellation while the sources are still cleaning up. Whatever happens:

- the consumer ends with the right outcome (normally, the source's error - a stray
  ``CancelledError`` from a source becomes ``StrayCancelledError`` -, ``CancelledError`` or
  ``TimeoutError``; never ``RuntimeError: aclose(): ... already running``, never a stream
  that ends early as if nothing happened),
- every source that started ran its ``finally``,
- no task is left once the consumer has ended,
- and it ends at all: every example runs under a hard bound, so a hang is a failure.

Each example runs in its own event loop (``asyncio.run``), so nothing leaks between them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streamnb import StrayCancelledError, Stream

HARD_BOUND = 3.0  # seconds per example; the slowest legitimate one takes a few tens of ms


class SourceError(Exception):
    """The failure a fuzzed source raises (told apart from anything streamnb raises)."""


@dataclass
class SourceSpec:
    items: int | None  # None: endless
    fail_at: int | None
    stray: bool  # the failure is a stray CancelledError (awaiting a future someone cancelled)
    cleanup: str  # "none" | "yield" (a few loop turns) | "sleep" (a few ms)
    pause_every: int  # give the loop a turn every that many items (0: never)


@dataclass
class Source:
    """A factory of async generators following ``spec``, recording starts and cleanups."""

    spec: SourceSpec
    started: int = 0
    finalized: int = 0
    cleanup_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def gen(self) -> AsyncGenerator[int, None]:
        self.started += 1
        spec = self.spec
        try:
            i = 0
            while spec.items is None or i < spec.items:
                if i == spec.fail_at:
                    if spec.stray:
                        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                        fut.cancel()
                        await fut
                    raise SourceError(f"failed at {i}")
                if spec.pause_every and i % spec.pause_every == 0:
                    await asyncio.sleep(0)
                yield i
                i += 1
        finally:
            self.finalized += 1
            self.cleanup_started.set()
            if spec.cleanup == "yield":
                for _ in range(3):
                    await asyncio.sleep(0)
            elif spec.cleanup == "sleep":
                await asyncio.sleep(0.002)


sources = st.builds(
    SourceSpec,
    items=st.one_of(st.none(), st.integers(0, 40)),
    fail_at=st.one_of(st.none(), st.integers(0, 30)),
    stray=st.booleans(),
    cleanup=st.sampled_from(["none", "yield", "sleep"]),
    pause_every=st.sampled_from([0, 1, 3, 7]),
)

ops = st.one_of(
    st.tuples(st.just("buffer"), st.integers(1, 8)),
    st.tuples(st.just("cmap"), st.integers(1, 4), st.booleans()),
    st.tuples(st.just("merge"), sources),
    st.tuples(st.just("zip"), sources),
    st.tuples(st.just("batch"), st.integers(1, 6), st.sampled_from([0.001, 0.005])),
    st.tuples(st.just("throttle"), st.sampled_from([5_000.0, 50_000.0])),
    st.tuples(st.just("window"), st.integers(1, 4)),
    st.tuples(st.just("map")),
)

endings = st.one_of(
    st.tuples(st.just("complete")),
    st.tuples(st.just("break"), st.integers(0, 10)),
    st.tuples(st.just("cancel"), st.integers(0, 10), st.booleans()),
    st.tuples(st.just("timeout"), st.sampled_from([0.001, 0.005, 0.02]), st.booleans()),
)


async def _touch(x: Any) -> Any:
    await asyncio.sleep(0)
    return x


def _build(main: Source, chain: list[tuple[Any, ...]], all_sources: list[Source]) -> Stream[Any]:
    s: Stream[Any] = Stream(main.gen)
    for j, op in enumerate(chain):
        kind = op[0]
        if kind == "buffer":
            s = s.buffer(op[1])
        elif kind == "cmap":
            s = s.map(_touch, concurrency=op[1], ordered=op[2])
        elif kind in ("merge", "zip"):
            other = Source(op[1])
            all_sources.append(other)
            s = s.merge(Stream(other.gen)) if kind == "merge" else s.zip(Stream(other.gen))
        elif kind == "batch":
            s = s.batch(op[1], within=op[2])
        elif kind == "throttle":
            s = s.throttle(op[1])
        elif kind == "window":
            s = s.window(last=op[1], name=f"w{j}")
        else:
            s = s.map(lambda x: x)
    return s


async def _first_of(task: asyncio.Task[Any], *events: asyncio.Event) -> None:
    """Wait until ``task`` ends or one of ``events`` is set (cleaning up the waiters)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.wait(waiters)


async def _scenario(
    main_spec: SourceSpec, chain: list[tuple[Any, ...]], ending: tuple[Any, ...]
) -> None:
    main = Source(main_spec)
    all_sources = [main]
    stream = _build(main, chain, all_sources)
    if ending[0] == "complete":
        for s in all_sources:  # a run asked to complete must be able to
            if s.spec.items is None:
                s.spec.items = 40
    received = 0
    got_enough = asyncio.Event()
    threshold = ending[1] if ending[0] in ("break", "cancel") else -1

    async def consume() -> str:
        nonlocal received
        async with stream.open() as it:
            async for _ in it:
                received += 1
                if received >= threshold >= 0:
                    if ending[0] == "break":
                        break
                    got_enough.set()
        return "normal"

    async def consume_with_timeout(seconds: float) -> str:
        async with asyncio.timeout(seconds):
            return await consume()

    if ending[0] == "timeout":
        task = asyncio.create_task(consume_with_timeout(ending[1]))
    else:
        task = asyncio.create_task(consume())
    if threshold == 0:
        got_enough.set()

    second = ending[0] in ("cancel", "timeout") and ending[2]
    cancel_sent = second_sent = False
    async with asyncio.timeout(HARD_BOUND):
        if ending[0] == "cancel":
            await _first_of(task, got_enough)
            cancel_sent = task.cancel()
        if second and not task.done():
            # a second cancellation while some source cleans up after the first
            await _first_of(task, *(s.cleanup_started for s in all_sources))
            second_sent = task.cancel()
        outcome: str
        try:
            outcome = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise
            outcome = "cancelled"
        except (SourceError, StrayCancelledError, TimeoutError) as exc:
            outcome = type(exc).__name__
        # any other exception (RuntimeError "already running", ...) fails the example as is

    zipped = any(op[0] == "zip" for op in chain)
    failures = {
        "StrayCancelledError" if s.spec.stray else "SourceError"
        for s in all_sources
        if s.spec.fail_at is not None and (s.spec.items is None or s.spec.fail_at < s.spec.items)
    }
    allowed = {"normal"} | failures
    if ending[0] == "complete" and failures and not zipped:
        allowed = failures  # a zip may stop at its shortest input before the failure
    if ending[0] == "timeout":
        allowed.add("TimeoutError")
    if cancel_sent or second_sent:
        allowed = {"cancelled"}
    elif ending[0] == "cancel":
        pass  # the run had ended before the cancel: its natural outcome
    assert outcome in allowed, (outcome, allowed, ending)

    await asyncio.sleep(0)
    left = asyncio.all_tasks() - {asyncio.current_task()}
    assert not left, f"tasks left behind once the consumer ended: {left}"
    for s in all_sources:
        assert s.finalized == s.started, ("a source's finally did not run", s.spec)


def _run_bounded(main: SourceSpec, chain: list[tuple[Any, ...]], ending: tuple[Any, ...]) -> None:
    """Run one scenario in its own loop, on a thread watched by a wall clock: a hang that even
    cancellation cannot end (the very bug this hunts) fails the example instead of the suite."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(_scenario(main, chain, ending))
        except BaseException as exc:  # handed to the test thread below
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(HARD_BOUND + 2.0)
    assert not worker.is_alive(), "the run hung: even cancelling it did not end it"
    if errors:
        raise errors[0]


@settings(max_examples=150)
@given(main=sources, chain=st.lists(ops, min_size=1, max_size=4), ending=endings)
def test_random_chains_end_cleanly_however_they_are_stopped(
    main: SourceSpec, chain: list[tuple[Any, ...]], ending: tuple[Any, ...]
) -> None:
    _run_bounded(main, chain, ending)

"""``map(concurrency=N)``: the bound on calls in flight, ordering, bounded memory, failures,
and leak-free shutdown of every task-based stage (buffer, concurrent map, merge, timed batch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streamnb import DeadLetter, Stream

from ._support import Endless, Tracked, assert_no_tasks_left, settle


@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("ordered", [True, False])
async def test_never_more_than_n_calls_in_flight(n: int, ordered: bool) -> None:
    in_flight = peak = 0

    async def fn(x: int) -> int:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(x % 4):
            await asyncio.sleep(0)
        in_flight -= 1
        return x

    got = await Stream(range(100)).map(fn, concurrency=n, ordered=ordered).collect()
    assert (got if ordered else sorted(got)) == list(range(100))
    assert peak <= n
    assert peak == n or n == 1


async def test_stage_reports_max_in_flight() -> None:
    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    s = Stream(range(20)).map(fn, concurrency=3, name="cm")
    async with s.open() as it:
        _ = [x async for x in it]
        pool = it.stages["cm"]
    assert pool.max_in_flight == 3


async def test_ordered_mode_keeps_a_bounded_buffer_of_results() -> None:
    n = 3
    src = Tracked(range(100))
    release = asyncio.Event()

    async def fn(x: int) -> int:
        if x == 0:
            await release.wait()  # the head of the line is slow; everyone else is fast
        return x

    async def consume() -> list[int]:
        return await Stream(src).map(fn, concurrency=n).collect()

    task = asyncio.create_task(consume())
    await settle(200)
    assert not task.done()
    # while item 0 is stuck, at most 2*N items were pulled (finished results wait, bounded)
    assert src.pulled <= 2 * n
    release.set()
    assert await task == list(range(100))


async def test_unordered_mode_keeps_a_bounded_buffer_of_results() -> None:
    # every queue has a bound: with a consumer that stops taking items, the workers must
    # park once a bounded number of finished results wait (2*N) besides the N in flight
    n = 3
    src = Tracked(range(10_000))

    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        return x

    async with Stream(src).map(fn, concurrency=n, ordered=False).open() as it:
        await it.__anext__()
        await settle(500)  # an idle consumer
        assert src.pulled <= 1 + 3 * n, f"{src.pulled} items pulled for 1 consumed"
        rest = [x async for x in it]
    assert len(rest) == 9_999


async def test_ordered_failure_raised_after_earlier_results() -> None:
    async def fn(x: int) -> int:
        await asyncio.sleep(0)
        if x == 5:
            raise ArithmeticError("five")
        return x

    got: list[int] = []
    with pytest.raises(ArithmeticError, match="five"):
        async with Stream(range(50)).map(fn, concurrency=4).open() as it:
            async for y in it:
                got.append(y)
    assert got == [0, 1, 2, 3, 4]
    await assert_no_tasks_left()


async def test_upstream_failure_reaches_consumer() -> None:
    src = Tracked(range(10), fail_at=3, exc=BrokenPipeError("up"))

    async def fn(x: int) -> int:
        return x

    with pytest.raises(BrokenPipeError):
        await Stream(src).map(fn, concurrency=3).collect()
    assert src.finalized == 1
    await assert_no_tasks_left()


async def test_executor_concurrency_bound() -> None:
    import threading

    lock = threading.Lock()
    state = {"in": 0, "peak": 0}
    gate = threading.Barrier(3, timeout=30)

    def work(x: int) -> int:
        with lock:
            state["in"] += 1
            state["peak"] = max(state["peak"], state["in"])
        if x < 3:
            gate.wait()  # the first three calls provably overlap
        with lock:
            state["in"] -= 1
        return -x

    with ThreadPoolExecutor(max_workers=8) as pool:
        got = await Stream(range(30)).map(work, executor=pool, concurrency=3).collect()
    assert got == [-x for x in range(30)]
    assert state["peak"] == 3


# -- leaks on cancellation -----------------------------------------------------------------------
async def _async_id(x: int) -> int:
    await asyncio.sleep(0)
    return x


async def _mk_stage_slow(x: int) -> int:
    await asyncio.Event().wait()  # never returns: calls stay in flight
    return x


STAGES: dict[str, Callable[[Stream[int]], Stream[Any]]] = {
    "buffer": lambda s: s.buffer(4),
    "concurrent_map": lambda s: s.map(_async_id, concurrency=4),
    "concurrent_map_stuck_calls": lambda s: s.map(_mk_stage_slow, concurrency=4),
    "merge": lambda s: s.merge(Stream(Endless(park_after=3))),
    "timed_batch": lambda s: s.batch(100, within=60.0),
    "all_together": lambda s: s.buffer(2).map(_async_id, concurrency=3).batch(5, within=60.0),
}


@pytest.mark.parametrize("stage", sorted(STAGES))
async def test_cancelling_a_consumer_leaves_no_tasks_and_closes_sources(stage: str) -> None:
    src = Endless(park_after=10)
    s = STAGES[stage](Stream(src))
    started = asyncio.Event()

    async def consume() -> None:
        async with s.open() as it:
            started.set()
            async for _ in it:
                pass

    task = asyncio.create_task(consume())
    await started.wait()
    if stage != "concurrent_map_stuck_calls":
        await src.parked.wait()  # the whole pipeline is now waiting on the source
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert src.finalized == 1
    await assert_no_tasks_left()


@pytest.mark.parametrize("stage", sorted(STAGES))
async def test_break_leaves_no_tasks_and_closes_sources(stage: str) -> None:
    src = Endless()
    s = STAGES[stage](Stream(src))
    async with s.open() as it:
        if stage == "concurrent_map_stuck_calls":
            pass  # it never yields: opening and closing must still be clean
        else:
            async for _ in it:
                break
    assert src.finalized in (0, 1)  # not started at all is fine...
    if stage != "concurrent_map_stuck_calls":
        assert src.finalized == 1  # ...but a started source must be closed
    await assert_no_tasks_left()


async def test_one_upstream_pause_does_not_cost_a_loop_round_trip_per_item_after() -> None:
    # Regression: with asyncio.Lock guarding upstream pulls, a single pause of the source
    # made the workers queue behind each other for good (a lock convoy): one event-loop
    # iteration per item instead of one per ~N items. Counted, not timed.
    n_items, workers = 6_000, 10

    async def source() -> AsyncGenerator[int, None]:
        for i in range(n_items):
            if i == 50:
                await asyncio.sleep(0)  # the upstream suspends once
            yield i

    async def touch(x: int) -> int:
        await asyncio.sleep(0)
        return x

    iterations = 0
    done = False

    async def count_loop_iterations() -> None:
        nonlocal iterations
        while not done:
            iterations += 1
            await asyncio.sleep(0)

    probe = asyncio.create_task(count_loop_iterations())
    got = await Stream(source).map(touch, concurrency=workers).collect(limit=None)
    done = True
    await probe
    assert got == list(range(n_items))
    assert iterations < n_items / 3, f"{iterations} loop iterations for {n_items} items"


class _Preferring(ThreadPoolExecutor):
    """A thread pool that says how many calls it wants at once, as a Dask executor does
    (``DaskExecutor.preferred_concurrency``); the test changes the figure while a run goes."""

    def __init__(self, preferred: Any) -> None:
        super().__init__(max_workers=16)
        self.preferred_concurrency = preferred


def _sleepy(x: int) -> int:
    import time

    time.sleep(0.002)
    return x


async def test_without_concurrency_a_stage_follows_its_executors_preferred_concurrency() -> None:
    # from item i on, the executor asks for this many calls at once
    plan = {20: 6, 80: 4, 140: 2}
    seen: list[tuple[int, int, int]] = []  # (item, stage concurrency, calls in flight)
    with _Preferring(2) as ex:
        s = Stream(range(200)).map(_sleepy, executor=ex, name="w")
        async with s.open() as it:
            assert it.stages["w"].concurrency == 2  # read when the stage was built
            async for y in it:
                ex.preferred_concurrency = plan.get(y, ex.preferred_concurrency)
                snap = it.stages["w"]
                seen.append((y, snap.concurrency, snap.in_flight))
            final = it.stages["w"]
    assert [y for y, _, _ in seen] == list(range(200))
    assert {c for y, c, _ in seen if y < 20} == {2}
    assert all(f <= 2 for y, _, f in seen if y < 20)
    # it rose to 6 and stayed there when the figure only wobbled down to 4 (not below 6 / 2)
    assert {c for y, c, _ in seen if 40 <= y < 140} == {6}
    # it fell to 2 once a worker pulled again (results up to 2 x 6 ahead may be waiting),
    # and the extra workers retired after their current item
    assert {c for y, c, _ in seen if y >= 160} == {2}
    assert all(f <= 2 for y, _, f in seen if y >= 170)
    assert final.max_in_flight == 6 and final.concurrency == 2
    assert (final.started, final.completed, final.failed) == (200, 200, 0)
    await assert_no_tasks_left()


async def test_an_explicit_concurrency_wins_over_the_executors_preference() -> None:
    with _Preferring(6) as ex:
        s = Stream(range(60)).map(_sleepy, executor=ex, concurrency=3, name="w")
        async with s.open() as it:
            out = [y async for y in it]
            snap = it.stages["w"]
    assert out == list(range(60))
    assert snap.concurrency == 3 and snap.max_in_flight <= 3


async def test_an_executor_without_a_preference_runs_one_call_at_a_time() -> None:
    with ThreadPoolExecutor(max_workers=4) as ex:
        s = Stream(range(20)).map(_sleepy, executor=ex, name="w")
        async with s.open() as it:
            out = [y async for y in it]
            snap = it.stages["w"]
    assert out == list(range(20))
    assert snap.concurrency == 1 and snap.max_in_flight == 1 and snap.tasks is None


async def test_a_preferred_concurrency_that_is_not_a_count_is_named() -> None:
    from streamnb import ArgumentTypeError, InvalidArgumentError

    with _Preferring("many") as ex:
        with pytest.raises(ArgumentTypeError, match=r"executor\.preferred_concurrency='many'"):
            await Stream(range(5)).map(_sleepy, executor=ex, name="w").collect()
    # a figure that goes bad during the run ends the stage after the items pulled so far
    with _Preferring(2) as ex:
        s = Stream(range(50)).map(_sleepy, executor=ex, name="w")
        got: list[int] = []
        with pytest.raises(InvalidArgumentError, match=r"w\(executor\.preferred_concurrency=0\)"):
            async with s.open() as it:
                async for y in it:
                    got.append(y)
                    if y == 10:
                        ex.preferred_concurrency = 0
    assert got[:11] == list(range(11)) and got == list(range(len(got))) and len(got) < 50
    await assert_no_tasks_left()


@pytest.mark.parametrize("ordered", [True, False])
async def test_a_stop_iteration_in_an_executor_fails_its_item_instead_of_hanging(
    ordered: bool,
) -> None:
    """asyncio cannot put a StopIteration into a future: the call never completed."""

    def pick(x: int) -> int:
        if x == 3:
            raise StopIteration("no more")
        return x

    with ThreadPoolExecutor(max_workers=2) as ex:
        s = Stream(range(6)).map(pick, executor=ex, concurrency=2, ordered=ordered)
        with pytest.raises(RuntimeError, match="raised StopIteration") as info:
            async with asyncio.timeout(5):
                await s.collect()
        assert any("item #3" in note for note in getattr(info.value, "__notes__", []))
        skipped: DeadLetter[int] = DeadLetter()
        kept = Stream(range(6)).map(
            pick, executor=ex, concurrency=2, ordered=ordered, on_error="skip", dead_letter=skipped
        )
        async with asyncio.timeout(5):
            got = await kept.collect()
        assert sorted(got) == [0, 1, 2, 4, 5] and [e.index for e in skipped.entries] == [3]

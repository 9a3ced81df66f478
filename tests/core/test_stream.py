"""Every operator and terminal of :class:`streamnb.Stream`: values, order, cleanup, errors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from streamnb import (
    CircuitBreaker,
    CircuitOpenError,
    CollectLimitError,
    DeadLetter,
    EmptyStreamError,
    RetryExhaustedError,
    RetryPolicy,
    Stream,
)

from ._support import Endless, Resource, SyncTracked, Tracked, assert_no_tasks_left, settle

NO_WAIT = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0)


def _state(cb: CircuitBreaker) -> str:
    """The breaker's state as a plain str (so checks after transitions type-check)."""
    return cb.state


async def _agen(items: list[int]) -> AsyncGenerator[int, None]:
    for x in items:
        yield x


# -- sources ---------------------------------------------------------------------------------
async def test_sources_of_every_kind() -> None:
    assert await Stream([1, 2]).collect() == [1, 2]
    assert await Stream(range(3)).collect() == [0, 1, 2]
    assert await Stream(lambda: iter([4, 5])).collect() == [4, 5]
    assert await Stream(lambda: _agen([6])).collect() == [6]
    assert await Stream(_agen([7, 8])).collect() == [7, 8]
    assert await Stream(Stream([9])).collect() == [9]


def test_bad_source_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="Stream"):
        Stream(42)  # type: ignore[arg-type]


async def test_factory_returning_non_iterable_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="factory"):
        await Stream(lambda: 42).collect()  # type: ignore[arg-type,return-value]


async def test_stream_is_lazy_until_iterated() -> None:
    src = Tracked(range(5))
    s = Stream(src).map(lambda x: x + 1).filter(bool).take(2)
    assert src.started == 0
    assert await s.collect() == [1, 2]
    assert src.started == 1


def test_repr_lists_the_stages() -> None:
    r = repr(Stream([1]).take(3).buffer(2))
    assert r.startswith("Stream(source") and "take(3)" in r and "buffer(2" in r


async def test_sync_generator_source_closed_on_break() -> None:
    src = SyncTracked(range(100))
    async with Stream(src).map(lambda x: x).open() as it:
        async for x in it:
            if x == 3:
                break
    assert src.finalized == 1
    assert src.pulled == 4


# -- map -------------------------------------------------------------------------------------
async def test_map_sync_and_async() -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    assert await Stream(range(5)).map(lambda x: x + 1).collect() == [1, 2, 3, 4, 5]
    assert await Stream(range(5)).map(double).collect() == [0, 2, 4, 6, 8]


async def test_map_with_async_callable_object() -> None:
    class Adder:
        async def __call__(self, x: int) -> int:
            return x + 10

    assert await Stream([1, 2]).map(Adder()).collect() == [11, 12]


async def test_map_concurrent_ordered_keeps_input_order() -> None:
    async def slow_first(x: int) -> int:
        for _ in range(20 - x):  # earlier items take more loop turns: they finish last
            await asyncio.sleep(0)
        return x * 10

    got = await Stream(range(20)).map(slow_first, concurrency=5).collect()
    assert got == [x * 10 for x in range(20)]


async def test_map_concurrent_unordered_yields_as_completed() -> None:
    release = asyncio.Event()

    async def fn(x: int) -> int:
        if x == 0:
            await release.wait()  # item 0 finishes only after item 1 was delivered
        return x

    got = []
    async with Stream(range(4)).map(fn, concurrency=2, ordered=False).open() as it:
        async for y in it:
            got.append(y)
            release.set()
    assert got[0] != 0
    assert sorted(got) == [0, 1, 2, 3]


async def test_map_executor_runs_in_threads() -> None:
    main = threading.get_ident()
    seen: set[int] = set()

    def work(x: int) -> int:
        seen.add(threading.get_ident())
        return x * x

    with ThreadPoolExecutor(max_workers=3) as pool:
        got = await Stream(range(30)).map(work, executor=pool, concurrency=3).collect()
        got1 = await Stream(range(5)).map(work, executor=pool).collect()
    assert got == [x * x for x in range(30)]
    assert got1 == [x * x for x in range(5)]
    assert seen and main not in seen


async def test_map_error_note_names_stage_and_index() -> None:
    def boom(x: int) -> int:
        if x == 3:
            raise ZeroDivisionError("nope")
        return x

    got: list[int] = []
    with pytest.raises(ZeroDivisionError) as info:
        async with Stream(range(10)).map(boom).open() as it:
            async for y in it:
                got.append(y)
    assert got == [0, 1, 2]
    notes = " ".join(info.value.__notes__)
    assert "boom" in notes and "item #3" in notes


async def test_async_map_error_note_names_stage_and_index() -> None:
    async def boom(x: int) -> int:
        if x == 2:
            raise LookupError("missing")
        return x

    with pytest.raises(LookupError) as info:
        await Stream(range(5)).map(boom, concurrency=3).collect()
    notes = " ".join(info.value.__notes__)
    assert "boom" in notes and "item #2" in notes


async def test_map_on_error_skip_dead_letter_per_run() -> None:
    s = Stream(["1", "x", "3", "y"]).map(int, on_error="skip", name="parse")
    async with s.open() as it:
        got = [v async for v in it]
        dl = it.dead_letters["parse"]
    assert got == [1, 3]
    assert dl.count == 2
    assert [(e.stage, e.index, e.item) for e in dl.entries] == [
        ("parse", 1, "x"),
        ("parse", 3, "y"),
    ]
    # a second run gets a fresh dead-letter sink
    async with s.open() as it2:
        _ = [v async for v in it2]
        assert it2.dead_letters["parse"] is not dl
        assert it2.dead_letters["parse"].count == 2


async def test_map_on_error_skip_concurrent_async() -> None:
    dl: DeadLetter[int] = DeadLetter()

    async def half(x: int) -> int:
        await asyncio.sleep(0)
        if x % 2:
            raise ValueError(x)
        return x

    got = (
        await Stream(range(20)).map(half, concurrency=4, on_error="skip", dead_letter=dl).collect()
    )
    assert got == list(range(0, 20, 2))
    assert dl.count == 10
    assert sorted(e.item for e in dl.entries) == list(range(1, 20, 2))


async def test_map_on_error_retry_recovers_transient_failures() -> None:
    fails = {2: 2, 5: 1}  # item -> failures before success

    def flaky(x: int) -> int:
        if fails.get(x, 0) > 0:
            fails[x] -= 1
            raise ConnectionError("transient")
        return x

    got = await Stream(range(8)).map(flaky, on_error="retry", retry=NO_WAIT).collect()
    assert got == list(range(8))

    async def aflaky(x: int) -> int:
        return flaky(x)

    fails.update({1: 2})
    got = await Stream(range(4)).map(aflaky, on_error="retry", retry=NO_WAIT).collect()
    assert got == list(range(4))


async def test_map_on_error_retry_exhausted() -> None:
    calls = 0

    def always(x: int) -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    with pytest.raises(RetryExhaustedError, match="item #0") as info:
        await Stream([1]).map(always, on_error="retry", retry=NO_WAIT).collect()
    assert isinstance(info.value.__cause__, ConnectionError)
    assert calls == NO_WAIT.max_attempts


async def test_map_with_breaker_fails_fast_once_open() -> None:
    now = [0.0]
    cb = CircuitBreaker(failure_threshold=2, reset_timeout=10.0, clock=lambda: now[0])
    calls = 0

    def down(x: int) -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("service down")

    dl: DeadLetter[int] = DeadLetter()
    got = await Stream(range(6)).map(down, on_error="skip", dead_letter=dl, breaker=cb).collect()
    assert got == []
    assert calls == 2  # then the breaker refused the remaining calls
    assert _state(cb) == "open"
    kinds = [type(e.error) for e in dl.entries]
    assert kinds == [ConnectionError] * 2 + [CircuitOpenError] * 4

    async def up(x: int) -> int:
        return x

    now[0] = 11.0  # past the reset timeout: one trial passes and closes it
    assert await Stream([1, 2]).map(up, breaker=cb).collect() == [1, 2]
    assert _state(cb) == "closed"


# -- filter, flat_map, tap, enumerate, scan ------------------------------------------------------
async def test_filter_sync_and_async() -> None:
    async def odd(x: int) -> bool:
        return bool(x % 2)

    assert await Stream(range(10)).filter(lambda x: x > 6).collect() == [7, 8, 9]
    assert await Stream(range(6)).filter(odd).collect() == [1, 3, 5]


async def test_flat_map_iterables_async_iterables_streams() -> None:
    assert await Stream([1, 2]).flat_map(lambda x: [x] * x).collect() == [1, 2, 2]
    assert await Stream([2, 1]).flat_map(lambda x: _agen(list(range(x)))).collect() == [0, 1, 0]
    assert await Stream([1, 3]).flat_map(lambda x: Stream(range(x))).collect() == [0, 0, 1, 2]

    async def expand(x: int) -> list[int]:
        return [x, -x]

    assert await Stream([1, 2]).flat_map(expand).collect() == [1, -1, 2, -2]
    assert await Stream([1, 2]).flat_map(lambda x: []).collect() == []


async def test_flat_map_closes_inner_iterators_on_take() -> None:
    inners: list[Tracked] = []

    def expand(x: int) -> AsyncIterator[int]:
        t = Tracked(range(x, x + 10))
        inners.append(t)
        return t()

    assert await Stream(range(5)).flat_map(expand).take(3).collect() == [0, 1, 2]
    assert len(inners) == 1 and inners[0].finalized == 1 and inners[0].pulled == 3


async def test_flat_map_error_names_stage() -> None:
    def bad(x: int) -> list[int]:
        raise TypeError("not iterable")

    with pytest.raises(TypeError) as info:
        await Stream([5]).flat_map(bad).collect()
    assert any("flat_map" in n and "item #0" in n for n in info.value.__notes__)


async def test_tap_sees_every_item_and_passes_it_on() -> None:
    seen: list[int] = []

    async def atap(x: int) -> None:
        seen.append(-x)

    got = await Stream(range(4)).tap(seen.append).tap(atap).collect()
    assert got == [0, 1, 2, 3]
    assert seen == [0, 0, 1, -1, 2, -2, 3, -3]


async def test_enumerate_and_scan() -> None:
    assert await Stream("ab").enumerate().collect() == [(0, "a"), (1, "b")]
    assert await Stream("ab").enumerate(10).collect() == [(10, "a"), (11, "b")]
    assert await Stream([1, 2, 3]).scan(lambda a, x: a + x, 100).collect() == [101, 103, 106]
    assert await Stream([]).scan(lambda a, x: a + x, 0).collect() == []
    empty: list[int] = []
    s = Stream([1, 2]).scan(lambda a, x: [*a, x], empty)
    assert await s.collect() == [[1], [1, 2]]
    assert await s.collect() == [[1], [1, 2]]  # no state carried between runs


# -- select ----------------------------------------------------------------------------------
async def test_take_zero_pulls_nothing() -> None:
    src = Tracked(range(5))
    assert await Stream(src).take(0).collect() == []
    assert src.pulled == 0


async def test_take_more_than_available() -> None:
    src = Tracked(range(3))
    assert await Stream(src).take(10).collect() == [0, 1, 2]
    assert src.finalized == 1


async def test_take_after_filter_pulls_only_what_is_needed() -> None:
    src = Tracked(range(100))
    assert await Stream(src).filter(lambda x: x % 3 == 0).take(3).collect() == [0, 3, 6]
    assert src.pulled == 7


async def test_skip_take_while_sample() -> None:
    assert await Stream(range(6)).skip(4).collect() == [4, 5]
    assert await Stream(range(3)).skip(0).collect() == [0, 1, 2]
    assert await Stream(range(3)).skip(9).collect() == []
    src = Tracked([1, 2, 5, 1, 1])
    assert await Stream(src).take_while(lambda x: x < 3).collect() == [1, 2]
    assert src.finalized == 1 and src.pulled == 3
    assert await Stream(range(10)).sample(every=3).collect() == [0, 3, 6, 9]
    assert await Stream(range(3)).sample(every=1).collect() == [0, 1, 2]


async def test_async_take_while() -> None:
    async def small(x: int) -> bool:
        return x < 2

    assert await Stream(range(5)).take_while(small).collect() == [0, 1]


async def test_throttle_keeps_values_and_order_and_slows_down() -> None:
    t0 = time.monotonic()
    got = await Stream(range(11)).throttle(200.0).collect()
    elapsed = time.monotonic() - t0
    assert got == list(range(11))
    assert elapsed >= 10 / 200 * 0.9  # a gross lower bound: sleeps are never shorter


# -- batch -----------------------------------------------------------------------------------
async def test_batch_by_size_with_partial_tail() -> None:
    assert await Stream(range(7)).batch(3).collect() == [[0, 1, 2], [3, 4, 5], [6]]
    assert await Stream(range(6)).batch(3).collect() == [[0, 1, 2], [3, 4, 5]]
    assert await Stream([]).batch(3).collect() == []
    chunks = await Stream(range(4)).batch(2).collect()
    assert chunks[0] is not chunks[1]  # a fresh list per chunk


async def test_batch_within_emits_partial_chunk_when_source_pauses() -> None:
    src = Tracked(range(9), gate_at=2)
    got: list[list[int]] = []
    async with Stream(src).batch(5, within=0.05).open() as it:
        async for chunk in it:
            got.append(chunk)
            if len(got) == 1:
                # the first chunk came while the source is parked before item 2
                assert src.parked.is_set() and not src.gate.is_set()
                src.gate.set()
    assert got == [[0, 1], [2, 3, 4, 5, 6], [7, 8]]


async def test_batch_within_fast_source_cuts_by_size() -> None:
    got = await Stream(range(10)).batch(4, within=60.0).collect()
    assert got == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


async def test_batch_within_propagates_source_error_after_partial_chunk() -> None:
    src = Tracked(range(5), fail_at=3, exc=RuntimeError("mid-chunk"))
    got: list[list[int]] = []
    with pytest.raises(RuntimeError, match="mid-chunk"):
        async with Stream(src).batch(10, within=60.0).open() as it:
            async for chunk in it:
                got.append(chunk)
    assert got == [[0, 1, 2]]
    await assert_no_tasks_left()


# -- combine ---------------------------------------------------------------------------------
async def test_merge_interleaves_all_and_closes_all() -> None:
    a, b, c = Tracked(range(0, 50)), Tracked(range(100, 130)), Tracked([])
    got = await Stream(a).merge(Stream(b), Stream(c)).collect()
    assert sorted(got) == list(range(50)) + list(range(100, 130))
    # each input's own order is preserved
    assert [x for x in got if x < 100] == list(range(50))
    assert [x for x in got if x >= 100] == list(range(100, 130))
    assert a.finalized == b.finalized == c.finalized == 1


async def test_merge_accepts_plain_iterables() -> None:
    got = await Stream([1]).merge([2], _agen([3])).collect()  # type: ignore[arg-type]
    assert sorted(got) == [1, 2, 3]


async def test_merge_failure_stops_the_others() -> None:
    bad = Tracked(range(3), fail_at=2, exc=ConnectionAbortedError("x"))
    endless = Endless()
    with pytest.raises(ConnectionAbortedError):
        # take() only bounds the run if the failure never surfaces (a starved producer)
        await Stream(endless).merge(Stream(bad)).take(100_000).collect(limit=None)
    assert endless.finalized == 1 and bad.finalized == 1
    await assert_no_tasks_left()


async def test_merge_is_fair_to_a_slow_starter() -> None:
    async def endless() -> AsyncGenerator[str, None]:
        while True:
            yield "e"

    got = await Stream(endless).merge(Stream(["f1", "f2", "f3"])).take(5000).collect()
    assert [x for x in got if x != "e"] == ["f1", "f2", "f3"]


async def test_merge_failure_closes_every_opened_source() -> None:
    # a source that is a resource (an open call) must be closed even when the merge fails
    # before its producer task got to run; a factory may instead never be opened at all
    for direct in (False, True):
        bad = Tracked(range(3), fail_at=2, exc=ConnectionAbortedError("x"))
        res = Resource(limit=None)
        other = Stream(res()) if direct else Stream(res)
        with pytest.raises(ConnectionAbortedError):
            await Stream(bad).merge(other).collect(limit=None)
        assert res.opened == res.closed
        if direct:
            assert res.opened == 1
        await assert_no_tasks_left()


async def test_zip_until_shortest_and_closes_all() -> None:
    a, b = Tracked(range(5)), Tracked("xyz")
    endless = Endless()
    got = await Stream(a).zip(Stream(b), Stream(endless)).collect()
    assert got == [(0, "x", 0), (1, "y", 1), (2, "z", 2)]
    assert a.finalized == b.finalized == endless.finalized == 1


# -- window ----------------------------------------------------------------------------------
async def test_window_keeps_the_last_items() -> None:
    s = Stream(range(10)).window(last=3, name="recent")
    async with s.open() as it:
        assert [x async for x in it] == list(range(10))
        assert it.windows["recent"].items() == [7, 8, 9]


# -- terminals -------------------------------------------------------------------------------
async def test_collect_limit_semantics() -> None:
    assert await Stream(range(5)).collect(limit=5) == list(range(5))
    src = Tracked(range(100))
    with pytest.raises(CollectLimitError, match=r"collect\(limit=5\)"):
        await Stream(src).collect(limit=5)
    assert src.pulled == 6 and src.finalized == 1
    assert len(await Stream(range(20_000)).collect(limit=None)) == 20_000
    with pytest.raises(CollectLimitError, match="limit=None"):
        await Stream(range(10_001)).collect()  # the default bound
    assert len(await Stream(range(10_000)).collect()) == 10_000


async def test_first_pulls_one_and_empty_raises() -> None:
    src = Tracked(range(10))
    assert await Stream(src).first() == 0
    assert src.pulled == 1 and src.finalized == 1
    with pytest.raises(EmptyStreamError, match="first"):
        await Stream([]).first()
    maybe: list[int | None] = [None, 1]
    assert await Stream(maybe).first() is None


async def test_count_and_reduce() -> None:
    assert await Stream(range(1234)).count() == 1234
    assert await Stream([]).count() == 0
    assert await Stream(range(5)).reduce(lambda a, x: a * 10 + x, 0) == 1234
    assert await Stream([]).reduce(lambda a, x: a + x, "init") == "init"


async def test_for_each_with_concurrency_bound() -> None:
    in_flight = peak = 0
    done: list[int] = []

    async def work(x: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await settle(3)
        in_flight -= 1
        done.append(x)

    n = await Stream(range(40)).for_each(work, concurrency=4)
    assert n == 40
    assert sorted(done) == list(range(40))
    assert peak == 4


async def test_for_each_sync_and_skip_policy() -> None:
    seen: list[int] = []
    assert await Stream(range(3)).for_each(seen.append) == 3
    assert seen == [0, 1, 2]
    dl: DeadLetter[int] = DeadLetter()

    def picky(x: int) -> None:
        if x == 1:
            raise ValueError("no ones")

    assert await Stream(range(3)).for_each(picky, on_error="skip", dead_letter=dl) == 2
    assert dl.count == 1 and dl.entries[0].item == 1


async def test_for_each_raises_by_default() -> None:
    def picky(x: int) -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await Stream(range(3)).for_each(picky)


# -- iteration and cleanup ---------------------------------------------------------------------
async def test_open_closes_upstream_on_break() -> None:
    src = Tracked(range(100))
    async with Stream(src).map(lambda x: x).buffer(4).map(lambda x: x).open() as it:
        async for x in it:
            if x == 2:
                break
    assert src.finalized == 1  # deterministic: closed by the end of the async with
    await assert_no_tasks_left()


async def test_open_closes_upstream_on_exception_in_body() -> None:
    src = Tracked(range(100))
    with pytest.raises(KeyError):
        async with Stream(src).filter(bool).open() as it:
            async for _ in it:
                raise KeyError("consumer bug")
    assert src.finalized == 1


async def test_iteration_requires_async_with() -> None:
    it = Stream([1]).open()
    with pytest.raises(RuntimeError, match="async with"):
        it.__aiter__()


async def test_iteration_anext() -> None:
    async with Stream([1, 2]).open() as it:
        assert await it.__anext__() == 1
        assert await it.__anext__() == 2
        with pytest.raises(StopAsyncIteration):
            await it.__anext__()


async def test_plain_async_for_runs_to_completion() -> None:
    src = Tracked(range(4))
    assert [x async for x in Stream(src).map(lambda x: -x)] == [0, -1, -2, -3]
    assert src.finalized == 1


async def test_duplicate_stage_names_are_rejected() -> None:
    s = Stream([1]).monitor("m").monitor("m")
    with pytest.raises(ValueError, match="'m'"):
        await s.collect()


# -- argument validation ------------------------------------------------------------------------
async def _async_id(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("make", "method"),
    [
        (lambda s: s.take(-1), "take"),
        (lambda s: s.skip(-1), "skip"),
        (lambda s: s.sample(every=0), "sample"),
        (lambda s: s.throttle(0), "throttle"),
        (lambda s: s.batch(0), "batch"),
        (lambda s: s.batch(3, within=0), "batch"),
        (lambda s: s.buffer(0), "buffer"),
        (lambda s: s.buffer(3, overflow="explode"), "buffer"),
        (lambda s: s.buffer(3, put_timeout=0), "put_timeout"),
        (lambda s: s.map(str, concurrency=0), "map"),
        (lambda s: s.map(str, concurrency=2), "map"),
        (lambda s: s.map(_async_id, executor=ThreadPoolExecutor(1)), "map"),
        (lambda s: s.map(str, on_error="ignore"), "on_error"),
        (lambda s: s.window(), "window"),
    ],
)
def test_bad_arguments_are_clear_value_errors(make: object, method: str) -> None:
    with pytest.raises(ValueError, match=method):
        make(Stream([1]))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: DeadLetter(maxlen=0), "DeadLetter"),
        (lambda: RetryPolicy(max_attempts=0), "RetryPolicy"),
        (lambda: RetryPolicy(multiplier=0.5), "RetryPolicy"),
        (lambda: CircuitBreaker(failure_threshold=0), "CircuitBreaker"),
    ],
)
def test_bad_recovery_arguments(make: object, what: str) -> None:
    with pytest.raises(ValueError, match=what):
        make()  # type: ignore[operator]


async def test_bad_terminal_arguments_name_the_method() -> None:
    with pytest.raises(ValueError, match=r"collect\(limit=-1\)"):
        await Stream([1]).collect(limit=-1)
    with pytest.raises(ValueError, match="for_each"):
        await Stream([1]).for_each(print, concurrency=0)
    with pytest.raises(ValueError, match="for_each"):
        await Stream([1]).for_each(print, on_error="bad")  # type: ignore[arg-type]


def test_bad_definition_arguments_fail_at_definition_naming_the_method() -> None:
    # caught where the pipeline is written, not later when it runs
    with pytest.raises(ValueError, match="merge"):
        Stream([1]).merge(Stream([2]), buffer=0)
    with pytest.raises((TypeError, ValueError), match="take"):
        Stream([1, 2, 3]).take(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CircuitBreaker"):
        CircuitBreaker(reset_timeout=-1.0)


async def test_zip_failure_closes_every_input() -> None:
    a = Tracked(range(10))
    bad = Tracked(range(10), fail_at=2, exc=ConnectionResetError("gone"))
    got: list[tuple[int, ...]] = []
    with pytest.raises(ConnectionResetError):
        async with Stream(a).zip(Stream(bad)).open() as it:
            async for row in it:
                got.append(row)
    assert got == [(0, 0), (1, 1)]
    assert a.finalized == bad.finalized == 1


async def test_to_pandas_takes_the_first_items_and_closes() -> None:
    src = Tracked([{"a": i, "b": {"c": -i}} for i in range(100)])
    frame = await Stream(src).to_pandas(limit=3)
    assert list(frame["a"]) == [0, 1, 2]
    assert list(frame["b.c"]) == [0, -1, -2]
    assert src.pulled == 3 and src.finalized == 1


async def test_take_while_then_batch_emits_the_partial_chunk() -> None:
    # regression: take_while ended the fused run with `return`, skipping the batch's tail
    src = Tracked(range(10))
    assert await Stream(src).take_while(lambda x: x < 5).batch(3).collect() == [[0, 1, 2], [3, 4]]
    assert src.finalized == 1


def test_run_options_are_the_runner_keywords_written_once() -> None:
    # Stream.run/start/run_sync and the notebook runner's run/start/run_sync/Run all take
    # **options: Unpack[RunOptions] - the same TypedDict, so the lists cannot drift apart
    import inspect

    from streamnb.notebook import runner
    from streamnb.stream import RunOptions, Stream

    assert runner.RUN_OPTION_NAMES == set(RunOptions.__annotations__)
    for fn in (runner.run, runner.start, runner.run_sync, runner.Run, Stream.run, Stream.start):
        params = list(inspect.signature(fn).parameters.values())
        var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
        assert [p.name for p in var_kw] == ["options"], fn.__name__
        assert "Unpack[RunOptions]" in str(var_kw[0].annotation), fn.__name__
        assert not [p for p in params if p.kind is p.KEYWORD_ONLY], fn.__name__

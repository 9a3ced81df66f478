"""``buffer(size, overflow=...)``: real backpressure, drop policies, errors, stats, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator

import pytest

from streamnb import BufferOverflowError, BufferTimeoutError, Stream

from ._support import Endless, Tracked, assert_no_tasks_left, settle


def _is_subsequence(sub: list[int], seq: list[int]) -> bool:
    it = iter(seq)
    return all(x in it for x in sub)


@pytest.mark.parametrize("size", [1, 3, 8])
async def test_block_mode_producer_never_more_than_size_plus_one_ahead(size: int) -> None:
    src = Tracked(range(60))
    consumed = 0
    max_lead = 0
    async with Stream(src).buffer(size, name="b").open() as it:
        async for x in it:
            assert x == consumed
            consumed += 1
            await settle()  # a slow consumer: the producer runs as far as it is allowed
            lead = src.pulled - consumed
            max_lead = max(max_lead, lead)
            assert lead <= size + 1, f"producer {lead} items ahead with buffer({size})"
        stats = it.buffers["b"]
    assert consumed == 60
    assert max_lead >= size  # the buffer really filled up: the bound was exercised
    assert stats.high_water == size
    assert stats.blocked_seconds > 0
    assert stats.dropped == 0 and stats.depth == 0 and stats.capacity == size


async def test_drop_oldest_keeps_the_newest() -> None:
    s = Stream(range(100)).buffer(3, "drop_oldest", name="b")
    async with s.open() as it:
        got = [x async for x in it]
        stats = it.buffers["b"]
    assert _is_subsequence(got, list(range(100)))
    assert got[-1] == 99  # the newest item is never the one dropped
    assert len(got) + stats.dropped == 100
    assert stats.dropped > 0
    assert stats.high_water == 3


async def test_drop_newest_keeps_the_oldest() -> None:
    s = Stream(range(100)).buffer(3, "drop_newest", name="b")
    async with s.open() as it:
        got = [x async for x in it]
        stats = it.buffers["b"]
    assert _is_subsequence(got, list(range(100)))
    assert got[0] == 0
    assert len(got) + stats.dropped == 100
    assert stats.dropped > 0


async def test_overflow_error_raises_after_accepted_items() -> None:
    got: list[int] = []
    with pytest.raises(BufferOverflowError, match=r"'b'.*full") as info:
        async with Stream(range(100)).buffer(4, "error", name="b").open() as it:
            async for x in it:
                got.append(x)
    assert got == list(range(len(got)))  # a prefix: nothing lost before the error
    assert len(got) >= 4
    assert "overflow" in str(info.value)


async def test_put_timeout_raises_buffer_timeout_error() -> None:
    src = Endless()
    got: list[int] = []
    with pytest.raises(BufferTimeoutError, match="put_timeout"):
        async with Stream(src).buffer(2, put_timeout=0.02, name="b").open() as it:
            async for x in it:
                got.append(x)
                if x == 0:
                    # a consumer that stops taking items for far longer than put_timeout
                    await asyncio.sleep(0.2)
    assert got == list(range(len(got)))
    assert src.finalized == 1
    await assert_no_tasks_left()


async def test_none_items_and_falsy_items_pass_through() -> None:
    items: list[object] = [None, 0, "", None, [], False]
    assert await Stream(items).buffer(2).collect() == items


async def test_stats_are_live_while_running() -> None:
    src = Tracked(range(10), gate_at=5)
    async with Stream(src).buffer(8, name="live").open() as it:
        first = await it.__anext__()
        await src.parked.wait()
        stats = it.buffers["live"]
        assert first == 0
        assert stats.depth == 4  # items 1..4 wait while the source is parked
        assert stats.as_dict()["depth"] == 4
        assert "live" in repr(stats)
        src.gate.set()
        rest = [x async for x in it]
    assert rest == list(range(1, 10))


async def test_several_buffers_get_distinct_default_names() -> None:
    s = Stream(range(5)).buffer(2).map(lambda x: x).buffer(3)
    async with s.open() as it:
        assert [x async for x in it] == list(range(5))
        assert sorted(it.buffers) == ["buffer1", "buffer2"]
        assert it.buffers["buffer2"].capacity == 3


async def test_consumer_error_stops_producer() -> None:
    src = Endless()
    with pytest.raises(ZeroDivisionError):
        async with Stream(src).buffer(3).open() as it:
            async for x in it:
                if x == 5:
                    raise ZeroDivisionError
    assert src.finalized == 1
    await assert_no_tasks_left()


async def test_cancelling_consumer_of_full_buffer_stops_everything() -> None:
    src = Endless()
    reading = asyncio.Event()

    async def consume() -> None:
        async with Stream(src).buffer(4).open() as it:
            async for _ in it:
                reading.set()
                await asyncio.Event().wait()  # a consumer stuck forever, buffer full

    task = asyncio.create_task(consume())
    await reading.wait()
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert src.finalized == 1
    await assert_no_tasks_left()


async def test_buffer_producer_error_with_sync_source_annotated() -> None:
    def gen() -> Iterator[int]:
        yield 1
        raise IndexError("sync source failed")

    got: list[object] = []
    with pytest.raises(IndexError):
        async with Stream(gen).buffer(2).open() as it:
            async for x in it:
                got.append(x)
    assert got == [1]


async def test_buffer_then_operators_fuse_correctly() -> None:
    async def agen() -> AsyncGenerator[int, None]:
        for i in range(50):
            yield i

    s = Stream(agen).map(lambda x: x + 1).buffer(5).filter(lambda x: x % 2 == 0).batch(4)
    got = await s.collect()
    evens = [x + 1 for x in range(50) if (x + 1) % 2 == 0]
    assert got == [evens[i : i + 4] for i in range(0, len(evens), 4)]

"""``streamnb.running_tasks()``: the tasks still running streamnb code (a notebook's leak check)."""

from __future__ import annotations

import asyncio

import pytest

import streamnb
from streamnb import Stream, UsageError, running_tasks


async def _ticks():  # an endless source
    i = 0
    while True:
        yield i
        i += 1
        await asyncio.sleep(0)


async def test_lists_a_buffer_producer_while_open_and_nothing_after_close() -> None:
    assert running_tasks() == []
    async with Stream(_ticks).buffer(8).open() as it:
        async for x in it:
            if x == 3:
                break
        live = running_tasks()
        assert len(live) == 1, live
        assert live[0].get_coro().cr_code.co_name == "_pump"  # type: ignore[union-attr]
    assert running_tasks() == []


async def test_lists_concurrent_workers_and_a_started_run_until_stopped() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.001)
        return x

    handle = Stream(_ticks).map(slow, concurrency=3).start(name="tasks-test", display=False)
    for _ in range(200):
        await asyncio.sleep(0.001)
        if handle.items > 5:
            break
    names = sorted(t.get_coro().cr_code.co_name for t in running_tasks())  # type: ignore[union-attr]
    assert sum(n.endswith("worker") for n in names) == 3, names  # the map's workers
    assert "_main" in names, names
    handle.stop()
    await handle.wait()
    await asyncio.sleep(0)
    assert running_tasks() == []


async def test_ignores_tasks_that_are_not_streamnb_code() -> None:
    other = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    try:
        assert other not in running_tasks()
        assert running_tasks() == []
    finally:
        other.cancel()


def test_with_an_explicit_loop_and_without_a_running_loop() -> None:
    with pytest.raises(UsageError, match="needs a running event loop"):
        running_tasks()
    loop = asyncio.new_event_loop()
    try:

        async def main() -> None:
            it = Stream(_ticks).buffer(4).open()
            await it.__aenter__()
            await it.__anext__()
            assert len(running_tasks(loop)) == 1
            await it.__aexit__(None, None, None)

        loop.run_until_complete(main())
        assert running_tasks(loop) == []
    finally:
        loop.close()


def test_is_public() -> None:
    assert "running_tasks" in streamnb.__all__

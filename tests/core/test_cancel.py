"""``streamnb._cancel``: a stray CancelledError told from a real one; children stopped for good."""

from __future__ import annotations

import asyncio

import pytest

from streamnb import StrayCancelledError
from streamnb._cancel import cancel_and_wait, is_stray, stray_error


async def test_a_cancelled_future_awaited_is_stray_a_cancelled_task_is_not() -> None:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.cancel()
    with pytest.raises(asyncio.CancelledError) as info:
        await fut
    assert is_stray(info.value)

    seen: list[bool] = []

    async def victim() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError as exc:
            seen.append(is_stray(exc))
            raise

    task = asyncio.create_task(victim())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task])
    assert seen == [False]
    assert not is_stray(ValueError("not a cancellation"))


async def test_a_timeout_is_a_real_cancellation() -> None:
    seen: list[bool] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.001):
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError as exc:
                seen.append(is_stray(exc))
                raise
    assert seen == [False]


def test_stray_error_names_stage_index_and_item() -> None:
    err = stray_error("map(fetch)", asyncio.CancelledError(), index=3, item={"id": 7})
    assert isinstance(err, StrayCancelledError)
    assert "map(fetch)" in str(err) and "item #3" in str(err) and "{'id': 7}" in str(err)


async def test_cancel_and_wait_outlasts_a_second_cancellation() -> None:
    finished = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            try:
                await asyncio.sleep(0.05)
            finally:
                finished.set()

    child = asyncio.create_task(slow_cleanup())
    await asyncio.sleep(0)

    async def parent() -> None:
        await cancel_and_wait([child])

    p = asyncio.create_task(parent())
    await asyncio.sleep(0.01)  # the child's finally is sleeping now
    p.cancel()  # the parent is cancelled while it waits for the child
    with pytest.raises(asyncio.CancelledError):
        await p
    assert child.done() and finished.is_set()  # nothing was left running


async def test_cancel_and_wait_of_nothing_and_of_finished_tasks() -> None:
    await cancel_and_wait([])
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait([done])
    assert done.done() and not done.cancelled()

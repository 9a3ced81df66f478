"""Recovery under failure (issue 11, items 1 and 9): a cancelled half-open trial never blocks
a circuit breaker, and an item whose ``__repr__`` raises never masks the user's error.

Both failed before the fix: the breaker stayed "open ... next trial in 0.00 s" forever, and
the note-building replaced the user's exception with the ``__repr__``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from streamnb import CircuitBreaker, CircuitOpenError, Stream

from ._support import ManualClock, assert_no_tasks_left, opened_breaker

BOUND = 5.0  # seconds: a hang fails the test instead of the suite


# 1 -- a cancelled half-open trial must not block the breaker forever --------------------------
async def test_item1_map_breaker_trial_cancelled_by_timeout_frees_the_trial() -> None:
    cb, _ = opened_breaker()

    async def hangs(x: int) -> int:
        await asyncio.Event().wait()
        return x

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await Stream([1]).map(hangs, breaker=cb).collect()

    async def ok(x: int) -> int:
        return x * 10

    # the trial slot is free again: the next call is the new trial, and it closes the circuit
    assert await Stream([2]).map(ok, breaker=cb).collect() == [20]
    assert cb.state == "closed"


async def test_item1_map_breaker_trial_cancelled_by_break_frees_the_trial() -> None:
    cb, _ = opened_breaker()
    started = asyncio.Event()

    async def hangs(x: int) -> int:
        started.set()
        await asyncio.Event().wait()
        return x

    # the trial runs in the merge's producer task while the consumer gets the other branch
    s = Stream([1]).map(hangs, breaker=cb).merge(Stream([0]))
    async with asyncio.timeout(BOUND), s.open() as it:
        async for x in it:
            assert x == 0
            await started.wait()
            break
    assert cb.state == "half_open"
    cb.before_call()  # does not raise: the cancelled trial gave its slot back
    cb.record_success()
    assert cb.state == "closed"
    await assert_no_tasks_left()


async def test_item1_concurrent_map_breaker_trial_cancelled_frees_the_trial() -> None:
    cb, _ = opened_breaker()

    async def hangs(x: int) -> int:
        await asyncio.Event().wait()
        return x

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await Stream([1]).map(hangs, breaker=cb, concurrency=2).collect()
    cb.before_call()
    cb.record_success()
    assert cb.state == "closed"


def test_item1_call_sync_interrupted_trial_frees_the_trial() -> None:
    cb, _ = opened_breaker()

    def interrupted(x: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cb.call_sync(interrupted, 1)
    assert cb.state == "half_open"
    assert cb.call_sync(lambda x: x + 1, 1) == 2
    assert cb.state == "closed"


async def test_item1_an_old_call_cancelled_does_not_free_the_current_trial() -> None:
    # a call that began while the circuit was closed and is cancelled during someone else's
    # trial must not hand out a second trial slot
    clock = ManualClock()
    cb = CircuitBreaker(failure_threshold=1, reset_timeout=10.0, clock=clock)
    old_started, trial_started = asyncio.Event(), asyncio.Event()

    async def old_call(x: int) -> int:
        old_started.set()
        await asyncio.Event().wait()
        return x

    async def trial_call(x: int) -> int:
        trial_started.set()
        await asyncio.Event().wait()
        return x

    old = asyncio.create_task(cb.call(old_call, 1))
    await old_started.wait()
    cb.record_failure(RuntimeError("down"))
    clock.now += 11.0
    trial = asyncio.create_task(cb.call(trial_call, 2))
    await trial_started.wait()
    old.cancel()
    await asyncio.wait([old])
    with pytest.raises(CircuitOpenError):
        cb.before_call()  # the trial is still running: nobody else may call
    trial.cancel()
    await asyncio.wait([trial])
    cb.before_call()  # now it is free


# 9 -- an item whose __repr__ raises ------------------------------------------------------------
class BadRepr:
    def __repr__(self) -> str:
        raise ValueError("repr exploded")


def _boom(x: Any) -> Any:
    raise KeyError("the user's error")


@pytest.mark.parametrize(
    "build",
    [
        lambda s: s.map(_boom),
        lambda s: s.filter(_boom),
        lambda s: s.flat_map(_boom),
        lambda s: s.tap(_boom),
        lambda s: s.map(_boom, on_error="retry"),
    ],
    ids=["map", "filter", "flat_map", "tap", "map_retry"],
)
async def test_item9_a_raising_repr_never_masks_the_users_error(
    build: Callable[[Stream[Any]], Stream[Any]],
) -> None:
    with pytest.raises(KeyError, match="the user's error") as info:
        await build(Stream([BadRepr()])).collect()
    notes = "".join(getattr(info.value, "__notes__", []))
    assert "<BadRepr object at 0x" in notes
    assert "item #0" in notes


async def test_item9_concurrent_map_and_dead_letters_survive_a_raising_repr() -> None:
    async def aboom(x: Any) -> Any:
        raise KeyError("async user error")

    with pytest.raises(KeyError, match="async user error") as info:
        await Stream([BadRepr()]).map(aboom, concurrency=2).collect()
    assert "<BadRepr object at 0x" in "".join(info.value.__notes__)
    async with Stream([BadRepr(), BadRepr()]).map(_boom, on_error="skip").open() as it:
        assert [x async for x in it] == []
        (dl,) = it.dead_letters.values()
    assert dl.count == 2

"""Recovery: RetryPolicy, CircuitBreaker, DeadLetter and resilient sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterator

import pytest
import structlog

from streamnb import (
    CircuitBreaker,
    CircuitOpenError,
    DeadLetter,
    RetryExhaustedError,
    RetryPolicy,
    Stream,
    StreamnbError,
    default_retryable,
)

NO_WAIT = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0)


def _state(cb: CircuitBreaker) -> str:
    """The breaker's state as a plain str (so checks after transitions type-check)."""
    return cb.state


# -- RetryPolicy -----------------------------------------------------------------------------
def test_delay_grows_by_multiplier_until_cap() -> None:
    p = RetryPolicy(initial=0.5, multiplier=3.0, max_delay=10.0, jitter=False)
    assert [p.delay(a) for a in (1, 2, 3, 4)] == pytest.approx([0.5, 1.5, 4.5, 10.0])
    assert p.delay(50) == 10.0  # no overflow trouble far out


def test_jitter_stays_within_half_and_full_delay() -> None:
    p = RetryPolicy(initial=1.0, multiplier=2.0, max_delay=5.0)
    samples = [p.delay(4) for _ in range(300)]
    assert all(2.5 <= d <= 5.0 for d in samples)
    assert max(samples) - min(samples) > 0.5


def test_default_retryable() -> None:
    class Flagged(Exception):
        retryable = True

    assert default_retryable(ConnectionRefusedError())
    assert default_retryable(TimeoutError())
    assert default_retryable(Flagged())
    assert not default_retryable(ValueError())
    assert not default_retryable(KeyError())
    assert not default_retryable(StreamnbError())  # class attr retryable = False


# -- CircuitBreaker --------------------------------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _fail(x: int) -> int:
    raise ConnectionError("down")


def test_breaker_closed_open_half_open_closed() -> None:
    clock = _Clock()
    cb = CircuitBreaker(failure_threshold=3, reset_timeout=10.0, name="svc", clock=clock)
    transitions: list[tuple[str, str]] = []
    cb.listeners.append(lambda old, new: transitions.append((old, new)))
    assert _state(cb) == "closed"
    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call_sync(_fail, 0)
    assert _state(cb) == "closed" and cb.failures == 2
    assert cb.call_sync(lambda x: x + 1, 1) == 2  # success resets the consecutive count
    assert cb.failures == 0
    for _ in range(3):
        with pytest.raises(ConnectionError):
            cb.call_sync(_fail, 0)
    assert _state(cb) == "open" and cb.opened_count == 1
    with pytest.raises(CircuitOpenError, match="svc"):
        cb.call_sync(lambda x: x, 0)
    assert cb.rejected == 1
    clock.t = 9.9
    assert _state(cb) == "open"
    clock.t = 10.0
    assert _state(cb) == "half_open"
    assert cb.call_sync(lambda x: x, 5) == 5  # the trial succeeds
    assert _state(cb) == "closed"
    assert transitions == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


def test_breaker_failed_trial_reopens() -> None:
    clock = _Clock()
    cb = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        cb.call_sync(_fail, 0)
    clock.t = 1.5
    assert _state(cb) == "half_open"
    with pytest.raises(ConnectionError):
        cb.call_sync(_fail, 0)
    assert _state(cb) == "open" and cb.opened_count == 2
    clock.t = 2.0
    assert _state(cb) == "open"  # the reset timeout restarts from the reopening
    clock.t = 2.6
    assert _state(cb) == "half_open"


async def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = _Clock()
    cb = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    with pytest.raises(ConnectionError):
        cb.call_sync(_fail, 0)
    clock.t = 1.0
    trial_started = asyncio.Event()
    finish = asyncio.Event()

    async def slow(x: int) -> int:
        trial_started.set()
        await finish.wait()
        return x

    trial = asyncio.create_task(cb.call(slow, 1))
    await trial_started.wait()
    with pytest.raises(CircuitOpenError):
        await cb.call(slow, 2)  # a second call during the trial is refused
    finish.set()
    assert await trial == 1
    assert _state(cb) == "closed"


def test_breaker_counts_predicate() -> None:
    cb = CircuitBreaker(failure_threshold=1, counts=lambda e: isinstance(e, ConnectionError))

    def bad_input(x: int) -> int:
        raise ValueError("client error")

    for _ in range(5):
        with pytest.raises(ValueError):
            cb.call_sync(bad_input, 0)
    assert _state(cb) == "closed"  # client errors say nothing about the service's health


def test_breaker_logs_transitions() -> None:
    cb = CircuitBreaker(failure_threshold=1, reset_timeout=100.0, name="db")
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(ConnectionError):
            cb.call_sync(_fail, 0)
    events = [e for e in logs if e["event"] == "streamnb.circuit.state"]
    assert events and events[0]["breaker"] == "db" and events[0]["new"] == "open"


# -- DeadLetter ------------------------------------------------------------------------------
def test_dead_letter_bounded_exact_count() -> None:
    dl: DeadLetter[int] = DeadLetter(maxlen=2)
    for i in range(5):
        dl.add("stage", i, i * 10, ValueError(i))
    assert dl.count == 5 and len(dl) == 5 and dl.evicted == 3
    assert [(e.index, e.item) for e in dl.entries] == [(3, 30), (4, 40)]
    assert "count=5" in repr(dl)


# -- resilient sources -------------------------------------------------------------------------
async def test_resilient_without_failures_calls_factory_once() -> None:
    tokens: list[object] = []

    def factory(token: object) -> list[int]:
        tokens.append(token)
        return [1, 2, 3]

    assert await Stream.resilient(factory).collect() == [1, 2, 3]
    assert tokens == [None]


async def test_resilient_default_checkpoint_is_delivered_count() -> None:
    tokens: list[object] = []
    fail_once = [True]

    def factory(token: int | None) -> Iterator[int]:
        tokens.append(token)
        for i in range(token or 0, 6):
            if i == 4 and fail_once[0]:
                fail_once[0] = False
                raise ConnectionResetError("reset")
            yield i

    assert await Stream.resilient(factory, retry=NO_WAIT).collect() == list(range(6))
    assert tokens == [None, 4]


async def test_resilient_gives_up_after_max_attempts_without_progress() -> None:
    calls = 0

    async def factory(token: object) -> AsyncGenerator[int, None]:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"attempt {calls}")
        yield 0  # pragma: no cover - makes this an async generator

    with structlog.testing.capture_logs() as logs:
        with pytest.raises(RetryExhaustedError) as info:
            await Stream.resilient(factory, retry=NO_WAIT).collect()
    assert calls == 3
    assert isinstance(info.value.__cause__, ConnectionError)
    assert "attempt 3" in str(info.value.__cause__)
    retries = [e for e in logs if e["event"] == "streamnb.recovery.retry"]
    assert [e["attempt"] for e in retries] == [1, 2]


async def test_resilient_really_waits_with_backoff() -> None:
    calls = 0

    def factory(token: object) -> list[int]:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TimeoutError("slow")
        return [7]

    retry = RetryPolicy(max_attempts=5, initial=0.02, multiplier=2.0, jitter=False)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await Stream.resilient(factory, retry=retry).collect() == [7]
    assert loop.time() - t0 >= 0.02 + 0.04 - 0.005  # a lower bound: sleeps are never shorter


async def test_resilient_with_breaker_fails_fast_when_open() -> None:
    clock = _Clock()
    cb = CircuitBreaker(failure_threshold=2, reset_timeout=60.0, clock=clock)
    calls = 0

    def factory(token: object) -> list[int]:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    retry = RetryPolicy(max_attempts=10, initial=0.0, max_delay=0.0)
    with pytest.raises(CircuitOpenError):
        await Stream.resilient(factory, retry=retry, breaker=cb).collect()
    assert calls == 2
    assert _state(cb) == "open"


async def test_resilient_closes_each_failed_source() -> None:
    closed: list[int] = []
    attempt = 0

    async def factory(token: int | None) -> AsyncGenerator[int, None]:
        nonlocal attempt
        attempt += 1
        mine = attempt
        try:
            for i in range(token or 0, 5):
                if mine < 3 and i == mine:
                    raise ConnectionError("flaky")
                yield i
        finally:
            closed.append(mine)

    assert await Stream.resilient(factory, retry=NO_WAIT).collect() == list(range(5))
    assert closed == [1, 2, 3]


async def test_resilient_break_closes_current_source() -> None:
    closed = asyncio.Event()

    async def factory(token: int | None) -> AsyncGenerator[int, None]:
        try:
            i = token or 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    async with Stream.resilient(factory).open() as it:
        async for x in it:
            if x == 3:
                break
    assert closed.is_set()


async def test_resilient_map_error_is_not_retried_as_source_error() -> None:
    # a failure downstream of the resilient source is the consumer's, never a reconnect
    calls = 0

    def factory(token: object) -> list[int]:
        nonlocal calls
        calls += 1
        return [1, 2, 3]

    def boom(x: int) -> int:
        raise ConnectionError("downstream")

    with pytest.raises(ConnectionError):
        await Stream.resilient(factory, retry=NO_WAIT).map(boom).collect()
    assert calls == 1

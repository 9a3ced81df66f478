"""One test per entry of ``../shared/seed/KNOWN_FLAWS.md``: streamnb does not have the flaw.

Flaws 8 (server-streaming deadlines) and 11 (decode errors naming the method) concern the
gRPC adapter and are tested in ``tests/grpc``.
"""

from __future__ import annotations

import asyncio
import random
import traceback
from collections.abc import AsyncGenerator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from streamnb import (
    CircuitBreaker,
    CircuitOpenError,
    DeadLetter,
    RetryPolicy,
    Stream,
    StreamConsumedError,
    default_retryable,
)

from ._support import Endless, Tracked, assert_no_tasks_left, settle

NO_WAIT = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0)


# 1 ----------------------------------------------------------------------------------------
async def test_flaw1_take_pulls_exactly_n_and_closes_the_source() -> None:
    src = Tracked(range(100))
    assert await Stream(src).take(10).collect() == list(range(10))
    assert src.pulled == 10  # not 11
    assert src.finalized == 1  # the source's finally ran


async def test_flaw1_take_closes_source_before_consumer_finishes() -> None:
    src = Tracked(range(100))
    async with Stream(src).take(3).open() as it:
        got = [x async for x in it]
        # exhausting the take already closed the source, without waiting for aexit
        assert src.finalized == 1
    assert got == [0, 1, 2]
    assert src.pulled == 3


# 2 ----------------------------------------------------------------------------------------
async def test_flaw2_operators_return_fluent_streams() -> None:
    s = Stream(range(100))
    chained = [
        s.map(lambda x: x),
        s.filter(lambda x: True),
        s.flat_map(lambda x: [x]),
        s.tap(lambda x: None),
        s.enumerate(),
        s.scan(lambda a, x: a + x, 0),
        s.take(1),
        s.skip(1),
        s.take_while(lambda x: True),
        s.sample(every=2),
        s.throttle(1e6),
        s.batch(2),
        s.batch(2, within=1.0),
        s.buffer(2),
        s.merge(Stream([1])),
        s.zip(Stream([1])),
        s.monitor("m"),
        s.window(last=2),
    ]
    for op in chained:
        assert isinstance(op, Stream)
    assert await Stream(range(100)).take(10).collect() == list(range(10))


# 3 ----------------------------------------------------------------------------------------
async def test_flaw3_operators_return_new_objects_and_branches_do_not_share() -> None:
    src = Tracked(range(20))
    base = Stream(src)
    evens = base.filter(lambda x: x % 2 == 0)
    doubled = base.map(lambda x: x * 2)
    assert evens is not base and doubled is not base
    a, b = Stream(evens), Stream(doubled)  # wrapping a Stream is fine too
    assert await a.collect() == list(range(0, 20, 2))
    assert await b.collect() == [x * 2 for x in range(20)]
    assert await base.collect() == list(range(20))  # base unchanged by its branches
    assert src.started == 3


async def test_flaw3_branches_iterated_concurrently_each_see_all_items() -> None:
    base = Stream(Tracked(range(50))).map(lambda x: x + 1)
    left, right = base.take(50), base.filter(lambda x: True)
    got_l, got_r = await asyncio.gather(left.collect(), right.collect())
    assert got_l == got_r == list(range(1, 51))


async def test_flaw3_one_shot_source_iterated_twice_raises() -> None:
    async def gen() -> AsyncGenerator[int, None]:
        for i in range(5):
            yield i

    s = Stream(gen())
    assert await s.collect() == [0, 1, 2, 3, 4]
    with pytest.raises(StreamConsumedError, match="factory"):
        await s.collect()
    one_shot_sync = Stream(iter([1, 2]))
    branch_a, branch_b = one_shot_sync.map(str), one_shot_sync.map(repr)
    assert await branch_a.collect() == ["1", "2"]
    with pytest.raises(StreamConsumedError):
        await branch_b.collect()  # never silently steals or yields nothing


# 4 ----------------------------------------------------------------------------------------
async def test_flaw4_enumerate_is_an_operator() -> None:
    got = [pair async for pair in Stream("abc").enumerate()]
    assert got == [(0, "a"), (1, "b"), (2, "c")]
    async with Stream("xy").enumerate(start=5).open() as it:
        assert [(i, c) async for i, c in it] == [(5, "x"), (6, "y")]


# 5 ----------------------------------------------------------------------------------------
async def test_flaw5_buffer_producer_error_reaches_consumer_after_accepted_items() -> None:
    src = Tracked(range(10), fail_at=4, exc=KeyError("boom"))
    got: list[int] = []
    with pytest.raises(KeyError, match="boom") as info:
        async with Stream(src).buffer(3).open() as it:
            async for x in it:
                got.append(x)
    assert got == [0, 1, 2, 3]
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert "_gen" in frames  # the producer's own frame is in the traceback
    assert src.finalized == 1


async def test_flaw5_none_is_data_not_the_end() -> None:
    items = [None, 1, None, None, 2, None]
    assert await Stream(items).buffer(1).collect() == items
    assert await Stream(items).buffer(8).collect() == items


async def test_flaw5_stopping_consumer_of_full_buffer_does_not_hang() -> None:
    src = Endless()
    async with asyncio.timeout(10):  # a hang guard only; the run ends in microseconds
        async with Stream(src).buffer(4).open() as it:
            async for x in it:
                await settle()  # let the producer fill the buffer and block
                assert it.buffers["buffer1"].depth == 4
                assert x == 0
                break
    assert src.finalized == 1
    pulled = src.pulled
    await settle()
    assert src.pulled == pulled  # the producer is stopped, not still pulling
    await assert_no_tasks_left()


# 6 ----------------------------------------------------------------------------------------
class _Flaky:
    """Resumable source of range(n) that fails with ConnectionError at chosen pulls."""

    def __init__(self, n: int, fail_points: set[int]) -> None:
        self.n = n
        self.fail_points = set(fail_points)  # absolute positions; each fails once
        self.tokens: list[object] = []
        self.finalized = 0

    async def open(self, token: object) -> AsyncGenerator[int, None]:
        self.tokens.append(token)
        start = 0 if token is None else int(token)  # type: ignore[call-overload]
        try:
            for i in range(start, self.n):
                if i in self.fail_points:
                    self.fail_points.discard(i)
                    raise ConnectionError(f"dropped before {i}")
                yield i
        finally:
            self.finalized += 1


@given(
    n=st.integers(min_value=0, max_value=60),
    faults=st.sets(st.integers(min_value=0, max_value=59), max_size=15),
)
def test_flaw6_resume_continues_after_last_delivered_item(n: int, faults: set[int]) -> None:
    flaky = _Flaky(n, {f for f in faults if f < n})
    expected_reconnects = len(flaky.fail_points)
    retry = RetryPolicy(max_attempts=len(faults) + 2, initial=0.0, max_delay=0.0)
    got = asyncio.run(Stream.resilient(flaky.open, retry=retry).collect())
    assert got == list(range(n))  # nothing lost, nothing repeated
    assert len(flaky.tokens) == expected_reconnects + 1
    assert flaky.finalized == len(flaky.tokens)


async def test_flaw6_seeded_random_faults_with_custom_checkpoint() -> None:
    rng = random.Random(20240611)
    events = [{"seq": i, "v": i * i} for i in range(500)]

    async def feed(last_seq: int | None) -> AsyncGenerator[dict[str, int], None]:
        start = 0 if last_seq is None else last_seq + 1
        for ev in events[start:]:
            if rng.random() < 0.05:
                raise TimeoutError("network hiccup")
            yield ev

    retry = RetryPolicy(max_attempts=50, initial=0.0, max_delay=0.0)
    s = Stream.resilient(feed, checkpoint=lambda ev: ev["seq"], retry=retry)
    assert await s.collect() == events


async def test_flaw6_retry_budget_resets_after_progress() -> None:
    # a fault every 10 items, 100 faults in all: with max_attempts=2 this only completes
    # if the budget resets whenever an item was delivered since the last failure
    seen_faults = set()

    async def src(token: int | None) -> AsyncGenerator[int, None]:
        for i in range(token or 0, 1000):
            if i % 10 == 5 and i not in seen_faults:
                seen_faults.add(i)
                raise ConnectionError("rare fault")
            yield i

    retry = RetryPolicy(max_attempts=2, initial=0.0, max_delay=0.0)
    assert await Stream.resilient(src, retry=retry).collect() == list(range(1000))
    assert len(seen_faults) == 100


# 7 ----------------------------------------------------------------------------------------
def test_flaw7_backoff_is_exponential_capped_and_jittered() -> None:
    exact = RetryPolicy(initial=0.1, multiplier=2.0, max_delay=1.0, jitter=False)
    assert [exact.delay(a) for a in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    jittered = RetryPolicy(initial=0.1, multiplier=2.0, max_delay=1.0, jitter=True)
    for attempt in range(1, 8):
        cap = exact.delay(attempt)
        samples = [jittered.delay(attempt) for _ in range(200)]
        assert all(cap * 0.5 <= d <= cap for d in samples)
        assert len(set(samples)) > 1  # really random, so clients do not stampede


async def test_flaw7_non_retryable_errors_are_not_retried() -> None:
    calls = 0

    def src(token: object) -> list[int]:
        nonlocal calls
        calls += 1
        raise ValueError("bad request")

    with pytest.raises(ValueError, match="bad request"):
        await Stream.resilient(src, retry=NO_WAIT).collect()
    assert calls == 1

    attempts = 0

    def fn(x: int) -> int:
        nonlocal attempts
        attempts += 1
        raise ValueError("never works")

    with pytest.raises(ValueError):
        await Stream([1]).map(fn, on_error="retry", retry=NO_WAIT).collect()
    assert attempts == 1


async def test_flaw7_permission_denied_not_retried_via_retry_on() -> None:
    calls = 0

    def src(token: object) -> list[int]:
        nonlocal calls
        calls += 1
        raise PermissionError("permission denied")

    policy = RetryPolicy(
        max_attempts=5,
        initial=0.0,
        max_delay=0.0,
        retry_on=lambda e: default_retryable(e) and not isinstance(e, PermissionError),
    )
    with pytest.raises(PermissionError):
        await Stream.resilient(src, retry=policy).collect()
    assert calls == 1


def test_flaw7_default_retry_predicate_rejects_errors_that_never_succeed() -> None:
    assert default_retryable(ConnectionResetError())
    assert default_retryable(TimeoutError())
    assert not default_retryable(ValueError())
    assert not default_retryable(PermissionError("permission denied"))
    assert not default_retryable(FileNotFoundError("no such file"))


def test_flaw7_circuit_breaker_exists_and_opens() -> None:
    now = [0.0]
    cb = CircuitBreaker(failure_threshold=2, reset_timeout=5.0, clock=lambda: now[0])

    def boom(x: int) -> int:
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            cb.call_sync(boom, 1)
    assert cb.state == "open"
    with pytest.raises(CircuitOpenError):
        cb.call_sync(boom, 1)


# 9 ----------------------------------------------------------------------------------------
async def test_flaw9_bytes_use_the_size_function_not_len_str() -> None:
    items = [b"x" * 10, b"y" * 1000, b""]
    s = Stream(items).monitor("raw", size=len)
    async with s.open() as it:
        async for _ in it:
            pass
        snap = it.metrics()["raw"]
    assert snap.bytes == 1010  # len(str(b"x" * 10)) would be 13 per item...
    assert snap.items == 3


async def test_flaw9_rate_is_measured_from_the_first_item() -> None:
    ready = asyncio.Event()

    async def late() -> AsyncGenerator[int, None]:
        await ready.wait()
        for i in range(100):
            yield i

    s = Stream(late).monitor("late")
    async with s.open() as it:
        consumer = asyncio.ensure_future(it.__anext__())
        await asyncio.sleep(0.3)  # the stream exists but has no item for 0.3 s
        assert it.metrics()["late"].rate == 0.0
        ready.set()
        first = await consumer
        rest = [x async for x in it]
        snap = it.metrics()["late"]
    assert [first, *rest] == list(range(100))
    # 100 items in a few microseconds: counted from the first item the elapsed time is
    # far below the 0.3 s the stream waited before it
    assert snap.elapsed < 0.25
    assert snap.rate > 100 / 0.25


async def test_flaw9_errors_counter_increments_and_latency_buffer_fields_exist() -> None:
    src = Tracked(range(10), fail_at=5, exc=OSError("disk"))
    s = Stream(src).buffer(4, name="buf").monitor("after")
    with pytest.raises(OSError):
        async with s.open() as it:
            async for _ in it:
                pass
    snap = it.metrics()["after"]
    assert snap.status == "failed"
    assert snap.errors == 1
    assert snap.error is not None and "disk" in snap.error
    assert snap.items == 5
    assert snap.buffer_capacity == 4
    assert snap.buffer_depth is not None and snap.buffer_high_water is not None
    assert snap.utilisation is not None
    assert "latency" in snap.as_dict() and "latency_max" in snap.as_dict()


# 10 ---------------------------------------------------------------------------------------
async def test_flaw10_default_error_policy_raises() -> None:
    def parse(x: str) -> int:
        return int(x)

    with pytest.raises(ValueError) as info:
        await Stream(["1", "2", "x", "4"]).map(parse).collect()
    assert any("item #2" in n for n in info.value.__notes__)


async def test_flaw10_skip_counts_and_keeps_items_in_a_bounded_dead_letter() -> None:
    dl: DeadLetter[str] = DeadLetter(maxlen=3)
    rows = [str(i) if i % 4 else f"bad{i}" for i in range(40)]  # 10 bad rows
    with structlog.testing.capture_logs():
        good = await Stream(rows).map(int, on_error="skip", dead_letter=dl).collect()
    assert good == [i for i in range(40) if i % 4]
    assert dl.count == 10 and len(dl) == 10  # exact, however many
    assert dl.evicted == 7
    assert [e.item for e in dl.entries] == ["bad28", "bad32", "bad36"]  # the last maxlen
    assert all(isinstance(e.error, ValueError) for e in dl.entries)
    assert [e.index for e in dl.entries] == [28, 32, 36]

"""Metrics: exact counts, frozen snapshots, rates from the first item, windows, buffers,
dead letters, structlog reports."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator

import pytest
import structlog

from streamnb import DeadLetter, Meter, MetricsSnapshot, Stream

from ._support import Endless, Tracked, settle


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_monitor_counts_exact_items_and_bytes() -> None:
    items = [b"a" * (i % 7) for i in range(5000)]
    s = Stream(items).monitor("in", size=len).filter(bool).monitor("out", size=len)
    async with s.open() as it:
        n = 0
        async for _ in it:
            n += 1
        m = it.metrics()
    assert m["in"].items == 5000
    assert m["in"].bytes == sum(len(b) for b in items)
    assert m["out"].items == n == sum(1 for b in items if b)
    assert m["out"].bytes == m["in"].bytes
    assert m["in"].status == m["out"].status == "done"
    assert m["in"].errors == 0 and m["in"].dropped == 0


async def test_monitor_without_size_counts_no_bytes() -> None:
    async with Stream(["abc", "de"]).monitor("m").open() as it:
        _ = [x async for x in it]
        snap = it.metrics()["m"]
    assert snap.items == 2 and snap.bytes == 0


async def test_snapshot_is_frozen_plain_data() -> None:
    async with Stream(range(10)).monitor("m", total=10).open() as it:
        _ = [x async for x in it]
        snap = it.metrics()["m"]
    assert isinstance(snap, MetricsSnapshot)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.items = 99  # type: ignore[misc]
    d = snap.as_dict()
    assert d["items"] == 10 and d["name"] == "m" and d["total"] == 10
    assert "utilisation" in d and d["utilisation"] is None
    assert snap.eta == 0.0


async def test_snapshot_while_running_is_a_copy() -> None:
    src = Tracked(range(10), gate_at=5)
    async with Stream(src).monitor("m").open() as it:
        got = [await it.__anext__() for _ in range(5)]
        early = it.metrics()["m"]
        src.gate.set()
        got += [x async for x in it]
        late = it.metrics()["m"]
    assert got == list(range(10))
    assert early.status == "running" and 1 <= early.items <= 5
    assert late.items == 10 and late.status == "done"
    assert early.items <= 5  # the earlier snapshot did not change


async def test_status_failed_and_cancelled() -> None:
    src = Tracked(range(5), fail_at=2, exc=ValueError("bad row"))
    with pytest.raises(ValueError):
        async with Stream(src).monitor("m").open() as it:
            async for _ in it:
                pass
    snap = it.metrics()["m"]
    assert snap.status == "failed" and snap.errors == 1 and snap.items == 2
    assert snap.error == "ValueError: bad row"

    endless = Endless(park_after=3)
    holder: dict[str, MetricsSnapshot] = {}

    async def consume() -> None:
        async with Stream(endless).monitor("c").open() as it2:
            try:
                async for _ in it2:
                    pass
            finally:
                holder["it"] = it2  # type: ignore[assignment]

    task = asyncio.create_task(consume())
    await endless.parked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = holder["it"].metrics()["c"]  # type: ignore[attr-defined]
    assert snap.status == "cancelled" and snap.items == 3 and snap.errors == 0


async def test_early_stop_is_done_not_failed() -> None:
    s = Stream(range(100)).monitor("m").take(3)
    async with s.open() as it:
        assert [x async for x in it] == [0, 1, 2]
        snap = it.metrics()["m"]
    assert snap.status == "done" and snap.errors == 0 and snap.items == 3


def test_rate_is_measured_from_the_first_item() -> None:
    clock = _Clock()
    m = Meter("m", clock=clock)
    m.start()
    clock.t += 100.0  # a long quiet start must not count
    for n in range(1, 11):
        m.publish(n, 0, None)
        clock.t += 0.1
    m.finish(10, 0, None)
    snap = m.snapshot()
    # from the first item to the last one: 0.9 s, not the 100.9 s since the meter started
    assert snap.elapsed == pytest.approx(0.9)
    assert snap.rate == pytest.approx(10 / 0.9)


def test_window_rate_follows_recent_pace() -> None:
    clock = _Clock()
    m = Meter("m", clock=clock, window=5.0)
    m.start()
    n = 0
    for _ in range(100):  # 10 s at 100 items/s
        n += 10
        m.publish(n, 0, None)
        clock.t += 0.1
    for _ in range(100):  # then 10 s at 10 items/s
        n += 1
        m.publish(n, 0, None)
        clock.t += 0.1
    snap = m.snapshot()
    assert snap.status == "running"
    assert snap.window_rate == pytest.approx(10.0, rel=0.1)
    assert snap.rate == pytest.approx(n / 20.0, rel=0.05)
    clock.t += 10.0  # a stall pulls the window rate down
    assert m.snapshot().window_rate < 1.0


def test_bytes_rate_and_eta() -> None:
    clock = _Clock()
    m = Meter("m", clock=clock, total=100)
    m.start()
    m.publish(1, 10, None)
    clock.t += 1.0
    m.publish(11, 110, None)
    snap = m.snapshot()
    assert snap.rate == pytest.approx(11.0)
    assert snap.bytes_rate == pytest.approx(110.0)
    assert snap.eta == pytest.approx(89 / 11.0)


async def test_latency_from_item_timestamps() -> None:
    now = time.time()
    items = [{"t": now - 2.0, "v": i} for i in range(5)]
    async with Stream(items).monitor("m", timestamp=lambda d: d["t"]).open() as it:
        _ = [x async for x in it]
        snap = it.metrics()["m"]
    assert snap.latency is not None and snap.latency >= 2.0
    assert snap.latency_max is not None and snap.latency_max >= snap.latency
    async with Stream([1]).monitor("m").open() as it2:
        _ = [x async for x in it2]
        assert it2.metrics()["m"].latency is None


async def test_monitor_after_buffer_reports_buffer_fields() -> None:
    src = Tracked(range(20), gate_at=10)
    s = Stream(src).buffer(16, name="b").monitor("m")
    async with s.open() as it:
        assert await it.__anext__() == 0
        await src.parked.wait()
        await settle()
        snap = it.metrics()["m"]
        assert snap.buffer_capacity == 16
        assert snap.buffer_depth == 9
        assert snap.buffer_high_water == 10  # items 0..9 were in before the first take
        assert snap.utilisation == pytest.approx(9 / 16)
        src.gate.set()
        _ = [x async for x in it]
    dropping = Stream(range(100)).buffer(2, "drop_newest").monitor("d")
    async with dropping.open() as it2:
        got = [x async for x in it2]
        snap = it2.metrics()["d"]
    assert snap.dropped == 100 - len(got) > 0
    assert snap.items == len(got)


async def test_monitor_not_right_after_buffer_has_no_buffer_fields() -> None:
    s = Stream(range(3)).buffer(2).map(lambda x: x).monitor("m")
    async with s.open() as it:
        _ = [x async for x in it]
        snap = it.metrics()["m"]
    assert snap.buffer_capacity is None and snap.utilisation is None


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_monitor_after_skip_map_reports_dead_letter_errors(concurrency: int) -> None:
    dl: DeadLetter[int] = DeadLetter(maxlen=2)

    async def parse(x: int) -> int:
        if x % 5 == 0:
            raise ValueError(x)
        return x

    s = Stream(range(50)).map(parse, concurrency=concurrency, on_error="skip", dead_letter=dl)
    async with s.monitor("m").open() as it:
        got = [x async for x in it]
        snap = it.metrics()["m"]
    assert snap.errors == dl.count == 10
    assert snap.items == len(got) == 40
    assert snap.status == "done"


async def test_structlog_periodic_and_summary_events() -> None:
    async def slow() -> AsyncGenerator[int, None]:
        for i in range(30):
            await asyncio.sleep(0.001)
            yield i

    with structlog.testing.capture_logs() as logs:
        async with Stream(slow).monitor("logged", log_every=1e-6).open() as it:
            _ = [x async for x in it]
    periodic = [e for e in logs if e["event"] == "streamnb.metrics"]
    summary = [e for e in logs if e["event"] == "streamnb.summary"]
    assert periodic, "no periodic metrics event"
    assert all(e["stage"] == "logged" for e in periodic)
    assert len(summary) == 1
    assert summary[0]["items"] == 30 and summary[0]["status"] == "done"
    assert {"rate", "window_rate", "errors", "bytes", "dropped"} <= set(summary[0])


async def test_no_log_events_without_log_every() -> None:
    with structlog.testing.capture_logs() as logs:
        assert await Stream(range(100)).monitor("quiet").count() == 100
    assert not [e for e in logs if e["event"].startswith("streamnb.")]


async def test_meters_are_per_run() -> None:
    s = Stream(range(5)).monitor("m")
    async with s.open() as a:
        _ = [x async for x in a]
    async with s.open() as b:
        _ = [x async for x in b]
    assert a.meters["m"] is not b.meters["m"]
    assert a.metrics()["m"].items == b.metrics()["m"].items == 5


async def test_monitor_after_a_blocking_buffer_reports_the_time_its_producer_waited() -> None:
    release = asyncio.Event()

    async def gated(x: int) -> int:
        await release.wait()
        return x

    async with Stream(range(20)).buffer(3).monitor("b").map(gated).open() as it:
        agen = it.__aiter__()
        first = asyncio.ensure_future(agen.__anext__())
        await settle()  # the producer fills the buffer, then blocks
        assert it.buffers["buffer1"].depth == 3
        await asyncio.sleep(0.05)
        release.set()
        assert await first == 0
        async for _ in agen:
            pass
        snap = it.metrics()["b"]
    assert snap.buffer_blocked_seconds is not None and snap.buffer_blocked_seconds > 0
    assert snap.as_dict()["buffer_blocked_seconds"] == snap.buffer_blocked_seconds

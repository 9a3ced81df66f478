"""One metrics protocol: every live object of a run registers on its RunState and answers
``snapshot()`` with a frozen dataclass (monitor, buffer, concurrency, resilient)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from streamnb import (
    BufferSnapshot,
    ConcurrencySnapshot,
    MetricsSnapshot,
    ResilientSnapshot,
    RetryPolicy,
    Stream,
)

from ._support import Tracked


async def test_every_stage_kind_registers_a_frozen_snapshot_in_pipeline_order() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0)
        return x

    s = (
        Stream(range(30))
        .buffer(4, name="b")
        .monitor("after_b")
        .map(slow, concurrency=3, name="cm")
        .monitor("out")
    )
    async with s.open() as it:
        got = [x async for x in it]
        snaps = it.snapshots()
    assert got == list(range(30))
    assert list(snaps) == ["buffer:b", "monitor:after_b", "concurrency:cm", "monitor:out"]
    assert isinstance(snaps["buffer:b"], BufferSnapshot)
    assert isinstance(snaps["monitor:out"], MetricsSnapshot)
    cm = snaps["concurrency:cm"]
    assert isinstance(cm, ConcurrencySnapshot)
    assert (cm.started, cm.completed, cm.failed, cm.in_flight) == (30, 30, 0, 0)
    assert cm.max_in_flight == 3 and cm.concurrency == 3 and cm.executor is None
    for snap in snaps.values():
        with pytest.raises(dataclasses.FrozenInstanceError):
            snap.name = "changed"  # type: ignore[misc]


async def test_buffers_are_snapshots_taken_when_read() -> None:
    src = Tracked(range(10), gate_at=5)
    async with Stream(src).buffer(8, name="live").monitor("m").open() as it:
        await it.__anext__()
        await src.parked.wait()
        before = it.buffers["live"]
        assert isinstance(before, BufferSnapshot) and before.depth == 4
        # the monitor right after the buffer reads the buffer's snapshot, not the deque
        assert it.metrics()["m"].buffer_depth == 4
        src.gate.set()
        rest = [x async for x in it]
        after = it.buffers["live"]
    assert rest == list(range(1, 10))
    assert before.depth == 4 and after.depth == 0  # a snapshot does not change later
    assert after.high_water >= 4 and after.capacity == 8


async def test_concurrency_snapshot_counts_failures_and_names_the_executor() -> None:
    def parse(x: int) -> int:
        if x % 5 == 0:
            raise ValueError(x)
        return x

    class Cluster(ThreadPoolExecutor):
        name = "test-cluster"
        dashboard_link = "http://127.0.0.1:8787/status"

    with Cluster(max_workers=2) as ex:
        s = Stream(range(20)).map(parse, concurrency=2, executor=ex, on_error="skip", name="p")
        async with s.open() as it:
            got = [x async for x in it]
            snap = it.stages["p"]
    assert got == [x for x in range(20) if x % 5]
    assert (snap.started, snap.completed, snap.failed) == (20, 16, 4)
    assert snap.executor == "test-cluster"
    assert snap.dashboard_link == "http://127.0.0.1:8787/status"
    assert it.dead_letters["p"].count == 4


async def test_executor_without_a_name_is_named_by_its_type() -> None:
    with ThreadPoolExecutor(max_workers=2) as ex:
        s = Stream(range(4)).map(abs, concurrency=2, executor=ex, name="abs")
        async with s.open() as it:
            assert sorted([x async for x in it]) == [0, 1, 2, 3]
            snap = it.stages["abs"]
    assert snap.executor == "ThreadPoolExecutor" and snap.dashboard_link is None


async def test_default_named_concurrent_stages_of_one_function_get_distinct_names() -> None:
    async def ident(x: int) -> int:
        return x

    s = Stream(range(5)).map(ident, concurrency=2).map(ident, concurrency=2)
    async with s.open() as it:
        assert [x async for x in it] == list(range(5))
        names = list(it.stages)
    assert len(names) == 2 and names[1] == names[0] + "#2"


async def test_resilient_source_counts_belong_to_the_run() -> None:
    opened: list[Any] = []

    def factory(token: Any) -> AsyncGenerator[int, None]:
        opened.append(token)
        start = 0 if token is None else token

        async def gen() -> AsyncGenerator[int, None]:
            for i in range(start, 6):
                if i in (2, 4) and len(opened) <= i // 2:
                    raise ConnectionError(f"drop at {i}")
                yield i

        return gen()

    s = Stream.resilient(factory, retry=RetryPolicy(initial=0.001, jitter=False), name="feed")
    async with s.open() as it:
        got = [x async for x in it]
        snap = it.snapshots("resilient")["feed"]
    assert got == list(range(6))
    assert isinstance(snap, ResilientSnapshot)
    assert (snap.delivered, snap.failures, snap.reconnects) == (6, 2, 2)
    assert snap.last_error == "ConnectionError: drop at 4"
    # a second run starts from zero: the counts are the run's, not the definition's
    opened.clear()
    async with s.open() as again:
        assert [x async for x in again] == list(range(6))
        assert again.snapshots("resilient")["feed"].reconnects == 2

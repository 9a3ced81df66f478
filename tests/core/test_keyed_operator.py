"""KeyedWindow, the operator: engines per run, registered on the run, sources closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from streamnb import Stream
from streamnb.errors import InvalidArgumentError
from streamnb.keyed import KeyedWindowSnapshot, tumbling
from streamnb.operators.keyed import KeyedWindow


async def test_keyed_window_is_a_stream_whose_runs_register_the_engine() -> None:
    events = [{"k": i % 3, "t": i * 0.1} for i in range(100)] + [{"k": 0, "t": 0.05}]
    per_second = Stream(events).keyed_window(tumbling(1.0), by="k", time="t", name="per-second")
    assert isinstance(per_second, Stream)
    async with per_second.window(last=100, name="rows").open() as it:
        rows = [row async for row in it]
        snap = it.snapshots("window")["per-second"]
        assert isinstance(snap, KeyedWindowSnapshot)
        assert (snap.items, snap.late, snap.open) == (101, 1, 0)
        assert it.dead_letters["per-second"].count == 1
        assert len(it.windows["rows"]) == len(rows) == 30
    assert sum(r["count"] for r in rows) == 100
    assert await per_second.count() == 30  # a new run, a new engine


async def test_keyed_window_stopped_early_closes_its_source_and_leaves_no_task() -> None:
    closed: list[bool] = []

    async def endless() -> AsyncIterator[dict[str, Any]]:
        i = 0
        try:
            while True:
                yield {"t": i * 0.5}
                i += 1
                await asyncio.sleep(0)
        finally:
            closed.append(True)

    first = await Stream(endless).keyed_window(tumbling(1.0), time="t").first()
    assert first == {"window_start": 0.0, "window_end": 1.0, "count": 2}
    assert closed == [True]
    assert len(asyncio.all_tasks()) == 1


def test_keyed_window_checks_its_arguments_up_front() -> None:

    with pytest.raises(InvalidArgumentError, match="late="):
        Stream([]).keyed_window(tumbling(1.0), late="ignore")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"tumbling\(keep=-1\): must be >= 0"):
        Stream([]).keyed_window(tumbling(1.0), keep=-1)


async def test_then_keyed_window_after_fused_operators_and_a_monitor_after_it() -> None:
    stream = (
        Stream(range(1000))
        .map(lambda i: {"k": i % 4, "t": i * 0.01})
        .filter(lambda e: e["k"] != 3)
        .then(KeyedWindow(tumbling(1.0), by="k", time="t", aggs={"n": "count"}, name="kw"))
        .monitor("rows")
    )
    async with stream.open() as it:
        rows = [r async for r in it]
        assert it.metrics()["rows"].items == len(rows) == 30
        assert it.snapshots("window")["kw"].closed == 30
    assert {r["k"] for r in rows} == {0, 1, 2}
    assert sum(r["n"] for r in rows) == 750

"""HttpCallStats: the core CallStats plus the received bytes read from the open response."""

from __future__ import annotations

from streamnb._callstats import CallStats
from streamnb.demo.http import HttpDemoServer
from streamnb.http import HttpCallStats, ndjson


def test_bytes_of_the_open_response_count_until_detached() -> None:
    stats = HttpCallStats("sse", "GET http://host/feed", "sse")
    assert isinstance(stats, CallStats) and stats.started > 0  # started when made
    downloaded = [0]
    stats.attach(lambda: downloaded[0])
    downloaded[0] = 120
    assert stats.snapshot().bytes_received == 120  # read live, nothing counted per event
    stats.detach()  # the connection closes: its bytes are folded into the total
    downloaded[0] = 999
    assert stats.snapshot().bytes_received == 120
    stats.attach(lambda: 30)  # a reconnection's response
    stats.finish("OK")  # finishing folds it in too
    snap = stats.snapshot()
    assert (snap.bytes_received, snap.code) == (150, "OK")
    stats.finish("CANCELLED")
    assert stats.snapshot().code == "OK"


async def test_a_run_registers_the_shared_counters(server: HttpDemoServer) -> None:
    rows = ndjson(f"{server.url}/ndjson/feed", params={"count": 5})
    async with rows.open() as it:
        assert [r["seq"] async for r in it] == list(range(5))
        live = it.state.observed("call")["ndjson"]  # registered when the run started
        snap = it.snapshots("call")["ndjson"]
    assert type(live) is HttpCallStats and isinstance(live, CallStats)
    assert (snap.sent, snap.received, snap.code) == (1, 5, "OK") and snap.bytes_received > 0

"""ndjson(): JSON lines as a Stream, with decode errors, HTTP errors and cancellation."""

from __future__ import annotations

import pytest
from task_helpers import no_new_tasks, other_tasks

from streamnb.demo.http import HttpDemoServer
from streamnb.http import HttpDecodeError, HttpError, ndjson


async def test_lines_as_items(server: HttpDemoServer) -> None:
    rows = ndjson(f"{server.url}/ndjson/feed", params={"count": 20})
    async with rows.open() as it:
        seqs = [r["seq"] async for r in it]
        snap = it.snapshots("call")["ndjson"]
    assert seqs == list(range(20))
    assert snap.shape == "ndjson" and snap.received == 20 and snap.code == "OK"


async def test_a_malformed_line_raises_or_is_skipped(server: HttpDemoServer) -> None:
    url = f"{server.url}/ndjson/feed?count=6&malformed_seq=2"
    with pytest.raises(HttpDecodeError) as info:
        await ndjson(url).collect()
    assert info.value.index == 2 and "line" not in info.value.url
    skipping = ndjson(url, on_decode_error="skip")
    async with skipping.open() as it:
        seqs = [r["seq"] async for r in it]
        assert it.dead_letters["ndjson"].count == 1
    assert seqs == [0, 1, 3, 4, 5]


async def test_custom_decoder_and_errors(server: HttpDemoServer) -> None:
    lengths = await ndjson(f"{server.url}/ndjson/feed?count=3", decode=len).collect()
    assert len(lengths) == 3 and all(n > 20 for n in lengths)
    with pytest.raises(HttpError) as info:
        await ndjson(f"{server.url}/status/500").collect()
    assert info.value.status == 500 and "500" in str(info.value)
    with pytest.raises(HttpError) as dropped:
        await ndjson(f"{server.url}/ndjson/feed?count=100&drop_after=7").collect()
    assert dropped.value.status is None and dropped.value.received == 7


async def test_break_is_seen_by_the_server(server: HttpDemoServer) -> None:
    before = other_tasks()
    async with ndjson(f"{server.url}/ndjson/feed", params={"rate": 100}).open() as it:
        async for row in it:
            if row["seq"] == 2:
                break
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled
    await no_new_tasks(before)

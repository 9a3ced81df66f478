"""websocket(): messages as a Stream, a sender task, closes, refusals, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from task_helpers import no_new_tasks, other_tasks

from streamnb import Stream
from streamnb.demo.http import HttpDemoServer
from streamnb.errors import ArgumentTypeError, InvalidArgumentError
from streamnb.http import HttpDecodeError, HttpError, websocket


def ws_url(server: HttpDemoServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


async def test_echo_sends_and_receives(server: HttpDemoServer) -> None:
    before = other_tasks()
    echo = websocket(ws_url(server, "/ws/echo"), send=[{"n": 1}, {"n": 2}, {"n": 3}])
    async with echo.take(3).open() as it:
        got = [m async for m in it]
    assert got == [{"n": 1}, {"n": 2}, {"n": 3}]
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.received == 3 and served.cancelled  # the client closed the connection
    await no_new_tasks(before)


async def test_text_bytes_and_a_stream_as_the_sender(server: HttpDemoServer) -> None:
    messages = Stream(range(3)).map(lambda i: f"m{i}")
    got = (
        await websocket(ws_url(server, "/ws/echo"), send=messages, decode="text").take(3).collect()
    )
    assert got == ["m0", "m1", "m2"]
    raw = websocket(ws_url(server, "/ws/echo"), send=[b"\x00\x01"], decode="text")
    assert await raw.take(1).collect() == [b"\x00\x01"]


async def test_a_feed_ends_when_the_server_closes(server: HttpDemoServer) -> None:
    feed = websocket(ws_url(server, "/ws/feed?count=25"))
    async with feed.open() as it:
        seqs = [m["seq"] async for m in it]
        snap = it.snapshots("call")["websocket"]
    assert seqs == list(range(25))
    assert snap.shape == "websocket" and snap.received == 25 and snap.code == "OK"


async def test_an_abnormal_close_raises_with_its_code(server: HttpDemoServer) -> None:
    with pytest.raises(HttpError) as info:
        await websocket(ws_url(server, "/ws/feed?count=50&drop_after=5")).collect()
    assert "code 1011" in str(info.value) and "injected fault" in str(info.value)
    assert info.value.received == 5


async def test_malformed_messages(server: HttpDemoServer) -> None:
    url = ws_url(server, "/ws/feed?count=5&malformed_seq=1")
    with pytest.raises(HttpDecodeError) as info:
        await websocket(url).collect()
    assert info.value.index == 1
    skipping = websocket(url, on_decode_error="skip")
    async with skipping.open() as it:
        assert [m["seq"] async for m in it] == [0, 2, 3, 4]
        assert it.dead_letters["websocket"].count == 1


async def test_a_refused_handshake_names_the_status(server: HttpDemoServer) -> None:
    with pytest.raises(HttpError) as info:
        await websocket(ws_url(server, "/nowhere")).collect()
    assert info.value.status == 404 and "refused" in str(info.value)


async def test_a_failing_sender_closes_and_surfaces_its_error(server: HttpDemoServer) -> None:
    before = other_tasks()

    async def messages() -> AsyncIterator[str]:
        yield "one"
        await asyncio.sleep(0.05)
        raise RuntimeError("the prompt source broke")

    with pytest.raises(RuntimeError, match="the prompt source broke"):
        await websocket(ws_url(server, "/ws/echo"), send=messages(), decode="text").collect()
    await server.wait_for_request(lambda r: r.finished)
    await no_new_tasks(before)


async def test_cancelling_the_consumer_closes_the_socket(server: HttpDemoServer) -> None:
    before = other_tasks()
    got = asyncio.Event()

    async def consume() -> None:
        async for _ in websocket(ws_url(server, "/ws/feed?rate=50")):
            got.set()

    task = asyncio.create_task(consume())
    await got.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled and served.sent < 50
    await no_new_tasks(before)


def test_bad_arguments_fail_up_front() -> None:
    with pytest.raises(InvalidArgumentError, match="ws:// or wss://"):
        websocket("http://127.0.0.1:1/ws")
    with pytest.raises(ArgumentTypeError, match="not one message"):
        websocket("ws://127.0.0.1:1/ws", send="hello")
    with pytest.raises(InvalidArgumentError, match="open_timeout"):
        websocket("ws://127.0.0.1:1/ws", open_timeout=0)

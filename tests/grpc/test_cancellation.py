"""Cancellation both ways: the server sees client cancellations; nothing is left behind."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_helpers import no_new_tasks, other_tasks

from streamnb.demo import DemoServer
from streamnb.errors import ClientClosedError
from streamnb.grpc import Codec, GrpcClient, RpcError
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

FEED = "/streamnb.demo.v1.EventFeed/"
JSON = "/streamnb.demo.v1.Json/"


def _endless() -> pb.SubscribeRequest:
    return pb.SubscribeRequest(rate=2000)  # count=0: endless


async def test_break_cancels_server_stream(server: DemoServer) -> None:
    before = other_tasks()
    async with GrpcClient(server.address) as client:
        feed = client.server_stream(FEED + "Subscribe", _endless(), codec=pb.Event)
        async with feed.open() as it:
            async for ev in it:
                if ev.seq == 20:
                    break
        served = await server.wait_for_call(
            lambda c: c.method == "EventFeed/Subscribe" and c.finished
        )
        assert served.cancelled
        assert client.history[-1].code == "CANCELLED" and client.history[-1].received == 21
        assert client._live == set()
    await no_new_tasks(before)


async def test_take_cancels_server_stream(server: DemoServer, client: GrpcClient) -> None:
    events = (
        await client.server_stream(FEED + "Subscribe", _endless(), codec=pb.Event).take(5).collect()
    )
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    served = await server.wait_for_call(lambda c: c.finished)
    assert served.cancelled


async def test_task_cancel_cancels_server_stream(server: DemoServer) -> None:
    before = other_tasks()
    async with GrpcClient(server.address) as client:
        started = asyncio.Event()

        async def consume() -> None:
            async for _ in client.server_stream(FEED + "Subscribe", _endless(), codec=pb.Event):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        served = await server.wait_for_call(lambda c: c.finished)
        assert served.cancelled
        assert client.history[-1].code == "CANCELLED"
    await no_new_tasks(before)


async def test_task_cancel_cancels_unary_and_client_stream(server: DemoServer) -> None:
    before = other_tasks()
    async with GrpcClient(server.address) as client:
        unary = asyncio.create_task(client.unary(JSON + "Get", {"delay": 30}))

        async def slow() -> AsyncIterator[object]:
            # the server sleeps after this item, so the cancellation lands in its handler (a
            # cancel reaching a handler idle on its request iterator looks like a half-close)
            yield {"value": 1, "delay": 30}
            await asyncio.Event().wait()

        streaming = asyncio.create_task(client.client_stream(JSON + "Aggregate", slow()))
        await server.wait_for_call(lambda c: c.method == "Json/Aggregate" and c.received == 1)
        unary.cancel()
        streaming.cancel()
        for t in (unary, streaming):
            with pytest.raises(asyncio.CancelledError):
                await t
        await server.wait_for_call(lambda c: c.method == "Json/Aggregate" and c.cancelled)
        await server.wait_for_call(lambda c: c.method == "Json/Get" and c.cancelled)
        assert client._live == set()
        assert [s.code for s in client.history] == ["CANCELLED", "CANCELLED"]
    await no_new_tasks(before)


async def test_break_cancels_bidi_and_stops_sender() -> None:
    async with DemoServer(token_delay=0.005) as server:
        before = other_tasks()
        produced = 0

        async def prompts() -> AsyncIterator[str]:
            nonlocal produced
            for i in range(1000):
                produced += 1
                yield f"prompt number {i}"

        async with GrpcClient(server.address) as client:
            answers = client.bidi(JSON + "Chat", prompts())
            async with answers.open() as it:
                async for ev in it:
                    if ev["kind"] == "done":
                        break
            served = await server.wait_for_call(lambda c: c.method == "Json/Chat" and c.finished)
            assert served.cancelled
            assert produced < 1000  # the sender was stopped, not drained
            assert client.history[-1].code == "CANCELLED"
        await no_new_tasks(before)


async def test_client_close_cancels_open_calls(server: DemoServer) -> None:
    before = other_tasks()
    client = GrpcClient(server.address)
    await client.__aenter__()
    five = asyncio.Event()

    async def consume() -> None:
        async for ev in client.server_stream(FEED + "Subscribe", _endless(), codec=pb.Event):
            if ev.seq == 4:
                five.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(five.wait(), 10)
    channel = client.channel
    await client.close()
    with pytest.raises(RpcError) as info:
        await task
    assert info.value.code == grpc.StatusCode.CANCELLED and "closed" in info.value.details
    served = await server.wait_for_call(lambda c: c.finished)
    assert served.cancelled
    assert channel._channel.closed()  # the channel the client opened is closed
    with pytest.raises(ClientClosedError, match="closed"):
        client.server_stream(FEED + "Subscribe", _endless())
    defined_before = GrpcClient(server.address)
    async with defined_before:
        late = defined_before.bidi(JSON + "Echo", [1])
    with pytest.raises(ClientClosedError, match="closed"):
        await late.collect()
    await no_new_tasks(before)


async def test_server_shutdown_reaches_the_client() -> None:
    """Cancellation the other way: the server goes away mid-stream; the consumer gets RpcError."""
    before = other_tasks()
    server = DemoServer(grace=None)
    await server.start()
    async with GrpcClient(server.address) as client:
        got: list[int] = []
        with pytest.raises(RpcError) as info:
            async for ev in client.server_stream(FEED + "Subscribe", _endless(), codec=pb.Event):
                got.append(ev.seq)
                if len(got) == 10:
                    await server.stop()
        assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert info.value.received >= 10
        assert client._live == set()
    await no_new_tasks(before)


async def test_server_aborts_bidi_midway(client: GrpcClient) -> None:
    """The server ends a bidi call with an error while the client still has requests to send."""

    async def requests() -> AsyncIterator[bytes]:
        yield b'"hello"'
        yield b"not json"
        await asyncio.Event().wait()  # more to come: only the server's error ends the call

    raw_in_json_out = Codec("raw-in-json-out", bytes, json.loads)
    answers = client.bidi(JSON + "Chat", requests(), codec=raw_in_json_out)
    got: list[str] = []
    with pytest.raises(RpcError) as info:
        async for ev in answers:
            got.append(ev["kind"])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "#1" in info.value.details
    assert got == ["token", "token", "token", "done"]
    assert info.value.received == 4 and client.history[-1].code == "INVALID_ARGUMENT"

"""Deadlines on every shape, server status codes, malformed messages, failing request sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from streamnb import DeadLetter
from streamnb.demo import DemoServer
from streamnb.grpc import Codec, DecodeError, EncodeError, GrpcClient, RpcError, json_codec
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

FEED = "/streamnb.demo.v1.EventFeed/"
JSON = "/streamnb.demo.v1.Json/"
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED


async def _never_ending() -> AsyncIterator[object]:
    yield {"value": 1}
    await asyncio.Event().wait()


# -- deadlines --------------------------------------------------------------------------------


async def test_unary_deadline(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.unary(JSON + "Get", {"delay": 5}, timeout=0.2)
    assert info.value.code == DEADLINE and info.value.method == JSON + "Get"
    assert client.history[-1].code == "DEADLINE_EXCEEDED"


async def test_server_stream_deadline(client: GrpcClient) -> None:
    feed = client.server_stream(
        FEED + "Subscribe", pb.SubscribeRequest(rate=20), codec=pb.Event, timeout=0.3
    )
    got: list[int] = []
    with pytest.raises(RpcError) as info:
        async for ev in feed:
            got.append(ev.seq)
    assert info.value.code == DEADLINE
    assert info.value.received == len(got) == client.history[-1].received
    assert got == list(range(len(got)))


async def test_client_default_timeout_applies(server: DemoServer) -> None:
    async with GrpcClient(server.address, timeout=0.2) as c:
        with pytest.raises(RpcError) as info:
            await c.server_stream(JSON + "Subscribe", {"delay": 5}).collect()
    assert info.value.code == DEADLINE


async def test_client_stream_deadline(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.client_stream(JSON + "Aggregate", _never_ending(), timeout=0.3)
    assert info.value.code == DEADLINE and info.value.sent == 1


async def test_bidi_deadline(client: GrpcClient) -> None:
    async def prompts() -> AsyncIterator[str]:
        yield "hi"
        await asyncio.Event().wait()

    got: list[str] = []
    with pytest.raises(RpcError) as info:
        async for ev in client.bidi(JSON + "Chat", prompts(), timeout=0.3):
            got.append(ev["kind"])
    assert info.value.code == DEADLINE
    assert got[-1] == "done"  # the first answer arrived before the deadline


# -- server status codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.NOT_FOUND,
    ],
)
async def test_server_error_codes(client: GrpcClient, code: grpc.StatusCode) -> None:
    req = pb.SubscribeRequest(count=100, drop_after=3, fail_code=code.value[0])
    feed = client.server_stream(FEED + "Subscribe", req, codec=pb.Event)
    got = []
    with pytest.raises(RpcError) as info:
        async for ev in feed:
            got.append(ev.seq)
    err = info.value
    assert (err.code, err.received, err.method) == (code, 3, FEED + "Subscribe")
    assert err.retryable == (code == grpc.StatusCode.UNAVAILABLE)
    assert "injected fault" in err.details
    assert got == [0, 1, 2]
    assert isinstance(err.__cause__, grpc.aio.AioRpcError)
    assert client.history[-1].code == code.name and client.history[-1].errors == 1


async def test_unary_error_code_json(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.unary(JSON + "Get", {"fail_code": grpc.StatusCode.UNAUTHENTICATED.value[0]})
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED and info.value.received == 0


async def test_fail_before_first_message(client: GrpcClient) -> None:
    req = pb.SubscribeRequest(fail_code=grpc.StatusCode.PERMISSION_DENIED.value[0])
    with pytest.raises(RpcError) as info:
        await client.server_stream(FEED + "Subscribe", req, codec=pb.Event).collect()
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED and info.value.received == 0


async def test_unimplemented_method(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.unary("/streamnb.demo.v1.Nope/Missing", {})
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED


async def test_bad_json_request_is_invalid_argument(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.server_stream(JSON + "Subscribe", {"bogus": 1}).collect()
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "bogus" in info.value.details
    with pytest.raises(RpcError) as info:
        await client.client_stream(JSON + "Aggregate", [1, "two", 3])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and "#1" in info.value.details


# -- malformed messages -----------------------------------------------------------------------


async def test_malformed_protobuf_message_raises_with_method_and_index(client: GrpcClient) -> None:
    req = pb.SubscribeRequest(count=10, malformed_seq=4)
    feed = client.server_stream(FEED + "Subscribe", req, codec=pb.Event)
    got = []
    with pytest.raises(DecodeError) as info:
        async for ev in feed:
            got.append(ev.seq)
    err = info.value
    assert got == [0, 1, 2, 3]
    assert (err.method, err.index, err.data) == (FEED + "Subscribe", 4, b"\xff\xff\xff\xff")
    assert "#4" in str(err) and "EventFeed/Subscribe" in str(err) and not err.retryable
    assert client.history[-1].decode_errors == 1 and client.history[-1].code == "DECODE_ERROR"


async def test_malformed_json_message_raises(client: GrpcClient) -> None:
    with pytest.raises(DecodeError) as info:
        await client.server_stream(JSON + "Subscribe", {"count": 5, "malformed_seq": 0}).collect()
    assert info.value.index == 0 and isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("mode", ["protobuf", "json"])
async def test_malformed_message_skipped_to_dead_letter(client: GrpcClient, mode: str) -> None:
    dl: DeadLetter[bytes] = DeadLetter()
    if mode == "protobuf":
        req: object = pb.SubscribeRequest(count=10, malformed_seq=6)
        feed = client.server_stream(
            FEED + "Subscribe", req, codec=pb.Event, on_decode_error="skip", dead_letter=dl
        )
        seqs = [e.seq for e in await feed.collect()]
    else:
        feed = client.server_stream(
            JSON + "Subscribe",
            {"count": 10, "malformed_seq": 6},
            on_decode_error="skip",
            dead_letter=dl,
        )
        seqs = [e["seq"] for e in await feed.collect()]
    assert seqs == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    assert feed.dead_letter is dl and dl.count == 1
    entry = dl.entries[0]
    assert (entry.stage, entry.index) == (client.history[-1].method, 6)
    assert isinstance(entry.error, DecodeError) and isinstance(entry.item, bytes)
    final = client.history[-1]
    assert (final.code, final.decode_errors, final.received) == ("OK", 1, 10)


async def test_skip_creates_a_dead_letter_and_bidi_skips_too(client: GrpcClient) -> None:
    bad_then_good = [b"\xff", pb.Event(seq=3).SerializeToString()]
    answers = client.bidi(JSON + "Echo", bad_then_good, codec="raw")
    assert await answers.collect() == bad_then_good  # raw: nothing to decode
    feed = client.bidi("/streamnb.demo.v1.Json/Echo", [b"{}", b"{broken", b"[1]"], codec="raw")
    assert len(await feed.collect()) == 3
    import json

    json_from_raw = Codec("json-in-raw", lambda b: b, json.loads)
    skipping = client.bidi(
        JSON + "Echo", [b"{}", b"{broken", b"[1]"], codec=json_from_raw, on_decode_error="skip"
    )
    assert await skipping.collect() == [{}, [1]]
    assert skipping.dead_letter is not None and skipping.dead_letter.count == 1
    assert skipping.dead_letter.entries[0].index == 1


async def test_malformed_unary_response(client: GrpcClient) -> None:
    with pytest.raises(DecodeError) as info:
        mixed = Codec("json-out-event-in", json_codec().encode, pb.Event.FromString)
        await client.unary(JSON + "Get", {}, codec=mixed)  # JSON bytes are not an Event
    assert info.value.index == 0 and info.value.method == JSON + "Get"


# -- failing requests -------------------------------------------------------------------------


class Boom(Exception):
    pass


async def _failing_requests() -> AsyncIterator[object]:
    yield {"value": 1}
    yield {"value": 2}
    raise Boom("source broke")


async def test_client_stream_request_source_error_propagates(
    server: DemoServer, client: GrpcClient
) -> None:
    with pytest.raises(Boom) as info:
        await client.client_stream(JSON + "Aggregate", _failing_requests())
    assert any("request #2" in n and "Aggregate" in n for n in info.value.__notes__)
    call = await server.wait_for_call(lambda c: c.method == "Json/Aggregate" and c.finished)
    assert call.cancelled and call.received <= 2  # the server never saw a half-close


async def test_bidi_request_source_error_propagates() -> None:
    # token_delay keeps the server busy answering, so the cancellation lands in its handler
    # (a cancel that arrives while an idle handler waits for requests looks like a half-close).
    async with DemoServer(token_delay=0.02) as server, GrpcClient(server.address) as client:

        async def prompts() -> AsyncIterator[str]:
            yield "a long prompt with many words to answer slowly"
            await asyncio.sleep(0.05)
            raise Boom("prompt source broke")

        got: list[str] = []
        with pytest.raises(Boom) as info:
            async for ev in client.bidi(JSON + "Chat", prompts()):
                got.append(ev["kind"])
        assert any("request #1" in n for n in info.value.__notes__)
        assert "done" not in got
        call = await server.wait_for_call(lambda c: c.method == "Json/Chat" and c.finished)
        assert call.cancelled


async def test_encode_errors_name_method_and_index(client: GrpcClient) -> None:
    with pytest.raises(EncodeError) as info:
        await client.client_stream(JSON + "Aggregate", [1, 2, {3}])
    assert info.value.index == 2 and info.value.method == JSON + "Aggregate"
    with pytest.raises(EncodeError):
        await client.unary(FEED + "Get", {"seq": 1}, codec=pb.Event)  # dict without request type
    with pytest.raises(EncodeError) as info:
        await client.bidi(FEED + "Echo", [pb.Event(), "nope"], codec=pb.Event).collect()
    assert info.value.index == 1

"""Resumable server streams: exactly-once delivery across dropped connections."""

from __future__ import annotations

import grpc
import pytest
from structlog.testing import capture_logs

from streamnb import CircuitBreaker, CircuitOpenError, RetryExhaustedError, RetryPolicy
from streamnb.demo import DemoServer
from streamnb.grpc import GrpcClient, RpcError
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

SUBSCRIBE = "/streamnb.demo.v1.EventFeed/Subscribe"
FAST = RetryPolicy(max_attempts=5, initial=0.001, max_delay=0.01)


async def test_exactly_once_across_20_drops_in_100k_events(
    server: DemoServer, client: GrpcClient
) -> None:
    total, drop_after = 100_000, 4_762  # 100_000 / 4_762 -> 21 calls, 20 of them dropped

    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, count=total, drop_after=drop_after)

    feed = client.server_stream(
        SUBSCRIBE, request(0), codec=pb.Event, resume=lambda ev: request(ev.seq + 1), retry=FAST
    )
    expected = 0
    with capture_logs() as logs:
        async for ev in feed:
            assert ev.seq == expected, f"got seq {ev.seq}, expected {expected}"
            expected += 1
    assert expected == total
    stats = client.history[-1]
    assert (stats.reconnects, stats.errors, stats.sent, stats.received) == (20, 20, 21, total)
    assert stats.code == "OK"
    served = [c for c in server.calls if c.method == "EventFeed/Subscribe"]
    assert len(served) == 21 and sum(c.sent for c in served) == total
    assert sum(c.error == "UNAVAILABLE" for c in served) == 20
    assert sum(e["event"] == "streamnb.grpc.reconnect" for e in logs) == 20


async def test_resume_with_json_codec(client: GrpcClient) -> None:
    def request(start: int) -> dict[str, int]:
        return {"start": start, "count": 50, "drop_after": 7}

    feed = client.server_stream(
        "/streamnb.demo.v1.Json/Subscribe",
        request(0),
        resume=lambda ev: request(ev["seq"] + 1),
        retry=FAST,
    )
    assert [e["seq"] for e in await feed.collect()] == list(range(50))
    assert client.history[-1].reconnects == 7


async def test_resume_after_consumer_side_take(client: GrpcClient) -> None:
    """take() after a resumed stream pulls exactly what it needs, across a reconnect."""

    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, drop_after=10)  # endless feed

    feed = client.server_stream(
        SUBSCRIBE, request(0), codec=pb.Event, resume=lambda ev: request(ev.seq + 1), retry=FAST
    )
    assert [e.seq for e in await feed.take(25).collect()] == list(range(25))
    assert client.history[-1].reconnects == 2 and client.history[-1].code == "CANCELLED"


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED]
)
async def test_non_retryable_codes_are_not_retried(
    server: DemoServer, client: GrpcClient, code: grpc.StatusCode
) -> None:
    req = pb.SubscribeRequest(count=100, drop_after=5, fail_code=code.value[0])
    feed = client.server_stream(SUBSCRIBE, req, codec=pb.Event, resume=lambda ev: req, retry=FAST)
    got = []
    with pytest.raises(RpcError) as info:
        async for ev in feed:
            got.append(ev.seq)
    assert info.value.code == code and got == [0, 1, 2, 3, 4]
    assert client.history[-1].reconnects == 0 and client.history[-1].errors == 1
    assert sum(c.method == "EventFeed/Subscribe" for c in server.calls) == 1


async def test_retries_give_up_without_progress(client: GrpcClient) -> None:
    req = pb.SubscribeRequest(fail_code=grpc.StatusCode.UNAVAILABLE.value[0])  # fails at once
    feed = client.server_stream(SUBSCRIBE, req, codec=pb.Event, resume=lambda ev: req, retry=FAST)
    with pytest.raises(RetryExhaustedError) as info:
        await feed.collect()
    assert isinstance(info.value.__cause__, RpcError)
    assert info.value.__cause__.code == grpc.StatusCode.UNAVAILABLE
    assert client.history[-1].reconnects == 4 and client.history[-1].errors == 5
    assert client.history[-1].code == "RetryExhaustedError"


async def test_breaker_stops_reconnecting(client: GrpcClient) -> None:
    req = pb.SubscribeRequest(fail_code=grpc.StatusCode.UNAVAILABLE.value[0])
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=60)
    feed = client.server_stream(
        SUBSCRIBE, req, codec=pb.Event, resume=lambda ev: req, retry=FAST, breaker=breaker
    )
    with pytest.raises(CircuitOpenError):
        await feed.collect()
    # two failed calls open the circuit; the third connection is refused before it is made
    assert (client.history[-1].sent, client.history[-1].reconnects) == (2, 1)
    assert client.history[-1].code == "CircuitOpenError"


async def test_deadline_covers_all_attempts(client: GrpcClient) -> None:
    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, rate=200, drop_after=5)

    feed = client.server_stream(
        SUBSCRIBE,
        request(0),
        codec=pb.Event,
        resume=lambda ev: request(ev.seq + 1),
        retry=FAST,
        timeout=0.5,
    )
    got = []
    with pytest.raises(RpcError) as info:
        async for ev in feed:
            got.append(ev.seq)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert got == list(range(len(got))) and client.history[-1].reconnects >= 1


async def test_resume_skips_undecodable_messages(client: GrpcClient) -> None:
    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, count=30, drop_after=10, malformed_seq=15)

    feed = client.server_stream(
        SUBSCRIBE,
        request(0),
        codec=pb.Event,
        resume=lambda ev: request(ev.seq + 1),
        retry=FAST,
        on_decode_error="skip",
    )
    seqs = [e.seq for e in await feed.collect()]
    assert seqs == [s for s in range(30) if s != 15]
    assert feed.dead_letter is not None and feed.dead_letter.count == 1

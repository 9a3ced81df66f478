"""Every call shape against the demo server, in protobuf and JSON modes; options; stats."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest
from structlog.testing import capture_logs

from streamnb import Stream
from streamnb.demo import DemoServer, answer_prompt
from streamnb.grpc import CallSnapshot, GrpcClient, RpcStream
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

FEED = "/streamnb.demo.v1.EventFeed/"
JSON = "/streamnb.demo.v1.Json/"


# -- unary ------------------------------------------------------------------------------------


async def test_unary_protobuf(client: GrpcClient) -> None:
    ev = await client.unary(FEED + "Get", pb.GetRequest(seq=41, payload_size=3), codec=pb.Event)
    assert isinstance(ev, pb.Event)
    assert (ev.seq, ev.kind, ev.payload) == (41, "get", "xxx")
    stats = client.history[-1]
    assert (stats.shape, stats.sent, stats.received, stats.code) == ("unary", 1, 1, "OK")
    assert stats.bytes_received == ev.ByteSize()


async def test_unary_json_and_raw(client: GrpcClient) -> None:
    ev = await client.unary(JSON + "Get", {"seq": 5})
    assert ev["seq"] == 5 and ev["kind"] == "get"
    raw = await client.unary(JSON + "Get", b'{"seq": 6}', codec="raw")
    assert isinstance(raw, bytes) and b'"seq": 6' in raw


# -- server streaming -------------------------------------------------------------------------


async def test_server_stream_protobuf(client: GrpcClient) -> None:
    feed = client.server_stream(
        FEED + "Subscribe", pb.SubscribeRequest(start=10, count=60, kind="k"), codec=pb.Event
    )
    assert isinstance(feed, RpcStream)
    async with feed.open() as it:
        events = [e async for e in it]
        stats = it.snapshots("call")[feed.method]
    assert [e.seq for e in events] == list(range(10, 60))
    assert {e.kind for e in events} == {"k"}
    assert all(e.timestamp > 0 for e in events)
    assert isinstance(stats, CallSnapshot)
    assert (stats.received, stats.sent, stats.code) == (50, 1, "OK")
    assert stats.bytes_received == sum(e.ByteSize() for e in events)
    final = client.history[-1]  # the finished call's snapshot is also kept by the client
    assert (final.name, final.received, final.bytes_received, final.code) == (
        feed.method,
        stats.received,
        stats.bytes_received,
        "OK",
    )


async def test_server_stream_json(client: GrpcClient) -> None:
    feed = client.server_stream(JSON + "Subscribe", {"count": 25, "payload_size": 4})
    events = await feed.collect()
    assert [e["seq"] for e in events] == list(range(25))
    assert events[0]["payload"] == "xxxx"


async def test_server_stream_batched_protobuf_and_json(client: GrpcClient) -> None:
    req = pb.SubscribeRequest(count=1050, batch_size=100)
    batches = await client.server_stream(
        FEED + "SubscribeBatched", req, codec=pb.EventBatch
    ).collect()
    assert [len(b.events) for b in batches] == [100] * 10 + [50]
    assert [e.seq for b in batches for e in b.events] == list(range(1050))
    flat = client.server_stream(JSON + "SubscribeBatched", {"count": 30, "batch_size": 7}).flat_map(
        lambda b: b["events"]
    )
    assert [e["seq"] for e in await flat.collect()] == list(range(30))


async def test_iterating_twice_opens_two_calls(server: DemoServer, client: GrpcClient) -> None:
    feed = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(count=5), codec=pb.Event)
    first = [e.seq for e in await feed.collect()]
    second = [e.seq for e in await feed.collect()]
    assert first == second == [0, 1, 2, 3, 4]
    assert sum(c.method == "EventFeed/Subscribe" for c in server.calls) == 2
    assert len(client.history) == 2
    assert all(s.received == 5 and s.code == "OK" for s in client.history)
    nothing_yet = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(count=5))
    assert isinstance(nothing_yet, RpcStream)
    assert len(client.history) == 2
    assert sum(c.method == "EventFeed/Subscribe" for c in server.calls) == 2


async def test_monitor_on_response_stream(client: GrpcClient) -> None:
    feed = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(count=300), codec=pb.Event)
    monitored = feed.monitor("events", size=lambda e: e.ByteSize(), timestamp=lambda e: e.timestamp)
    async with monitored.open() as it:
        n = 0
        async for _ in it:
            n += 1
        snap = it.metrics()["events"]
        call = it.snapshots("call")[feed.method]
    assert n == snap.items == 300
    assert snap.bytes == call.bytes_received
    assert snap.latency is not None and snap.latency >= 0


# -- client streaming -------------------------------------------------------------------------


async def test_client_stream_protobuf_sync_iterable(client: GrpcClient) -> None:
    summary = await client.client_stream(
        "/streamnb.demo.v1.Aggregator/Aggregate",
        (pb.Number(value=v) for v in (4.0, -2.0, 10.0)),
        codec=pb.Summary,
    )
    assert (summary.count, summary.sum, summary.min, summary.max) == (3, 12.0, -2.0, 10.0)
    assert summary.mean == pytest.approx(4.0)
    assert client.history[-1].sent == 3


async def test_client_stream_json_async_iterable_and_stream(client: GrpcClient) -> None:
    async def numbers() -> object:
        for v in range(1, 11):
            yield {"value": v}

    summary = await client.client_stream(JSON + "Aggregate", numbers())  # type: ignore[arg-type]
    assert summary == {"count": 10, "sum": 55.0, "mean": 5.5, "min": 1.0, "max": 10.0}
    from_stream = await client.client_stream(JSON + "Aggregate", Stream(range(5)).map(float))
    assert from_stream["count"] == 5 and from_stream["sum"] == 10.0
    empty = await client.client_stream(JSON + "Aggregate", [])
    assert empty["count"] == 0


# -- bidirectional ----------------------------------------------------------------------------


async def test_bidi_protobuf_agent(client: GrpcClient) -> None:
    prompts = [pb.Prompt(id=1, text="hello"), pb.Prompt(id=2, text="search the docs")]
    answers = client.bidi("/streamnb.demo.v1.Agent/Chat", prompts, codec=pb.AgentEvent)
    events = await answers.collect()
    kinds = [(e.prompt_id, e.WhichOneof("event")) for e in events]
    expected = [(p.id, e["kind"]) for p in prompts for e in answer_prompt(p.id, p.text)]
    assert kinds == expected
    tool = next(e for e in events if e.WhichOneof("event") == "tool_call")
    assert tool.tool_call.name == "search"
    text = "".join(e.token.text for e in events if e.prompt_id == 1 and e.HasField("token"))
    assert text == "You said: hello"
    assert (client.history[-1].sent, client.history[-1].received) == (2, len(events))


async def test_bidi_json_chat_and_echo(client: GrpcClient) -> None:
    events = await client.bidi(JSON + "Chat", ["what time is it"]).collect()
    assert [e["kind"] for e in events] == [e["kind"] for e in answer_prompt(0, "what time is it")]
    echoed = await client.bidi(JSON + "Echo", Stream(range(100)).map(lambda i: {"i": i})).collect()
    assert echoed == [{"i": i} for i in range(100)]


async def test_bidi_protobuf_echo_async_source(client: GrpcClient) -> None:
    async def events() -> object:
        for i in range(200):
            yield pb.Event(seq=i, payload="p")

    out = await client.bidi(FEED + "Echo", events(), codec=pb.Event).collect()  # type: ignore[arg-type]
    assert [e.seq for e in out] == list(range(200))


async def test_bidi_interleaves_send_and_receive(client: GrpcClient) -> None:
    """The next prompt is produced only after the answer to the previous one arrived."""
    import asyncio

    answered = asyncio.Event()
    seen: list[str] = []

    async def prompts() -> object:
        yield "one"
        await asyncio.wait_for(answered.wait(), 10)
        yield "two"

    async for ev in client.bidi(JSON + "Chat", prompts()):  # type: ignore[arg-type]
        seen.append(ev["kind"])
        if ev["kind"] == "done":
            answered.set()
    assert seen.count("done") == 2


# -- options ----------------------------------------------------------------------------------


async def test_metadata_reaches_server_and_is_redacted_in_logs(server: DemoServer) -> None:
    async with GrpcClient(
        server.address, metadata={"authorization": "Bearer TOPSECRET", "x-team": "a"}
    ) as c:
        with capture_logs() as logs:
            await c.unary(JSON + "Get", {}, metadata=[("x-api-key", "KEY123"), ("x-req", "7")])
            await c.server_stream(
                JSON + "Subscribe", {"count": 2}, metadata={"x-req": "8"}
            ).collect()
            await c.client_stream(JSON + "Aggregate", [1], metadata={"x-req": "9"})
            await c.bidi(JSON + "Echo", [1], metadata={"x-req": "10"}).collect()
    calls = list(server.calls)[-4:]
    assert [call.metadata.get("x-req") for call in calls] == ["7", "8", "9", "10"]
    assert all(call.metadata["authorization"] == "Bearer TOPSECRET" for call in calls)
    assert calls[0].metadata["x-api-key"] == "KEY123"
    events = {e["event"] for e in logs}
    assert {"streamnb.grpc.call_started", "streamnb.grpc.call_finished"} <= events
    assert "TOPSECRET" not in repr(logs) and "KEY123" not in repr(logs)
    started = next(e for e in logs if e["event"] == "streamnb.grpc.call_started")
    assert ("authorization", "<redacted>") in started["metadata"]


async def test_no_per_message_logging(client: GrpcClient) -> None:
    with capture_logs() as logs:
        await client.server_stream(JSON + "Subscribe", {"count": 500}).count()
    assert len(logs) <= 3


async def test_existing_channel_is_used_not_closed(server: DemoServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        async with GrpcClient(channel) as c:
            assert (await c.unary(JSON + "Get", {"seq": 1}))["seq"] == 1
        # still usable after the client closed
        reply = await channel.unary_unary(JSON + "Get")(b"{}")
        assert b'"seq": 0' in reply
        with pytest.raises(ValueError, match="belong to the channel"):
            GrpcClient(channel, max_receive_message_length=10)


async def test_max_receive_message_length(server: DemoServer) -> None:
    async with GrpcClient(server.address, max_receive_message_length=1000) as c:
        assert (await c.unary(JSON + "Get", {"payload_size": 10}))["payload"] == "x" * 10
        from streamnb.grpc import RpcError

        with pytest.raises(RpcError) as info:
            await c.unary(JSON + "Get", {"payload_size": 5000})
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not info.value.retryable


async def test_call_stats_history_is_bounded(server: DemoServer) -> None:
    async with GrpcClient(server.address, history=3) as c:
        for i in range(5):
            await c.unary(JSON + "Get", {"seq": i})
    assert len(c.history) == 3
    assert all(isinstance(s, CallSnapshot) and s.code == "OK" for s in c.history)
    assert c.history[-1].as_dict()["elapsed"] >= 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    d: Path = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()


async def test_tls_via_channel_credentials(tls_files: tuple[bytes, bytes]) -> None:
    key, cert = tls_files
    creds = grpc.ssl_server_credentials([(key, cert)])
    async with DemoServer(credentials=creds) as srv:
        async with GrpcClient(
            srv.address, credentials=grpc.ssl_channel_credentials(root_certificates=cert)
        ) as c:
            events = await c.server_stream(JSON + "Subscribe", {"count": 3}).collect()
            assert [e["seq"] for e in events] == [0, 1, 2]
        from streamnb.grpc import RpcError

        async with GrpcClient(srv.address, timeout=5) as plaintext:  # no TLS: cannot talk
            with pytest.raises(RpcError) as info:
                await plaintext.unary(JSON + "Get", {})
            assert info.value.code == grpc.StatusCode.UNAVAILABLE

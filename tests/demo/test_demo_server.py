"""The embedded demo server: feeds, faults, health, reflection, the CLI and the live demo."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import signal
import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from streamnb.demo import SERVICE_NAMES, DemoServer, answer_prompt
from streamnb.demo.live import run_demo
from streamnb.grpc import GrpcClient, RpcError
from streamnb.grpc._generated import streamnb_demo_pb2 as pb
from streamnb.grpc._generated import streamnb_demo_pb2_grpc as pb_grpc

FEED = "/streamnb.demo.v1.EventFeed/"


async def test_ephemeral_ports_and_lifecycle() -> None:
    async with DemoServer() as a, DemoServer() as b:
        assert a.address.startswith("127.0.0.1:") and a.port != b.port and a.port > 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = a.address
    srv = DemoServer()
    await srv.start()
    with pytest.raises(RuntimeError, match="already started"):
        await srv.start()
    await srv.stop()
    await srv.stop()  # idempotent


async def test_generated_stubs_work_against_the_server() -> None:
    async with DemoServer() as srv, grpc.aio.insecure_channel(srv.address) as ch:
        stub = pb_grpc.EventFeedStub(ch)  # type: ignore[no-untyped-call]
        events = [e async for e in stub.Subscribe(pb.SubscribeRequest(start=3, count=8))]
        assert [e.seq for e in events] == [3, 4, 5, 6, 7]
        aggregator = pb_grpc.AggregatorStub(ch)  # type: ignore[no-untyped-call]
        summary = await aggregator.Aggregate(iter([pb.Number(value=2), pb.Number(value=8)]))
        assert (summary.count, summary.mean, summary.min, summary.max) == (2, 5.0, 2.0, 8.0)


async def test_health_service_reports_serving() -> None:
    async with DemoServer() as srv, grpc.aio.insecure_channel(srv.address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", *SERVICE_NAMES, "streamnb.demo.v1.Json"):
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


async def test_feed_payload_kind_and_timestamps() -> None:
    async with DemoServer() as srv, GrpcClient(srv.address) as c:
        req = pb.SubscribeRequest(count=3, payload_size=80, kind="price")
        events = await c.server_stream(FEED + "Subscribe", req, codec=pb.Event).collect()
        assert all(e.kind == "price" and len(e.payload) == 80 for e in events)
        assert all(90 <= e.ByteSize() <= 110 for e in events)  # the benchmark's ~100 bytes
        stamps = [e.timestamp for e in events]
        assert stamps == sorted(stamps) and stamps[0] > 1.6e9


async def test_feed_rate_and_delay_are_applied() -> None:
    """Not a timing test: it checks that a paced feed still delivers everything in order."""
    async with DemoServer() as srv, GrpcClient(srv.address) as c:
        req = pb.SubscribeRequest(count=20, rate=1000, delay=0.01)
        events = await c.server_stream(FEED + "Subscribe", req, codec=pb.Event).collect()
        assert [e.seq for e in events] == list(range(20))


async def test_batched_feed_with_drop_counts_messages() -> None:
    async with DemoServer() as srv, GrpcClient(srv.address) as c:
        req = pb.SubscribeRequest(count=1000, batch_size=10, drop_after=3)
        batches: list[pb.EventBatch] = []
        with pytest.raises(RpcError) as info:
            async for b in c.server_stream(FEED + "SubscribeBatched", req, codec=pb.EventBatch):
                batches.append(b)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert [e.seq for b in batches for e in b.events] == list(range(30))


async def test_invalid_fail_code_is_rejected() -> None:
    async with DemoServer() as srv, GrpcClient(srv.address) as c:
        with pytest.raises(RpcError) as info:
            await c.server_stream(
                FEED + "Subscribe", pb.SubscribeRequest(fail_code=99), codec=pb.Event
            ).collect()
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_answer_prompt_is_deterministic() -> None:
    a = answer_prompt(3, "what is the weather")
    assert a == answer_prompt(3, "what is the weather")
    assert a[0] == {
        "kind": "tool_call",
        "name": "weather",
        "arguments": '{"query": "what is the weather"}',
        "prompt_id": 3,
        "index": 0,
    }
    tokens = [e["text"] for e in a if e["kind"] == "token"]
    assert "".join(tokens) == "You said: what is the weather"
    assert a[-1] == {"kind": "done", "tokens": len(tokens), "prompt_id": 3, "index": len(a) - 1}
    assert [e["index"] for e in a] == list(range(len(a)))
    assert all(e["kind"] != "tool_call" for e in answer_prompt(1, "hello"))


async def test_server_records_calls_and_waits() -> None:
    async with DemoServer(history=2) as srv, GrpcClient(srv.address) as c:
        for i in range(3):
            await c.unary(FEED + "Get", pb.GetRequest(seq=i), codec=pb.Event)
        assert len(srv.calls) == 2
        call = await srv.wait_for_call(lambda c: c.method == "EventFeed/Get")
        assert call.finished and call.sent == 1
        with pytest.raises(TimeoutError):
            await srv.wait_for_call(lambda c: c.method == "never", within=0.05)


async def test_live_demo_runs_and_checks_exactly_once() -> None:
    out = io.StringIO()
    result = await run_demo(events=3000, drops=3, out=out)
    text = out.getvalue()
    assert result["exactly_once"] and result["events"] == 3000 and result["reconnects"] == 3
    assert result["aggregate"] == {"count": 100, "sum": 5050.0}
    assert "exactly once and in order: yes" in text
    assert "[tool call weather(" in text and "You said: hello streamnb" in text


def test_python_m_streamnb_demo_serves_until_interrupted() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamnb.demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("streamnb demo server listening on 127.0.0.1:")
        address = line.rsplit(" ", 1)[1].strip()

        async def check() -> list[str]:
            async with GrpcClient(address, timeout=10) as c:
                return await c.services()

        assert set(SERVICE_NAMES) <= set(asyncio.run(check()))
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_m_streamnb_demo_live_mode() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "streamnb.demo", "--demo", "--events", "2000", "--drops", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "exactly once and in order: yes" in out.stdout


async def test_json_feed_injects_out_of_order_and_late_event_times() -> None:
    params = {
        "count": 400,
        "rate": 4000,
        "kinds": ["api", "db", "cache"],
        "disorder": 0.5,
        "late_every": 50,
        "late_by": 5.0,
        "seed": 3,
    }
    async with DemoServer() as srv, GrpcClient(srv.address) as client:
        events = await client.server_stream("/streamnb.demo.v1.Json/Subscribe", params).collect(
            limit=None
        )
        again = await client.server_stream(
            "/streamnb.demo.v1.Json/Subscribe", {**params, "start": 100}
        ).collect(limit=None)
    assert [e["seq"] for e in events] == list(range(400))
    assert {e["kind"] for e in events} == {"api", "db", "cache"}
    assert all(e["latency_ms"] > 0 for e in events)
    ts = [e["timestamp"] for e in events]
    backwards = sum(1 for a, b in itertools.pairwise(ts) if b < a)
    assert backwards > 50  # out of order
    late = [e for e in events if e["late"]]
    assert [e["seq"] for e in late] == list(range(49, 400, 50))
    assert all(max(ts[: e["seq"]]) - e["timestamp"] > 4.0 for e in late)
    # deterministic per seq: a resumed feed repeats kinds and latencies
    assert [(e["kind"], e["latency_ms"]) for e in again] == [
        (e["kind"], e["latency_ms"]) for e in events[100:]
    ]

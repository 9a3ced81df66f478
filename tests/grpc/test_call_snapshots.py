"""Call stats belong to the run: reachable from the Iteration, through operators, never on
the Stream definition; unary/client-streaming calls keep theirs in ``client.history``."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from typing import Any, cast

import pytest

from streamnb import DeadLetter, InvalidArgumentError, Stream
from streamnb._callstats import CallStats
from streamnb.demo import DemoServer
from streamnb.grpc import CallSnapshot, GrpcClient, RpcStream, call_snapshot
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

FEED = "/streamnb.demo.v1.EventFeed/"
JSON = "/streamnb.demo.v1.Json/"


async def test_the_call_snapshot_survives_map_and_filter(client: GrpcClient) -> None:
    feed = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(count=40), codec=pb.Event)
    evens = feed.map(lambda ev: ev.seq).filter(lambda s: s % 2 == 0)
    assert not isinstance(evens, RpcStream)  # a plain Stream: the stats come from the run
    async with evens.open() as it:
        got = [s async for s in it]
        snap = call_snapshot(it)
        assert list(it.snapshots("call")) == [feed.method]
    assert got == list(range(0, 40, 2))
    assert isinstance(snap, CallSnapshot)
    assert (snap.method, snap.shape, snap.received, snap.sent, snap.code) == (
        feed.method,
        "server_stream",
        40,
        1,
        "OK",
    )
    assert snap.bytes_received > 0 and snap.rate > 0


async def test_the_definition_holds_no_stats_and_runs_do_not_share_counters(
    client: GrpcClient,
) -> None:
    feed = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(count=50), codec=pb.Event)
    assert not hasattr(feed, "stats")

    async def consume(n: int) -> CallSnapshot:
        async with feed.take(n).open() as it:
            async for _ in it:
                await asyncio.sleep(0)  # interleave the two runs
            return call_snapshot(it, feed.method)

    few, many = await asyncio.gather(consume(3), consume(30))
    assert (few.received, many.received) == (3, 30)
    assert few.code == many.code == "CANCELLED"  # take() closed each call early


async def test_a_live_snapshot_while_the_call_runs(client: GrpcClient) -> None:
    feed = client.server_stream(FEED + "Subscribe", pb.SubscribeRequest(rate=2000), codec=pb.Event)
    async with feed.open() as it:
        n = 0
        async for _ in it:
            n += 1
            if n == 25:
                live = call_snapshot(it)
                break
    assert live.code is None and live.received == 25 and live.elapsed > 0
    assert client.history[-1].code == "CANCELLED" and client.history[-1].received == 25


async def test_two_calls_of_one_method_in_one_run_are_told_apart(client: GrpcClient) -> None:
    a = client.server_stream(JSON + "Subscribe", {"count": 4})
    b = client.server_stream(JSON + "Subscribe", {"count": 6})
    async with a.merge(b).open() as it:
        assert len([x async for x in it]) == 10
        calls = it.snapshots("call")
        with pytest.raises(InvalidArgumentError, match="holds 2 calls"):
            call_snapshot(it)
        with pytest.raises(InvalidArgumentError, match="no such call"):
            call_snapshot(it, "/nope.Svc/Method")
    assert set(calls) == {a.method, a.method + " #2"}
    assert sorted(s.received for s in calls.values()) == [4, 6]  # type: ignore[union-attr]


async def test_bidi_counters_on_the_run(client: GrpcClient) -> None:
    answers = client.bidi(JSON + "Chat", Stream(["hello", "what time is it"]))
    async with answers.map(lambda e: e["kind"]).open() as it:
        kinds = [k async for k in it]
        snap = call_snapshot(it)
    assert kinds.count("done") == 2
    assert (snap.shape, snap.sent, snap.received, snap.code) == ("bidi", 2, len(kinds), "OK")


async def test_unary_and_client_stream_snapshots_in_history(client: GrpcClient) -> None:
    await client.unary(JSON + "Get", {"seq": 1})
    await client.client_stream(JSON + "Aggregate", [{"value": 1}, {"value": 2}])
    unary, upload = list(client.history)[-2:]
    assert (unary.shape, unary.sent, unary.received, unary.code) == ("unary", 1, 1, "OK")
    assert (upload.shape, upload.sent, upload.received, upload.code) == (
        "client_stream",
        2,
        1,
        "OK",
    )


async def test_call_arguments_are_checked_up_front(server: DemoServer) -> None:
    async with GrpcClient(server.address) as c:
        with pytest.raises(InvalidArgumentError, match="timeout=nan"):
            c.server_stream(JSON + "Subscribe", {}, timeout=math.nan)
        with pytest.raises(InvalidArgumentError, match="on_decode_error"):
            c.bidi(JSON + "Chat", [], on_decode_error="ignore")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="only with on_decode_error='skip'"):
            c.server_stream(JSON + "Subscribe", {}, dead_letter=DeadLetter())
        with pytest.raises(TypeError, match="resume="):
            c.server_stream(JSON + "Subscribe", {}, resume=42)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="GrpcClient\\(timeout=-1\\)"):
        GrpcClient(server.address, timeout=-1)


async def test_the_run_counts_on_the_shared_counters_and_a_failure_once(
    client: GrpcClient,
) -> None:
    feed = client.server_stream(JSON + "Subscribe", {"count": 3})
    async with feed.open() as it:
        assert len([x async for x in it]) == 3
        live = it.state.observed("call")[feed.method]  # registered when the run started
    assert isinstance(live, CallStats)
    ended = dataclasses.replace(live.snapshot(), taken_at=client.history[-1].taken_at)
    assert ended == client.history[-1]  # the run's counters are what history kept
    counters = cast(Any, live)
    boom = RuntimeError("boom")
    wrapped = ValueError("wrapped")
    wrapped.__cause__ = boom
    counters.failed(boom)
    counters.failed(boom)  # one failure seen by two steps (the attempt, the run's end)
    counters.failed(wrapped)  # or seen again wrapped by a later step: still counted once
    assert counters.snapshot().errors == 1
    counters.failed(RuntimeError("another"))
    assert (counters.snapshot().errors, counters.code) == (2, "RuntimeError")

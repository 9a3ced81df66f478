"""Failure paths of the gRPC client that used to break the promise (issue 11, items 4, 5, 11).

Each test fails on the code before the fix: a one-shot request generator silently sent nothing
the second time; a resumed stream slept past its deadline; a bug in ``resume=`` surfaced as a
bare exception that did not say where it came from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from streamnb import RetryPolicy, StreamConsumedError
from streamnb.demo import DemoServer
from streamnb.grpc import GrpcClient, RpcError
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

JSON = "/streamnb.demo.v1.Json/"
SUBSCRIBE = "/streamnb.demo.v1.EventFeed/Subscribe"
FAST = RetryPolicy(max_attempts=5, initial=0.001, max_delay=0.01)


# -- item 4: bidi() over a one-shot request generator -------------------------------------------


async def test_bidi_with_a_generator_refuses_a_second_iteration(
    server: DemoServer, client: GrpcClient
) -> None:
    def prompts() -> Iterator[str]:
        yield "hello"

    answers = client.bidi(JSON + "Chat", prompts())
    first = await answers.collect()
    assert [e["kind"] for e in first][-1] == "done" and len(first) > 1
    with pytest.raises(StreamConsumedError, match=r"one-shot generator.*already consumed"):
        await answers.collect()
    # the refused iteration opened no call
    assert sum(c.method == "Json/Chat" for c in server.calls) == 1


async def test_bidi_with_an_async_generator_refuses_a_second_iteration(
    server: DemoServer, client: GrpcClient
) -> None:
    async def prompts() -> object:
        yield "hello"

    answers = client.bidi(JSON + "Chat", prompts())  # type: ignore[arg-type]
    assert len(await answers.collect()) > 1
    with pytest.raises(StreamConsumedError):
        await answers.collect()
    assert sum(c.method == "Json/Chat" for c in server.calls) == 1


async def test_bidi_with_a_list_iterates_twice(server: DemoServer, client: GrpcClient) -> None:
    answers = client.bidi(JSON + "Chat", ["hello"])
    first = [(e["kind"], e.get("text")) for e in await answers.collect()]
    second = [(e["kind"], e.get("text")) for e in await answers.collect()]
    assert first == second and len(first) > 1
    assert sum(c.method == "Json/Chat" for c in server.calls) == 2


# -- item 5: a resumed stream keeps its deadline ------------------------------------------------


async def test_resumed_stream_fails_at_its_deadline_not_after(client: GrpcClient) -> None:
    """Backoff sleeps of 2 s against a server that always answers UNAVAILABLE, deadline 3.2 s:
    the sleep that would cross the deadline is cut short, and the stream fails at 3.2 s."""
    down = pb.SubscribeRequest(fail_code=grpc.StatusCode.UNAVAILABLE.value[0])
    slow = RetryPolicy(max_attempts=100, initial=2.0, max_delay=2.0, jitter=False)
    feed = client.server_stream(
        SUBSCRIBE, down, codec=pb.Event, resume=lambda ev: down, retry=slow, timeout=3.2
    )
    t0 = time.monotonic()
    with pytest.raises(RpcError) as info:
        await feed.collect()
    elapsed = time.monotonic() - t0
    assert 3.1 <= elapsed < 3.2 + 0.5, elapsed
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline of 3.2 s" in str(info.value)
    final = client.history[-1]
    assert final.code == "DEADLINE_EXCEEDED" and final.reconnects == 2  # attempts at 0, 2, 3.2 s


async def test_resumed_stream_with_the_default_policy_keeps_the_deadline(
    client: GrpcClient,
) -> None:
    down = pb.SubscribeRequest(fail_code=grpc.StatusCode.UNAVAILABLE.value[0])
    patient = RetryPolicy(max_attempts=1000, initial=0.05, max_delay=2.0)
    feed = client.server_stream(
        SUBSCRIBE, down, codec=pb.Event, resume=lambda ev: down, retry=patient, timeout=1.5
    )
    t0 = time.monotonic()
    with pytest.raises(RpcError) as info:
        await feed.collect()
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 1.5 + 0.5


# -- item 11: a bug in the resume= callback is named --------------------------------------------


async def test_a_failing_resume_callback_says_where_it_failed(
    server: DemoServer, client: GrpcClient
) -> None:
    feed = client.server_stream(
        JSON + "Subscribe",
        {"count": 50, "drop_after": 5},
        resume=lambda ev: {"start": ev["no_such_field"] + 1, "count": 50},
        retry=FAST,
    )
    got: list[int] = []
    with pytest.raises(KeyError) as info:  # the user's own exception type
        async for ev in feed:
            got.append(ev["seq"])
    assert got == [0, 1, 2, 3, 4]
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "resume= failed while reconnecting /streamnb.demo.v1.Json/Subscribe" in notes
    assert "after item #4" in notes and "'seq': 4" in notes
    # a bug is never retried: one call was made, and the run ended with the bug
    assert sum(c.method == "Json/Subscribe" for c in server.calls) == 1
    assert client.history[-1].code == "KeyError"


async def test_a_failing_resume_callback_is_not_retried_even_when_retry_on_accepts_it(
    server: DemoServer, client: GrpcClient
) -> None:
    def resume(ev: dict[str, int]) -> dict[str, int]:
        raise ConnectionError("resume() looks transient but is a bug")

    anything = RetryPolicy(max_attempts=5, initial=0.001, max_delay=0.01, retry_on=lambda e: True)
    feed = client.server_stream(
        JSON + "Subscribe", {"count": 20, "drop_after": 3}, resume=resume, retry=anything
    )
    with pytest.raises(ConnectionError) as info:
        await feed.collect()
    assert any("after item #2" in n for n in info.value.__notes__)
    assert sum(c.method == "Json/Subscribe" for c in server.calls) == 1

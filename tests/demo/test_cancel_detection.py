"""ServedCall.cancelled is reliable: every client cancellation is recorded, no half-close is.

grpc.aio presents a client's cancellation to a handler in three ways (see the DemoServer module
docstring): a CancelledError in the handler, one in grpc's write of a response the handler
yielded, or an end of the request stream that looks like a half-close. Each scenario below hits
one of them, repeated 20 times because the first two race each other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable

import pytest

from streamnb.demo import DemoServer, ServedCall
from streamnb.grpc import GrpcClient
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

JSON = "/streamnb.demo.v1.Json/"
AGGREGATE = "/streamnb.demo.v1.Aggregator/Aggregate"
RUNS = 20


async def _new_call(
    server: DemoServer, before: int, predicate: Callable[[ServedCall], bool]
) -> ServedCall:
    """The first call recorded after the first ``before`` calls for which ``predicate`` holds."""

    def matches(call: ServedCall) -> bool:
        recent = itertools.islice(server.calls, before, None)
        return any(call is c for c in recent) and predicate(call)

    return await server.wait_for_call(matches)


def _finished(call: ServedCall) -> bool:
    return call.finished


async def _idle_after_first(item: object) -> AsyncIterator[object]:
    """One request, then a source that never produces again (the handler idles on it)."""
    yield item
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    ("label", "take"),
    [("a list of 100", 5), ("an endless generator", 5), ("one request then idle", 1)],
)
async def test_take_on_json_echo_is_always_recorded_as_cancelled(label: str, take: int) -> None:
    async with DemoServer() as server, GrpcClient(server.address, timeout=30) as client:
        outcomes = []
        for _ in range(RUNS):
            if label == "a list of 100":
                requests: Iterable[object] | AsyncIterable[object] = [{"i": i} for i in range(100)]
            elif label == "an endless generator":
                requests = ({"i": i} for i in itertools.count())
            else:
                requests = _idle_after_first({"i": 0})
            before = len(server.calls)
            got = await client.bidi(JSON + "Echo", requests).take(take).collect()
            assert got == [{"i": i} for i in range(take)]
            call = await _new_call(server, before, _finished)
            outcomes.append(call.cancelled)
        assert outcomes == [True] * RUNS, f"{label}: {outcomes.count(False)} not recorded"


async def test_cancelled_idle_client_stream_is_recorded_as_cancelled() -> None:
    """A client-streaming call cancelled while the server waits for its next request."""
    async with DemoServer() as server, GrpcClient(server.address, timeout=30) as client:
        outcomes = []
        for _ in range(RUNS):
            before = len(server.calls)
            task = asyncio.create_task(
                client.client_stream(
                    AGGREGATE, _idle_after_first(pb.Number(value=1)), codec=pb.Summary
                )
            )
            await _new_call(server, before, lambda c: c.received == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            call = await _new_call(server, before, _finished)
            outcomes.append(call.cancelled)
        assert outcomes == [True] * RUNS, f"{outcomes.count(False)} not recorded"


async def test_half_close_is_never_recorded_as_cancelled() -> None:
    """The other side of the coin: calls that end normally are not cancelled."""
    async with DemoServer() as server, GrpcClient(server.address, timeout=30) as client:
        for i in range(RUNS):
            echoed = await client.bidi(JSON + "Echo", [{"i": i}, {"i": i + 1}]).collect()
            assert echoed == [{"i": i}, {"i": i + 1}]
            summary = await client.client_stream(JSON + "Aggregate", [1, 2, 3])
            assert summary["count"] == 3
            events = await client.bidi(JSON + "Chat", ["hi"]).collect()
            assert events[-1]["kind"] == "done"
        # the client has its answers; the server's done callbacks may still be on their way
        await server.wait_for_call(lambda c: all(x.finished for x in server.calls))
        assert len(server.calls) == 3 * RUNS
        assert all(c.finished and not c.cancelled and c.error is None for c in server.calls)

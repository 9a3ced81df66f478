"""Reflection-based calls: services, methods and dict calls of every shape, no generated code."""

from __future__ import annotations

import grpc
import pytest

from streamnb.demo import SERVICE_NAMES, answer_prompt
from streamnb.grpc import GrpcClient, MethodInfo, RpcError, RpcStream


async def test_services_lists_demo_health_and_reflection(client: GrpcClient) -> None:
    services = await client.services()
    assert set(SERVICE_NAMES) <= set(services)
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services
    assert services == sorted(services)


async def test_methods_with_shapes_and_types(client: GrpcClient) -> None:
    methods = {m.name: m for m in await client.methods("streamnb.demo.v1.EventFeed")}
    assert set(methods) == {"Get", "Subscribe", "SubscribeBatched", "Echo"}
    assert methods["Get"].shape == "unary"
    assert methods["Subscribe"].shape == "server_stream"
    assert methods["Echo"].shape == "bidi"
    assert methods["Subscribe"].input_type == "streamnb.demo.v1.SubscribeRequest"
    assert methods["Subscribe"].path == "/streamnb.demo.v1.EventFeed/Subscribe"
    (agg,) = await client.methods("streamnb.demo.v1.Aggregator")
    assert isinstance(agg, MethodInfo) and agg.shape == "client_stream"
    health = {m.name: m.shape for m in await client.methods("grpc.health.v1.Health")}
    assert health["Check"] == "unary" and health["Watch"] == "server_stream"


async def test_call_unary_with_dicts(client: GrpcClient) -> None:
    reply = await client.call("streamnb.demo.v1.EventFeed/Get", {"seq": 7, "payload_size": 2})
    assert reply["seq"] == 7  # an int, though protobuf's JSON mapping says "7"
    strict = await client.call("streamnb.demo.v1.EventFeed/Get", {"seq": "7"}, int64_as_str=True)
    assert strict["seq"] == "7"  # the JSON mapping on request; requests take strings too
    assert reply["payload"] == "xx" and reply["kind"] == "get"
    health = await client.call("grpc.health.v1.Health/Check", {"service": ""})
    assert health == {"status": "SERVING"}


async def test_call_server_stream_returns_a_stream(client: GrpcClient) -> None:
    stream = await client.call("/streamnb.demo.v1.EventFeed/Subscribe", {"start": 2, "count": 6})
    assert isinstance(stream, RpcStream)
    events = await stream.collect()
    assert [e["seq"] for e in events] == [2, 3, 4, 5]
    again = await stream.collect()  # a Stream: iterating again makes a new call
    assert len(again) == 4


async def test_call_client_stream_and_bidi(client: GrpcClient) -> None:
    summary = await client.call(
        "streamnb.demo.v1.Aggregator.Aggregate", [{"value": v} for v in (1, 2, 6)]
    )
    assert summary == {"count": 3, "sum": 9.0, "mean": 3.0, "min": 1.0, "max": 6.0}
    single = await client.call("streamnb.demo.v1.Aggregator/Aggregate", {"value": 5})
    assert single["count"] == 1
    events = await (
        await client.call("streamnb.demo.v1.Agent/Chat", [{"id": 4, "text": "calc 2+2"}])
    ).collect()
    expected = answer_prompt(4, "calc 2+2")
    assert len(events) == len(expected)
    assert events[0]["tool_call"]["name"] == "calc"
    assert {e["prompt_id"] for e in events} == {4}  # uint64: an int
    assert events[-1]["done"] == {"tokens": len(expected) - 2}


async def test_unknown_service_and_method(client: GrpcClient) -> None:
    with pytest.raises(RpcError) as info:
        await client.methods("no.such.Service")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RpcError) as info:
        await client.call("streamnb.demo.v1.EventFeed/Nope", {})
    assert info.value.code == grpc.StatusCode.UNIMPLEMENTED


async def test_bad_request_dict_is_an_encode_error(client: GrpcClient) -> None:
    from streamnb.grpc import EncodeError

    with pytest.raises(EncodeError) as info:
        await client.call("streamnb.demo.v1.EventFeed/Get", {"no_such_field": 1})
    assert "no_such_field" in str(info.value)


async def test_reflection_of_a_server_without_reflection() -> None:
    """A plain server (no reflection service) gives an actionable UNIMPLEMENTED error."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with GrpcClient(f"127.0.0.1:{port}") as c:
            with pytest.raises(RpcError) as info:
                await c.services()
            assert info.value.code == grpc.StatusCode.UNIMPLEMENTED
            assert "ServerReflection" in info.value.method
    finally:
        await server.stop(None)


async def test_descriptors_are_cached(client: GrpcClient) -> None:
    await client.methods("streamnb.demo.v1.Agent")
    reflector = client._reflector()
    n = reflector.queries
    assert n >= 1
    await client.methods("streamnb.demo.v1.Agent")
    chat = await client.call("streamnb.demo.v1.Agent/Chat", [{"id": 1, "text": "hi"}])
    assert len(await chat.collect()) == len(answer_prompt(1, "hi"))
    assert reflector.queries == n

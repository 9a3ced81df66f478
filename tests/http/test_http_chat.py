"""chat(): typed events from an OpenAI-compatible server; the API key never shows anywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pickle

import pytest
import structlog
from http_helpers import API_KEY
from task_helpers import no_new_tasks, other_tasks

from streamnb import InvalidArgumentError
from streamnb.demo.http import HttpDemoServer
from streamnb.demo.model import answer_tokens
from streamnb.http import (
    Finish,
    HttpDecodeError,
    HttpError,
    TokenDelta,
    ToolCall,
    Usage,
    chat,
)

TOOLS = [
    {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object"}},
    }
]


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_tokens_usage_and_finish(server: HttpDemoServer) -> None:
    events = chat(f"{server.url}/v1", "streamnb-fake", user("hello there"), api_key=API_KEY)
    async with events.open() as it:
        got = [e async for e in it]
        snap = it.snapshots("call")["chat"]
    tokens = [e for e in got if isinstance(e, TokenDelta)]
    assert "".join(t.text for t in tokens) == "You said: hello there"
    assert [t.index for t in tokens] == list(range(len(answer_tokens("hello there"))))
    assert got[-2] == Usage(prompt_tokens=2, completion_tokens=4, total_tokens=6)
    assert got[-1] == Finish("stop", tokens=4, tool_calls=0)
    assert snap.shape == "chat" and snap.code == "OK"
    assert snap.method == f"POST {server.url}/v1/chat/completions"


async def test_a_tool_call_is_assembled_from_its_pieces(server: HttpDemoServer) -> None:
    text = "what is the weather in Lyon"
    got = await chat(
        f"{server.url}/v1", "streamnb-fake", user(text), tools=TOOLS, api_key=API_KEY
    ).collect()
    calls = [e for e in got if isinstance(e, ToolCall)]
    (call,) = calls
    assert call.name == "weather" and call.arguments == {"query": text}
    assert call.id.startswith("call_") and call.raw_arguments == f'{{"query": "{text}"}}'
    assert call.as_message()["function"]["arguments"] == call.raw_arguments
    served = server.requests[-1]
    assert served.sent > 4  # the arguments came in several chunks
    assert isinstance(got[-1], Finish) and got[-1].reason == "tool_calls"
    # the tool result goes back, and the model answers it
    follow_up = [
        *user(text),
        {"role": "assistant", "content": None, "tool_calls": [call.as_message()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    answer = await chat(f"{server.url}/v1", "m", follow_up, tools=TOOLS, api_key=API_KEY).collect()
    assert "".join(e.text for e in answer if isinstance(e, TokenDelta)) == "You said: sunny"


async def test_without_streaming_the_same_kinds_of_events(server: HttpDemoServer) -> None:
    url = f"{server.url}/v1"
    once = await chat(
        url, "m", user("weather?"), tools=TOOLS, api_key=API_KEY, stream=False
    ).collect()
    assert [type(e) for e in once] == [ToolCall, Usage, Finish]
    plain = await chat(url, "m", user("hi"), api_key=API_KEY, stream=False).collect()
    assert plain[0] == TokenDelta("You said: hi", 0) and plain[-1].reason == "stop"  # type: ignore[union-attr]


async def test_the_key_comes_from_the_environment(
    server: HttpDemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    assert isinstance((await chat(f"{server.url}/v1", "m", user("hi")).collect())[-1], Finish)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(HttpError) as info:
        await chat(f"{server.url}/v1", "m", user("hi")).collect()
    assert info.value.status == 401


async def test_401_and_500_are_named_and_the_key_never_shows(
    server: HttpDemoServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-that-must-not-leak"
    caplog.set_level(logging.DEBUG)  # httpx, httpcore, aiohttp at their most verbose
    with structlog.testing.capture_logs() as events:
        stream = chat(f"{server.url}/v1", "streamnb-fake", user("hi"), api_key=wrong)
        async with stream.open() as it:
            with pytest.raises(HttpError) as unauthorized:
                await it.__anext__()
            snapshots = repr(it.snapshots())
        with pytest.raises(HttpError) as failed:
            await chat(f"{server.url}/v1", "fail-500", user("hi"), api_key=API_KEY).collect()
        ok = chat(f"{server.url}/v1", "streamnb-fake", user("hi"), api_key=API_KEY)
        await ok.collect()
    err = unauthorized.value
    assert err.status == 401 and "401" in str(err) and "API key" in str(err)
    assert failed.value.status == 500 and "500 Internal Server Error" in str(failed.value)
    assert "injected failure" in failed.value.body
    names = {e["event"] for e in events}
    assert {"streamnb.http.call_started", "streamnb.http.call_failed"} <= names
    everything = "\n".join(
        [
            repr(events),
            caplog.text,
            str(err),
            repr(err),
            str(failed.value),
            snapshots,
            repr(stream),
            repr(pickle.loads(pickle.dumps(err))),
        ]
    )
    for key in (wrong, API_KEY):
        assert key not in everything
    assert server.requests[0].headers["authorization"] == "<redacted>"


async def test_a_malformed_chunk_is_named_by_index(server: HttpDemoServer) -> None:
    with pytest.raises(HttpDecodeError) as info:
        await chat(f"{server.url}/v1", "malformed", user("hi there"), api_key=API_KEY).collect()
    assert info.value.index == 1
    skipping = chat(
        f"{server.url}/v1", "malformed", user("hi there"), api_key=API_KEY, on_decode_error="skip"
    )
    async with skipping.open() as it:
        got = [e async for e in it]
        assert it.dead_letters["chat"].count == 1
    assert isinstance(got[-1], Finish)


async def test_a_skipped_unreadable_completion_still_ends_the_call() -> None:
    """Without streaming, a completion that is not JSON goes to the dead letter and the run
    is recorded as ended (it used to stay "running": no code, the clock never stopped)."""
    from aiohttp import web

    async def completions(request: web.Request) -> web.Response:
        return web.Response(text="{not json", content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        once = chat(f"http://127.0.0.1:{port}/v1", "m", user("hi"), stream=False)
        with pytest.raises(HttpDecodeError) as info:
            await once.collect()
        assert info.value.index == 0
        skipping = chat(
            f"http://127.0.0.1:{port}/v1", "m", user("hi"), stream=False, on_decode_error="skip"
        )
        async with skipping.open() as it:
            assert [e async for e in it] == []
            assert it.dead_letters["chat"].count == 1
            snap = it.snapshots("call")["chat"]
            assert snap == dataclasses.replace(it.snapshots("call")["chat"], taken_at=snap.taken_at)
    finally:
        await runner.cleanup()
    assert (snap.code, snap.sent, snap.received, snap.decode_errors) == ("OK", 1, 1, 1)
    assert snap.bytes_received == len("{not json")


async def test_cancelling_stops_generation_on_the_server(server: HttpDemoServer) -> None:
    server.token_delay = 0.05
    before = other_tasks()
    first = asyncio.Event()

    async def consume() -> None:
        long = user("one two three four five six seven eight nine ten eleven twelve")
        async for _ in chat(f"{server.url}/v1", "m", long, api_key=API_KEY):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled and served.sent < 10
    await no_new_tasks(before)


def test_bad_arguments_fail_up_front() -> None:
    url = "http://127.0.0.1:1/v1"
    with pytest.raises(InvalidArgumentError, match="at least one message"):
        chat(url, "m", [])
    with pytest.raises(TypeError, match=r"messages\[1\]"):
        chat(url, "m", [{"role": "user", "content": "a"}, "b"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match=r"tools\[0\]"):
        chat(url, "m", user("a"), tools=[{"type": "function"}])
    with pytest.raises(InvalidArgumentError, match="model"):
        chat(url, "", user("a"))
    with pytest.raises(InvalidArgumentError, match="own arguments"):
        chat(url, "m", user("a"), options={"stream": False})

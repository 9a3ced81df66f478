"""sse(): events as a Stream, Last-Event-ID resume, decode errors, HTTP errors, cancellation."""

from __future__ import annotations

import asyncio
import gc

import httpx
import pytest
from httpx_sse import ServerSentEvent
from task_helpers import no_new_tasks, other_tasks

from streamnb import DeadLetter, InvalidArgumentError, RetryPolicy, UsageError
from streamnb.demo.http import HttpDemoServer
from streamnb.http import HttpDecodeError, HttpError, sse


async def test_events_in_order_with_a_call_snapshot(server: HttpDemoServer) -> None:
    feed = sse(f"{server.url}/sse/feed", params={"count": 50, "kind": "tick"})
    async with feed.open() as it:
        seqs = [e["seq"] async for e in it]
        snap = it.snapshots("call")["sse"]
    assert seqs == list(range(50))
    assert snap.shape == "sse" and snap.received == 50 and snap.code == "OK"
    assert snap.method == f"GET {server.url}/sse/feed?count=50&kind=tick"
    assert snap.bytes_received > 50 * 20 and snap.reconnects == 0
    # a Stream is a definition: iterating again sends a new request
    assert await feed.count() == 50
    assert len(server.requests) == 2


async def test_resume_across_20_dropped_connections_exactly_once(server: HttpDemoServer) -> None:
    before = other_tasks()
    feed = sse(
        f"{server.url}/sse/feed",
        params={"count": 10_000, "drop_after": 480},
        retry=RetryPolicy(max_attempts=3, initial=0.001, max_delay=0.01),
    )
    async with feed.open() as it:
        seqs = [e["seq"] async for e in it]
        snap = it.snapshots("call")["sse"]
    assert seqs == list(range(10_000))  # nothing lost, nothing repeated, in order
    assert snap.reconnects == 20 and snap.errors == 20 and snap.sent == 21
    resumed = [r.headers.get("last-event-id") for r in server.requests]
    assert resumed == [None] + [str(480 * k - 1) for k in range(1, 21)]
    await no_new_tasks(before)


async def test_without_resume_a_drop_raises_a_retryable_error(server: HttpDemoServer) -> None:
    feed = sse(f"{server.url}/sse/feed", params={"count": 100, "drop_after": 10}, resume=False)
    got: list[int] = []
    with pytest.raises(HttpError) as info:
        async for e in feed:
            got.append(e["seq"])
    assert got == list(range(10))
    assert info.value.status is None and info.value.retryable
    assert "RemoteProtocolError" in str(info.value) and info.value.received == 10


async def test_last_event_id_starts_after_it(server: HttpDemoServer) -> None:
    feed = sse(f"{server.url}/sse/feed", params={"count": 10}, last_event_id="6")
    assert [e["seq"] for e in await feed.collect()] == [7, 8, 9]


async def test_a_malformed_event_is_named_by_index(server: HttpDemoServer) -> None:
    feed = sse(f"{server.url}/sse/feed", params={"count": 10, "malformed_seq": 4})
    got: list[int] = []
    with pytest.raises(HttpDecodeError) as info:
        async for e in feed:
            got.append(e["seq"])
    assert got == [0, 1, 2, 3]
    err = info.value
    assert err.index == 4 and not err.retryable and '"seq": 4' in err.data
    assert "event #4" in str(err) and "on_decode_error='skip'" in str(err)


async def test_skip_sends_malformed_events_to_the_dead_letter(server: HttpDemoServer) -> None:
    dl: DeadLetter[str] = DeadLetter()
    feed = sse(
        f"{server.url}/sse/feed",
        params={"count": 10, "malformed_seq": 4},
        on_decode_error="skip",
        dead_letter=dl,
    )
    async with feed.open() as it:
        seqs = [e["seq"] async for e in it]
        assert it.dead_letters["sse"] is dl
        assert it.snapshots("call")["sse"].decode_errors == 1
    assert seqs == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    (entry,) = dl.entries
    assert entry.stage == "sse" and entry.index == 4 and isinstance(entry.error, HttpDecodeError)


async def test_decode_modes(server: HttpDemoServer) -> None:
    url = f"{server.url}/sse/feed?count=2&kind=beat"
    events = await sse(url, decode="event").collect()
    assert all(isinstance(e, ServerSentEvent) for e in events)
    assert [(e.id, e.event) for e in events] == [("0", "beat"), ("1", "beat")]
    texts = await sse(url, decode="text").collect()
    assert texts[0].startswith('{"seq": 0')
    assert await sse(url, decode=lambda ev: int(ev.id) * 10).collect() == [0, 10]


@pytest.mark.parametrize("status", [401, 404, 500])
async def test_http_errors_name_url_status_and_body(server: HttpDemoServer, status: int) -> None:
    url = f"{server.url}/status/{status}"
    with pytest.raises(HttpError) as info:
        await sse(url).collect()
    err = info.value
    assert err.status == status and err.url == url and not err.retryable
    assert f"answered {status}" in str(err) and "the demo server answered" in err.body
    if status == 401:
        assert "API key" in str(err)
    assert len(server.requests) == 1  # not retried


async def test_a_retryable_status_is_retried_then_gives_up(server: HttpDemoServer) -> None:
    policy = RetryPolicy(max_attempts=3, initial=0.001, max_delay=0.001, retry_on=_http_retryable)
    with pytest.raises(HttpError) as info:
        await sse(f"{server.url}/status/503", retry=policy).collect()
    assert info.value.status == 503 and len(server.requests) == 3
    assert any("gave up after 3" in n for n in info.value.__notes__)


def _http_retryable(exc: BaseException) -> bool:
    return isinstance(exc, HttpError) and exc.retryable


async def test_not_an_event_stream_is_refused(server: HttpDemoServer) -> None:
    with pytest.raises(HttpError, match="expected content-type text/event-stream"):
        await sse(f"{server.url}/v1/models").collect()


async def test_break_closes_the_connection_and_the_server_sees_it(
    server: HttpDemoServer,
) -> None:
    before = other_tasks()
    async with sse(f"{server.url}/sse/feed", params={"rate": 200}).open() as it:
        async for e in it:
            if e["seq"] == 3:
                break
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled and served.sent < 100
    await no_new_tasks(before)


async def test_a_bare_async_for_break_is_closed_once_by_the_finaliser(
    server: HttpDemoServer,
) -> None:
    """A bare ``async for`` leaves the close to the loop's generator finaliser; the run must not
    form a cycle with its source (the collector would then close the generators twice)."""
    loop = asyncio.get_running_loop()
    problems: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: problems.append(str(ctx.get("message"))))
    try:
        feed = sse(f"{server.url}/sse/feed", params={"rate": 200})
        async for e in feed:
            if e["seq"] == 3:
                break
        gc.collect()
        served = await server.wait_for_request(lambda r: r.finished)
        for _ in range(20):
            await asyncio.sleep(0.01)
    finally:
        loop.set_exception_handler(None)
    assert served.cancelled and served.sent < 100
    assert problems == []


async def test_take_closes_the_connection(server: HttpDemoServer) -> None:
    assert len(await sse(f"{server.url}/sse/feed").take(5).collect()) == 5
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled


async def test_cancelling_the_consumer_reaches_the_server(server: HttpDemoServer) -> None:
    before = other_tasks()
    started = asyncio.Event()

    async def consume() -> None:
        async for _ in sse(f"{server.url}/sse/feed", params={"rate": 50}).tap(
            lambda _: started.set()
        ):
            pass

    task = asyncio.create_task(consume())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled
    await no_new_tasks(before)


async def test_a_client_you_pass_is_used_and_left_open(server: HttpDemoServer) -> None:
    async with httpx.AsyncClient(headers={"X-Trace": "t1"}) as client:
        feed = sse(f"{server.url}/sse/feed", params={"count": 3}, client=client)
        assert await feed.count() == 3
        assert not client.is_closed
    assert server.requests[-1].headers["x-trace"] == "t1"


async def test_headers_are_sent_and_secrets_redacted_in_snapshots(
    server: HttpDemoServer,
) -> None:
    feed = sse(
        f"{server.url}/sse/feed",
        params={"count": 2},
        headers={"Authorization": "Bearer tok-1", "X-Request-Id": "r1"},
    )
    async with feed.open() as it:
        await it.__anext__()
        method = it.snapshots("call")["sse"].method
    assert server.requests[-1].headers["x-request-id"] == "r1"
    assert "tok-1" not in method
    # a secret query parameter never shows
    url = f"{server.url}/status/500?api_key=sk-in-url"
    with pytest.raises(HttpError) as info:
        await sse(url).collect()
    assert "sk-in-url" not in str(info.value) and "api_key=<redacted>" in str(info.value)


def test_bad_arguments_fail_up_front() -> None:
    with pytest.raises(InvalidArgumentError, match="http:// or https://"):
        sse("ftp://example/feed")
    with pytest.raises(InvalidArgumentError, match="decode"):
        sse("http://127.0.0.1:1/feed", decode="xml")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="on_decode_error"):
        sse("http://127.0.0.1:1/feed", on_decode_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="belong to the httpx"):
        sse("http://127.0.0.1:1/feed", client=httpx.AsyncClient(), verify=False)
    with pytest.raises(InvalidArgumentError, match="timeout"):
        sse("http://127.0.0.1:1/feed", timeout=float("nan"))


async def test_a_refused_connection_is_an_http_error() -> None:
    policy = RetryPolicy(max_attempts=2, initial=0.001, max_delay=0.001, retry_on=_http_retryable)
    with pytest.raises(HttpError) as info:
        await sse("http://127.0.0.1:9/feed", retry=policy).collect()
    assert info.value.status is None and "ConnectError" in str(info.value)


async def test_a_read_timeout_is_an_http_error(server: HttpDemoServer) -> None:
    feed = sse(f"{server.url}/sse/feed", params={"delay": 2, "count": 1}, timeout=0.2, resume=False)
    with pytest.raises(HttpError) as info:
        await feed.collect()
    assert info.value.status is None and "ReadTimeout" in str(info.value)
    served = await server.wait_for_request(lambda r: r.finished)
    assert served.cancelled  # the client gave up and closed the connection


def test_tls_and_proxy_options_reach_the_client_httpx_builds() -> None:
    from streamnb.http.transport import ClientSpec

    spec = ClientSpec.build(
        "sse",
        client=None,
        timeout=httpx.Timeout(5.0, read=None),
        verify=False,
        proxy="http://127.0.0.1:3128",
        client_kwargs={"http2": False},
    )
    assert spec.kwargs == {
        "timeout": httpx.Timeout(5.0, read=None),
        "verify": False,
        "proxy": "http://127.0.0.1:3128",
        "http2": False,
    }

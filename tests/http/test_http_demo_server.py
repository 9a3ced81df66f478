"""The HTTP side of the demo server: started by DemoServer and the CLI, its fake model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from streamnb.demo import DemoServer
from streamnb.demo.http import HttpDemoServer
from streamnb.demo.model import answer_prompt
from streamnb.http import sse

REPO = Path(__file__).resolve().parents[2]


async def test_demo_server_starts_and_stops_the_http_side() -> None:
    async with DemoServer(http=True) as srv:
        assert srv.http_url.startswith("http://127.0.0.1:")
        assert srv.http_url != f"http://{srv.address}"
        assert await sse(f"{srv.http_url}/sse/feed", params={"count": 3}).count() == 3
        http = srv.http
    assert http is not None
    with pytest.raises(RuntimeError, match="not running"):
        _ = http.url
    with pytest.raises(RuntimeError, match="no HTTP side"):
        _ = DemoServer().http_url


async def test_the_fake_model_without_streaming_matches_the_grpc_agent() -> None:
    text = "what is the weather in Lyon"
    grpc_answer = answer_prompt(0, text)
    body = {
        "model": "streamnb-fake",
        "messages": [{"role": "user", "content": "hello streamnb"}],
        "stream": False,
    }
    async with HttpDemoServer() as srv, httpx.AsyncClient() as client:
        plain = (await client.post(f"{srv.url}/v1/chat/completions", json=body)).json()
        tools = [{"type": "function", "function": {"name": "weather"}}]
        body = {**body, "messages": [{"role": "user", "content": text}], "tools": tools}
        called = (await client.post(f"{srv.url}/v1/chat/completions", json=body)).json()
        bad = await client.post(f"{srv.url}/v1/chat/completions", json={"messages": []})
        feed = await client.get(f"{srv.url}/sse/feed", params={"count": -1})
    assert plain["choices"][0]["message"]["content"] == "You said: hello streamnb"
    assert plain["usage"]["completion_tokens"] == 4
    (call,) = called["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == grpc_answer[0]["name"] == "weather"
    assert call["function"]["arguments"] == grpc_answer[0]["arguments"]
    assert called["choices"][0]["finish_reason"] == "tool_calls"
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    assert feed.status_code == 400 and "count=-1" in feed.text


def test_python_m_streamnb_demo_prints_both_addresses() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamnb.demo", "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert first.startswith("streamnb demo server listening on 127.0.0.1:")
        prefix = "streamnb demo HTTP server listening on "
        assert second.startswith(prefix)
        url = second[len(prefix) :].strip()
        models = httpx.get(f"{url}/v1/models", timeout=10).json()
        assert models["data"][0]["id"] == "streamnb-fake"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

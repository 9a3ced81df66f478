"""An OpenAI-compatible chat completion as a Stream of typed events.

``chat(base_url, model, messages, tools=...)`` POSTs ``{base_url}/chat/completions`` (vLLM,
Ollama, llama.cpp's server, hosted APIs, the embedded demo server) with ``stream: true`` and
turns the server's chunks into :mod:`streamnb.http.events`: :class:`TokenDelta` per piece of
text, :class:`ToolCall` per tool call once complete (the argument pieces are accumulated per
call index and parsed once, when the next call starts or the choice finishes), :class:`Usage`
(requested with ``stream_options.include_usage``), and one :class:`Finish` last.
``stream=False`` sends one non-streamed request and yields the same kinds of events.

The API key is ``api_key`` or the ``OPENAI_API_KEY`` environment variable (none is sent when
neither is set - local servers need none). It is held in a :class:`~streamnb.http.Secret` and
never appears in reprs, logs, errors (a server that echoes it gets it scrubbed from the body
excerpt) or snapshots. A 401 raises :class:`~streamnb.errors.HttpError` saying the key was
refused; a chunk that is not JSON raises :class:`~streamnb.errors.HttpDecodeError` naming its
index (or goes to a DeadLetter with ``on_decode_error="skip"``), as do tool-call arguments
that are not a JSON object.

Only the first choice is read (``n`` > 1 is not supported). Each iteration sends the request
again; ``break``/cancel closes the connection, which stops generation on servers that watch
for it.

Example::

    events = chat(f"{srv.http_url}/v1", "streamnb-fake",
                  [{"role": "user", "content": "what is the weather in Lyon"}],
                  tools=[{"type": "function", "function": {"name": "weather"}}])
    async for event in events:
        print(event)
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import httpx
from httpx_sse import EventSource

from streamnb.recovery import DeadLetter
from streamnb.stream import Stream

from ..errors import ArgumentTypeError, HttpError, InvalidArgumentError
from .events import ChatEvent, Finish, TokenDelta, ToolCall, Usage
from .redact import Secret
from .runs import Call, CallPlan, DecodePolicy
from .transport import DEFAULT_TIMEOUT, ClientSpec, RequestSpec, TimeoutLike, expect_content_type

__all__ = ["chat"]


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise ArgumentTypeError(
            f"chat(messages={type(messages).__name__}): expected a list of message dicts "
            '({"role": "user", "content": "..."})'
        )
    if not messages:
        raise InvalidArgumentError("chat(messages=[]): at least one message is needed")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ArgumentTypeError(
                f"chat(messages[{i}]={type(m).__name__}): expected a dict with 'role'"
            )
        if not isinstance(m.get("role"), str):
            raise InvalidArgumentError(f"chat(messages[{i}]): a 'role' (str) is required")
        out.append(dict(m))
    return out


def _check_tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    if isinstance(tools, str | bytes | Mapping) or not isinstance(tools, Sequence):
        raise ArgumentTypeError(f"chat(tools={type(tools).__name__}): expected a list of tools")
    out = []
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise InvalidArgumentError(
                f"chat(tools[{i}]): expected {{'type': 'function', 'function': {{'name': ..., "
                "'parameters': {...}}}}"
            )
        out.append({"type": "function", **dict(t)})
    return out


def chat(
    base_url: str,
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    api_key: str | None = None,
    stream: bool = True,
    options: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    on_decode_error: DecodePolicy = "raise",
    dead_letter: DeadLetter[Any] | None = None,
    name: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: TimeoutLike = DEFAULT_TIMEOUT,
    verify: bool | str | ssl.SSLContext = True,
    proxy: str | httpx.Proxy | None = None,
    client_kwargs: Mapping[str, Any] | None = None,
) -> Stream[ChatEvent]:
    """A Stream of the events of one chat completion (see the module docstring).

    ``base_url`` ends before ``/chat/completions`` (``"http://127.0.0.1:8000/v1"``);
    ``options`` are merged into the request body (``{"temperature": 0, "max_tokens": 200}``).
    The transport options are those of :func:`~streamnb.http.sse`.
    """
    if not isinstance(base_url, str):
        raise ArgumentTypeError(f"chat(base_url={base_url!r}): expected a str")
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError(f"chat(model={model!r}): expected a model name")
    if api_key is not None and not isinstance(api_key, str):
        raise ArgumentTypeError("chat(api_key=...): expected a str")
    body: dict[str, Any] = {"model": model, "messages": _check_messages(messages)}
    checked_tools = _check_tools(tools)
    if checked_tools:
        body["tools"] = checked_tools
    if options is not None:
        if not isinstance(options, Mapping):
            raise ArgumentTypeError("chat(options=...): expected a mapping")
        clash = sorted({"model", "messages", "stream"} & set(options))
        if clash:
            raise InvalidArgumentError(f"chat(options=...): {clash} are chat()'s own arguments")
        body.update(options)
    body["stream"] = bool(stream)
    if stream:
        body.setdefault("stream_options", {"include_usage": True})
    url = base_url.rstrip("/") + "/chat/completions"
    req = RequestSpec("chat", url, "POST", None, headers, body, None)
    key = Secret(api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", ""))
    if key:
        req.secrets += (key.reveal(),)
    plan = CallPlan("chat", "POST", req.shown, on_decode_error, dead_letter, name=name)
    spec = ClientSpec.build(
        "chat",
        client=client,
        timeout=timeout,
        verify=verify,
        proxy=proxy,
        client_kwargs=client_kwargs,
    )
    body_of = _chat_stream if stream else _chat_once
    return plan.stream(lambda call: body_of(call, req, spec, key))


def _auth(key: Secret, accept: str) -> dict[str, str]:
    extra = {"Accept": accept}
    if key:
        extra["Authorization"] = f"Bearer {key.reveal()}"
    return extra


class _Assembler:
    """Accumulates streamed tool-call pieces per index; parses each once it is complete."""

    __slots__ = ("call", "done", "pending")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.pending: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        self.done = 0

    def add(self, piece: Mapping[str, Any]) -> list[ToolCall]:
        index = piece.get("index", 0)
        ready = []
        if index not in self.pending:
            ready = self.complete(before=index)  # a new call starts: the earlier ones are whole
            self.pending[index] = ["", "", ""]
        slot = self.pending[index]
        if piece.get("id"):
            slot[0] = str(piece["id"])
        fn = piece.get("function") or {}
        if fn.get("name"):
            slot[1] += str(fn["name"])
        if fn.get("arguments"):
            slot[2] += str(fn["arguments"])
        return ready

    def complete(self, before: int | None = None) -> list[ToolCall]:
        out = []
        for index in sorted(self.pending):
            if before is not None and index >= before:
                continue
            call_id, name, raw = self.pending.pop(index)
            parsed = self._parse(index, name, raw)
            if parsed is not None:
                out.append(ToolCall(call_id, name, parsed, raw, self.done))
                self.done += 1
        return out

    def _parse(self, index: int, name: str, raw: str) -> dict[str, Any] | None:
        try:
            value = json.loads(raw) if raw.strip() else {}
            if not isinstance(value, dict):
                raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        except ValueError as exc:
            stats = self.call.stats
            err = ValueError(f"tool call {name!r} (#{index}): arguments are not valid: {exc}")
            self.call.undecodable(stats.received - 1, raw, err)
            return None
        return value


async def _chat_stream(
    call: Call, req: RequestSpec, spec: ClientSpec, key: Secret
) -> AsyncIterator[ChatEvent]:
    stats = call.stats
    index = 0
    tokens = 0
    reason = ""
    tools = _Assembler(call)
    loads = json.loads
    async with call.running(req.headers, model=req.body["json"]["model"]):
        async with spec.open() as client:
            extra = _auth(key, "text/event-stream")
            async with call.request(client, req, extra) as response:
                expect_content_type(response, ("text/event-stream",), req.shown, req.method)
                events = EventSource(response).aiter_sse()
                try:
                    async for ev in events:
                        data = ev.data
                        if data == "[DONE]":
                            break
                        i = index
                        index = stats.received = i + 1
                        try:
                            chunk = loads(data)
                            if not isinstance(chunk, dict):
                                raise ValueError("a chunk must be a JSON object")
                        except ValueError as exc:
                            call.undecodable(i, data, exc)
                            continue
                        if chunk.get("error"):
                            raise HttpError(
                                req.shown,
                                response.status_code,
                                data,
                                reason="the server sent an error in the stream",
                                method="POST",
                                received=i,
                            )
                        for choice in chunk.get("choices") or ():
                            if choice.get("index", 0) != 0:
                                continue
                            delta = choice.get("delta") or {}
                            text = delta.get("content")
                            if text:
                                yield TokenDelta(text, tokens)
                                tokens += 1
                            for piece in delta.get("tool_calls") or ():
                                for tool_call in tools.add(piece):
                                    yield tool_call
                            if choice.get("finish_reason"):
                                reason = str(choice["finish_reason"])
                                for tool_call in tools.complete():
                                    yield tool_call
                        usage = chunk.get("usage")
                        if usage:
                            yield _usage(usage)
                finally:
                    await events.aclose()
        for tool_call in tools.complete():
            yield tool_call
        yield Finish(reason or "unknown", tokens, tools.done)


def _usage(usage: Mapping[str, Any]) -> Usage:
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return Usage(prompt, completion, int(usage.get("total_tokens") or prompt + completion))


async def _chat_once(
    call: Call, req: RequestSpec, spec: ClientSpec, key: Secret
) -> AsyncIterator[ChatEvent]:
    async with call.running(req.headers, model=req.body["json"]["model"]):
        async with spec.open() as client:
            async with call.request(client, req, _auth(key, "application/json")) as response:
                raw = (await response.aread()).decode("utf-8", "replace")
        call.stats.received = 1
        try:
            completion = json.loads(raw)
            choice = completion["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            call.undecodable(0, raw, exc)
            return
        text = message.get("content")
        tokens = 0
        if text:
            yield TokenDelta(str(text), 0)
            tokens = 1
        tools = _Assembler(call)
        for i, tc in enumerate(message.get("tool_calls") or ()):
            tools.add({"index": i, **tc})
        for tool_call in tools.complete():
            yield tool_call
        if completion.get("usage"):
            yield _usage(completion["usage"])
        yield Finish(str(choice.get("finish_reason") or "unknown"), tokens, tools.done)

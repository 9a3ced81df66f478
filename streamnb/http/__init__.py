"""HTTP streams for notebooks: SSE, NDJSON, WebSockets and OpenAI-compatible chat as Streams.

Needs the ``http`` extra (``pip install streamnb[http]``: httpx, httpx-sse, websockets, and
aiohttp for the embedded demo server). Every function returns a :class:`streamnb.Stream`: one
request (or connection) per iteration, closed when the iteration ends - ``break``,
cancellation, an error - so the server sees the client leave (``break`` out of
``async with s.open() as it: async for x in it`` to close at once; a bare ``async for`` leaves
the close to the event loop's generator finaliser). Failures are
:class:`~streamnb.errors.HttpError` (url, status, body excerpt); undecodable events are
:class:`~streamnb.errors.HttpDecodeError` (url, index) or, with ``on_decode_error="skip"``,
go to a DeadLetter. Each run registers a ``"call"`` snapshot (``iteration.snapshots("call")``).
Secrets (API keys, auth headers, secret query parameters) never appear in logs, reprs,
errors or snapshots.

Example::

    from streamnb.http import chat, sse, TokenDelta

    feed = sse("http://127.0.0.1:8000/sse/feed", params={"count": 100})
    print(await feed.count())

    answer = chat("http://127.0.0.1:8000/v1", "streamnb-fake",
                  [{"role": "user", "content": "hello"}])
    text = "".join([e.text async for e in answer if isinstance(e, TokenDelta)])
"""

from __future__ import annotations

from ..errors import HttpDecodeError, HttpError
from .chat import chat
from .events import ChatEvent, Finish, TokenDelta, ToolCall, Usage
from .ndjson import ndjson
from .redact import Secret, redact_headers, redact_url
from .sse import sse
from .stats import HttpCallStats
from .websocket import websocket

__all__ = [
    "ChatEvent",
    "Finish",
    "HttpCallStats",
    "HttpDecodeError",
    "HttpError",
    "Secret",
    "TokenDelta",
    "ToolCall",
    "Usage",
    "chat",
    "ndjson",
    "redact_headers",
    "redact_url",
    "sse",
    "websocket",
]

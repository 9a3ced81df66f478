"""Leak checks shared by the test packages: no task outlives what a test started and stopped.

The in-process demo servers keep tasks of their own (grpc.aio's accept loops and per-RPC
handler tasks, aiohttp's per-connection handlers); they belong to the server, not to the client
under test, and are left out.

Example::

    before = other_tasks()
    await stream.take(3).collect()
    await no_new_tasks(before)
"""

from __future__ import annotations

import asyncio

_SERVER_CORO_PREFIXES = ("AioServer.", "RequestHandler.", "WebSocketResponse.")
_SERVER_CORO_NAMES = frozenset({"_schedule_rpc_coro"})


def _is_server_task(task: asyncio.Task[object]) -> bool:
    name = getattr(task.get_coro(), "__qualname__", "")
    return (
        name.startswith(_SERVER_CORO_PREFIXES)
        or name in _SERVER_CORO_NAMES
        or task.get_name().startswith("HandleExceptions[")
    )


def other_tasks() -> set[asyncio.Task[object]]:
    """Client-side tasks other than the current one (server-internal tasks excluded)."""
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not _is_server_task(t)}


async def no_new_tasks(before: set[asyncio.Task[object]], within: float = 5.0) -> None:
    """Wait until every task created since ``before`` has finished; fail if one lingers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        extra = other_tasks() - before
        if not extra:
            return
        if loop.time() > deadline:
            raise AssertionError(f"tasks left behind: {extra}")
        await asyncio.sleep(0.01)

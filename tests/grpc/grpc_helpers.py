"""Helpers shared by the gRPC tests (imported as ``grpc_helpers``: tests/grpc is on sys.path)."""

from __future__ import annotations

import asyncio


def _is_server_task(task: asyncio.Task[object]) -> bool:
    # The in-process DemoServer keeps grpc's own tasks (accept loops that are replaced per call,
    # per-RPC handler tasks); they belong to the server, not to the client under test.
    name = getattr(task.get_coro(), "__qualname__", "")
    return (
        name.startswith("AioServer.")
        or name == "_schedule_rpc_coro"
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

"""Helpers shared by the gRPC tests (imported as ``grpc_helpers``: tests/grpc is on sys.path)."""

from __future__ import annotations

import asyncio


def other_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current}


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

"""Which asyncio tasks are still running streamnb code: the leak check of a notebook cell.

Every task streamnb creates (a buffer's producer, a concurrent map's workers, a run started
with ``start()``, a gRPC call's sender) runs a coroutine defined in the streamnb package, and
every one of them must be gone once its stream is closed, stopped or cancelled. A notebook's
last cell (and any test) can assert that with :func:`running_tasks`, instead of copying a
helper that inspects ``asyncio.all_tasks()``.

Example::

    async with Stream(source).buffer(64).open() as it:
        async for _ in it:
            break
    assert not running_tasks(), running_tasks()   # the buffer's producer is gone
"""

from __future__ import annotations

import asyncio
import os

from .errors import UsageError

__all__ = ["running_tasks"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _runs_streamnb_code(task: asyncio.Task[object]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    filename = getattr(code, "co_filename", None)
    return isinstance(filename, str) and os.path.abspath(filename).startswith(_PACKAGE_DIR)


def running_tasks(loop: asyncio.AbstractEventLoop | None = None) -> list[asyncio.Task[object]]:
    """The tasks of ``loop`` (default: the running one) not yet done whose coroutine is
    streamnb's own code, in no particular order; empty when nothing leaked.

    Raises :class:`~streamnb.errors.UsageError` when called with no running loop and no
    ``loop`` (in a notebook cell there always is one).

    Example::

        assert not streamnb.running_tasks(), streamnb.running_tasks()
    """
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise UsageError(
                "running_tasks() needs a running event loop (a notebook cell, async code) "
                "or loop=: which loop's tasks should it list?"
            ) from None
    return [t for t in asyncio.all_tasks(loop) if not t.done() and _runs_streamnb_code(t)]

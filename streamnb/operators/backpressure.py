"""Backpressure: ``buffer(size, overflow=, put_timeout=, name=)``.

A :class:`~streamnb.buffer.Channel` filled by its own producer task decouples the two sides;
the channel is the run's ``"buffer"`` observable, and a monitor right after it reads its
snapshot (depth, drops, time the producer spent blocked).

Example::

    Stream(feed).then(Buffer(100, "drop_oldest", name="ingest"))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .._validate import check_seconds
from ..buffer import Channel, check_overflow
from .base import Link, Operator

__all__ = ["Buffer"]


class Buffer(Operator):
    """A bounded buffer between the stages before and after it (see module docstring)."""

    def __init__(
        self,
        size: int,
        overflow: str = "block",
        put_timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        check_overflow("buffer", overflow)
        if put_timeout is not None:
            check_seconds("buffer", "put_timeout", put_timeout)
        Channel(name or "buffer", size, overflow, put_timeout)  # validates size the same way
        self.size, self.overflow, self.put_timeout = size, overflow, put_timeout
        self.name = name
        self.label = f"buffer({size}, {overflow})"

    def stage(self, src: AsyncIterator[Any], link: Link) -> AsyncIterator[Any]:
        run = link.run
        name = self.name or f"buffer{run.count('buffer') + 1}"
        chan: Channel[Any] = Channel(name, self.size, self.overflow, self.put_timeout)
        run.observe("buffer", chan)
        link.buffer = chan
        return chan.drain([src])

"""Small builders shared by the notebook tests (plain data, no mocks of streamnb)."""

from __future__ import annotations

from typing import Any

from streamnb.metrics import BufferSnapshot, CallSnapshot, MetricsSnapshot, ResilientSnapshot
from streamnb.notebook._format import RunFrame, RunStatus


def snap(name: str = "stage", **over: Any) -> MetricsSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        status="running",
        items=0,
        errors=0,
        dropped=0,
        bytes=0,
        elapsed=1.0,
        rate=0.0,
        window_rate=0.0,
        bytes_rate=0.0,
        latency=None,
        latency_max=None,
        buffer_depth=None,
        buffer_capacity=None,
        buffer_high_water=None,
        total=None,
        error=None,
        taken_at=0.0,
    )
    base.update(over)
    return MetricsSnapshot(**base)


def buffer_snap(name: str = "buf", **over: Any) -> BufferSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        capacity=10,
        depth=0,
        high_water=0,
        dropped=0,
        blocked_seconds=0.0,
        overflow="block",
        taken_at=0.0,
    )
    base.update(over)
    return BufferSnapshot(**base)


def resilient_snap(name: str = "feed", **over: Any) -> ResilientSnapshot:
    base: dict[str, Any] = dict(
        name=name, delivered=0, failures=0, reconnects=0, last_error=None, taken_at=0.0
    )
    base.update(over)
    return ResilientSnapshot(**base)


def call_snap(name: str = "call", **over: Any) -> CallSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        method="/streamnb.demo.v1.Json/Subscribe",
        shape="server_stream",
        sent=1,
        received=0,
        bytes_sent=10,
        bytes_received=0,
        errors=0,
        decode_errors=0,
        reconnects=0,
        code=None,
        elapsed=1.0,
        taken_at=0.0,
    )
    base.update(over)
    return CallSnapshot(**base)


def frame(
    status: RunStatus = "running",
    items: int = 0,
    elapsed: float = 1.0,
    *,
    total: int | None = None,
    error: str | None = None,
    stages: dict[str, MetricsSnapshot] | None = None,
    taken_at: float = 0.0,
    name: str = "run",
    window_tail: tuple[tuple[float, Any], ...] = (),
    **snapshots: Any,
) -> RunFrame:
    """A frame; ``snapshots`` are RunFrame's other snapshot mappings (buffers=, calls=...)."""
    return RunFrame(
        name=name,
        status=status,
        items=items,
        elapsed=elapsed,
        total=total,
        error=error,
        stages=stages or {},
        taken_at=taken_at,
        window_tail=window_tail,
        **snapshots,
    )

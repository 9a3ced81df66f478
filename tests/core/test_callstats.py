"""CallStats: the one live-counter class of a call (gRPC and HTTP both build on it)."""

from __future__ import annotations

import dataclasses

import pytest

from streamnb._callstats import CallStats
from streamnb.metrics import CallSnapshot


def test_before_start_a_snapshot_has_no_elapsed_time_and_no_code() -> None:
    stats = CallStats("feed", "/pkg.Feed/Subscribe", "server_stream")
    snap = stats.snapshot()
    assert isinstance(snap, CallSnapshot)
    assert (snap.name, snap.method, snap.shape) == ("feed", "/pkg.Feed/Subscribe", "server_stream")
    assert (snap.sent, snap.received, snap.errors, snap.reconnects) == (0, 0, 0, 0)
    assert snap.elapsed == 0.0 and snap.code is None and stats.started == 0.0


def test_a_snapshot_is_a_frozen_copy_of_the_counters_then() -> None:
    stats = CallStats("up", "POST http://host/v1", "chat")
    stats.start()
    stats.sent, stats.received, stats.bytes_sent, stats.bytes_received = 1, 7, 10, 700
    stats.errors, stats.decode_errors, stats.reconnects = 2, 1, 1
    snap = stats.snapshot()
    stats.received = 8
    assert snap.received == 7 and stats.snapshot().received == 8
    assert dataclasses.astuple(snap)[3:11] == (1, 7, 10, 700, 2, 1, 1, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.received = 0  # type: ignore[misc]


def test_finish_records_the_first_outcome_and_stops_the_clock() -> None:
    stats = CallStats("c", "m", "unary")
    stats.start()
    stats.finish("OK")
    stats.finish("CANCELLED")  # a later end does not rewrite how the run ended
    first, second = stats.snapshot(), stats.snapshot()
    assert first.code == second.code == "OK"
    assert first.elapsed == second.elapsed >= 0.0
    assert second.taken_at >= first.taken_at
    assert repr(stats) == "CallStats('c', 'm', received=0, reconnects=0, code='OK')"

"""Keyed event-time windows: exact against brute force, watermark, late items, bounds, stop."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
import structlog

from streamnb.errors import (
    ArgumentTypeError,
    InvalidArgumentError,
    KeyLimitError,
    LateItemError,
    StreamError,
)
from streamnb.keyed import KeyedWindows, keyed_windows, session, sliding, tumbling
from streamnb.recovery import DeadLetter


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for x in items:
        yield x


async def _run(engine: KeyedWindows, items: Iterable[Any]) -> list[dict[str, Any]]:
    return [row async for row in keyed_windows(_aiter(items), engine)]


def _events(n: int, seed: int, *, disorder: float = 3.0, keys: str = "abc") -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = i * 0.1 + rnd.uniform(-disorder, 0) if rnd.random() < 0.3 else i * 0.1
        out.append({"k": rnd.choice(keys), "t": t, "v": rnd.randint(0, 100)})
    return out


def _accepted(events: list[dict[str, Any]], lateness: float, end_of: Any) -> tuple[list, int]:
    """Brute force: which items are on time (their windows all still open when they come)."""
    max_t = -math.inf
    ok, late = [], 0
    for e in events:
        ends = end_of(e["t"])
        if max_t != -math.inf and any(end <= max_t - lateness for end in ends):
            late += 1
            ok.append((e, [end for end in ends if end > max_t - lateness]))
        else:
            ok.append((e, ends))
        max_t = max(max_t, e["t"])
    return ok, late


@pytest.mark.parametrize("lateness", [0.0, 1.0, 5.0])
@pytest.mark.parametrize("seed", [1, 2])
async def test_tumbling_counts_and_sums_equal_brute_force(lateness: float, seed: int) -> None:
    events = _events(3000, seed)
    dl: DeadLetter[Any] = DeadLetter()
    engine = KeyedWindows(
        tumbling(2.0),
        by="k",
        time="t",
        allowed_lateness=lateness,
        dead_letter=dl,
        aggs={"count": "count", "sum": ("v", "sum"), "mean": ("v", "mean")},
    )
    rows = await _run(engine, events)
    accepted, late = _accepted(events, lateness, lambda t: [math.floor(t / 2.0) * 2.0 + 2.0])
    want: dict[tuple[str, float], list[int]] = defaultdict(list)
    for e, ends in accepted:
        if ends:
            want[(e["k"], ends[0] - 2.0)].append(e["v"])
    got = {(r["k"], r["window_start"]): r for r in rows}
    assert len(got) == len(rows)  # each window emitted once
    assert set(got) == set(want)
    for key, vs in want.items():
        assert got[key]["count"] == len(vs)
        assert got[key]["sum"] == sum(vs)
        assert got[key]["mean"] == pytest.approx(sum(vs) / len(vs))
        assert got[key]["window_end"] == key[1] + 2.0
    assert engine.late == late == dl.count
    assert sum(r["count"] for r in rows) + late == len(events)
    ends = [r["window_end"] for r in rows]
    assert ends == sorted(ends)  # closed in end order
    if dl.count:
        entry = dl.entries[0]
        assert isinstance(entry.error, LateItemError)
        assert "closed at watermark" in str(entry.error)


async def test_sliding_windows_equal_brute_force() -> None:
    events = _events(1500, 7, disorder=1.0)
    size, every = 3.0, 1.0
    engine = KeyedWindows(
        sliding(size, every),
        by="k",
        time="t",
        allowed_lateness=2.0,
        aggs={"count": "count", "sum": ("v", "sum")},
    )
    rows = await _run(engine, events)

    def ends_of(t: float) -> list[float]:
        first = math.floor((t - size) / every) + 1
        return [
            k * every + size
            for k in range(first, math.floor(t / every) + 1)
            if k * every <= t < k * every + size
        ]

    accepted, late = _accepted(events, 2.0, ends_of)
    want: dict[tuple[str, float], list[int]] = defaultdict(list)
    for e, ends in accepted:
        for end in ends:
            want[(e["k"], end - size)].append(e["v"])
    got = {(r["k"], r["window_start"]): (r["count"], r["sum"]) for r in rows}
    assert got == {k: (len(v), sum(v)) for k, v in want.items()}
    assert engine.late == late


async def test_session_windows_split_on_gaps_and_merge_when_bridged() -> None:
    t0 = 1000.0
    items = [
        {"k": "a", "t": t0},
        {"k": "a", "t": t0 + 1},
        {"k": "b", "t": t0 + 1.5},
        {"k": "a", "t": t0 + 5},  # gap 4 > 3: a new session for a
        {"k": "a", "t": t0 + 3.5},  # out of order: bridges a's two sessions
        {"k": "a", "t": t0 + 20},
    ]
    engine = KeyedWindows(
        session(3.0),
        by="k",
        time="t",
        allowed_lateness=10.0,
        aggs={"n": "count", "first": ("t", "first")},
    )
    rows = await _run(engine, items)
    got = sorted((r["k"], r["window_start"], r["window_end"], r["n"]) for r in rows)
    assert got == [
        ("a", t0, t0 + 8.0, 4),  # merged: items at 0, 1, 3.5, 5; ends at last + gap
        ("a", t0 + 20, t0 + 23.0, 1),
        ("b", t0 + 1.5, t0 + 4.5, 1),
    ]
    merged = next(r for r in rows if r["n"] == 4)
    assert merged["first"] == t0  # first in arrival order survives the merge


async def test_session_matches_brute_force_for_in_order_events() -> None:
    rnd = random.Random(4)
    t, items = 0.0, []
    for _ in range(2000):
        t += rnd.expovariate(1.0)
        items.append({"k": rnd.choice("xyz"), "t": t})
    rows = await _run(KeyedWindows(session(2.0), by="k", time="t"), items)
    want = []
    for k in "xyz":
        ts = [e["t"] for e in items if e["k"] == k]
        start = prev = ts[0]
        n = 1
        for x in ts[1:]:
            if x - prev < 2.0:
                n += 1
            else:
                want.append((k, start, prev + 2.0, n))
                start, n = x, 1
            prev = x
        want.append((k, start, prev + 2.0, n))
    got = sorted((r["k"], r["window_start"], r["window_end"], r["count"]) for r in rows)
    assert got == sorted(want)


async def test_late_include_emits_a_correction_row_and_raise_fails() -> None:
    items = [{"t": 0.5}, {"t": 1.5}, {"t": 2.5}, {"t": 0.7}, {"t": 3.5}]
    engine = KeyedWindows(tumbling(1.0), time="t", late="include")
    rows = await _run(engine, items)
    late_rows = [r for r in rows if r.get("late")]
    assert late_rows == [{"window_start": 0.0, "window_end": 1.0, "count": 1, "late": True}]
    assert sum(r["count"] for r in rows) == len(items)
    assert engine.late == 1
    assert engine.dead_letter.count == 0
    raising = KeyedWindows(tumbling(1.0), time="t", late="raise")
    with pytest.raises(LateItemError, match="item 3") as info:
        await _run(raising, items)
    assert isinstance(info.value, StreamError)


async def test_watermark_waits_for_allowed_lateness() -> None:
    engine = KeyedWindows(tumbling(1.0), time="t", allowed_lateness=2.0)
    engine.push({"t": 0.2})
    engine.push({"t": 2.9})
    assert engine.drain() == []  # watermark 0.9 < 1.0: [0, 1) still open
    engine.push({"t": 0.4})  # within lateness: joins its window
    engine.push({"t": 3.1})  # watermark 1.1: [0, 1) closes
    assert engine.drain() == [{"window_start": 0.0, "window_end": 1.0, "count": 2}]
    assert engine.late == 0
    assert engine.snapshot().watermark == pytest.approx(1.1)


async def test_open_windows_are_readable_and_flushed_at_the_end() -> None:
    engine = KeyedWindows(tumbling(10.0), by="k", time="t", aggs={"n": "count", "m": ("v", "max")})
    for i in range(6):
        engine.push({"k": "ab"[i % 2], "t": float(i), "v": i})
    part = engine.partial()
    assert part == [
        {"k": "a", "window_start": 0.0, "window_end": 10.0, "n": 3, "m": 4, "open": True},
        {"k": "b", "window_start": 0.0, "window_end": 10.0, "n": 3, "m": 5, "open": True},
    ]
    df = engine.to_pandas()
    assert df["open"].all() and df["n"].tolist() == [3, 3]
    engine.push({"k": "a", "t": 1.0, "v": 100})  # partial read changed nothing
    rows = engine.flush()
    assert [r["n"] for r in rows] == [4, 3] and rows[0]["m"] == 100
    assert engine.open_windows() == []
    snap = engine.snapshot()
    assert (snap.closed, snap.open, snap.keys, snap.items) == (2, 0, 0, 7)


async def test_a_stopped_run_reports_the_windows_still_open() -> None:
    async def endless() -> AsyncIterator[dict[str, Any]]:
        i = 0
        while True:
            yield {"k": i % 3, "t": i * 1e-5}
            i += 1
            await asyncio.sleep(0)

    engine = KeyedWindows(tumbling(100.0), by="k", time="t")
    gen = keyed_windows(endless(), engine)

    async def consume() -> None:
        async for _ in gen:
            pass

    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await gen.aclose()
    stops = [e for e in logs if e["event"] == "keyed.open_at_stop"]
    assert len(stops) == 1 and stops[0]["open"] == 3
    assert engine.items > 0
    assert engine.open_windows() == [(0, 0.0, 100.0), (1, 0.0, 100.0), (2, 0.0, 100.0)]
    assert len(asyncio.all_tasks()) == 1  # only this test's task is left


async def test_max_keys_error_names_the_key_and_item() -> None:
    engine = KeyedWindows(tumbling(1.0), by="k", time="t", max_keys=2)
    items = [{"k": "a", "t": 0.1}, {"k": "b", "t": 0.2}, {"k": "c", "t": 0.3}]
    with pytest.raises(KeyLimitError, match=r"item 2 has a new key 'c'.*max_keys=2"):
        await _run(engine, items)


async def test_max_keys_evict_closes_the_oldest_key_first_and_memory_stays_bounded() -> None:
    engine = KeyedWindows(tumbling(1000.0), by="k", time="t", max_keys=10, on_max_keys="evict")
    rows = await _run(engine, ({"k": i, "t": i * 0.001} for i in range(5000)))
    evicted = [r for r in rows if r.get("evicted")]
    assert len(evicted) == 4990 == engine.evicted
    assert evicted[0]["k"] == 0 and evicted[1]["k"] == 1
    assert sum(r["count"] for r in rows) == 5000
    assert len(engine._key_open) == 0


async def test_event_times_may_be_aware_datetimes_and_bad_times_are_named() -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    engine = KeyedWindows(tumbling(60.0), time="at")
    rows = await _run(engine, [{"at": base + dt.timedelta(seconds=s)} for s in (1, 30, 61)])
    assert [r["count"] for r in rows] == [2, 1]
    assert rows[0]["window_start"] == base.timestamp()
    for bad, exc, frag in [
        ({"at": "noon"}, ArgumentTypeError, "item 1 has event time 'noon'"),
        ({"at": math.nan}, InvalidArgumentError, "item 1 has event time nan"),
        ({"at": math.inf}, InvalidArgumentError, "item 1 has event time inf"),
        ({"at": -math.inf}, InvalidArgumentError, "item 1 has event time -inf"),
        ({"at": dt.datetime(2026, 1, 1)}, InvalidArgumentError, "naive datetime"),
        ({"at": True}, ArgumentTypeError, "bool"),
    ]:
        with pytest.raises(exc, match=frag):
            await _run(KeyedWindows(tumbling(1.0), time="at"), [{"at": 1.0}, bad])


async def test_a_missing_key_field_gets_a_note_with_the_item_index() -> None:
    engine = KeyedWindows(tumbling(1.0), by="kind", time="t")
    with pytest.raises(KeyError) as info:
        await _run(engine, [{"kind": "a", "t": 0.0}, {"t": 0.5}])
    assert any("item 1" in n for n in getattr(info.value, "__notes__", []))


async def test_default_time_is_the_arrival_time() -> None:
    engine = KeyedWindows(tumbling(3600.0), by=lambda x: x % 2)
    rows = await _run(engine, range(10))
    assert (
        sorted((r["key"], r["count"]) for r in rows)
        in (
            [(0, 5), (1, 5)],
            sorted([(0, a) for a in range(6)] + [(1, b) for b in range(6)]),
        )
        or sum(r["count"] for r in rows) == 10
    )
    now = dt.datetime.now(dt.UTC).timestamp()
    assert all(abs(r["window_start"] - now) < 7200 for r in rows)


@pytest.mark.parametrize(
    ("make", "exc", "fragment"),
    [
        (lambda: tumbling(0), InvalidArgumentError, r"tumbling\(size=0\)"),
        (lambda: tumbling("1"), ArgumentTypeError, "size"),
        (lambda: sliding(1.0, 2.0), InvalidArgumentError, "every must be <= size"),
        (lambda: sliding(10.0, 0.001), InvalidArgumentError, "<= 1000"),
        (lambda: session(math.nan), InvalidArgumentError, "gap"),
        (lambda: KeyedWindows(tumbling(1), late="drop"), InvalidArgumentError, "late="),
        (lambda: KeyedWindows(tumbling(1), max_keys=0), InvalidArgumentError, "max_keys"),
        (lambda: KeyedWindows(tumbling(1), keep=-1), InvalidArgumentError, r"keep=-1"),
        (lambda: KeyedWindows(tumbling(1), keep=10.0), ArgumentTypeError, r"keep=10\.0"),
        (lambda: KeyedWindows(tumbling(1), keep=True), ArgumentTypeError, "keep="),
        (
            lambda: KeyedWindows(tumbling(1), allowed_lateness=-1),
            InvalidArgumentError,
            "allowed_lateness",
        ),
        (lambda: KeyedWindows(tumbling(1), by=3.5), ArgumentTypeError, "by="),
        (
            lambda: KeyedWindows(tumbling(1), aggs={"window_end": "count"}),
            InvalidArgumentError,
            "window_end",
        ),
        (lambda: KeyedWindows("1s"), ArgumentTypeError, "tumbling"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_fail_up_front(make: Any, exc: type[Exception], fragment: str) -> None:
    with pytest.raises(exc, match=fragment):
        make()


async def test_snapshot_is_live_while_the_compiled_loop_runs() -> None:
    engine = KeyedWindows(tumbling(1.0), by="k", time="t")
    seen = []
    async for row in keyed_windows(_aiter({"k": i % 2, "t": i * 0.1} for i in range(100)), engine):
        snap = engine.snapshot()
        seen.append((snap.items, snap.watermark, snap.closed))
        assert row["count"] == 5
    assert seen[0][0] == 11 and seen[0][1] == pytest.approx(1.0)  # the item that closed [0, 1)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)
    assert engine.snapshot().items == 100 and engine.snapshot().open == 0


@pytest.mark.parametrize("shape", [tumbling(1.0), sliding(2.0, 1.0), session(0.5)])
async def test_rows_are_the_last_kept_closed_windows_then_the_open_ones(shape: Any) -> None:
    engine = KeyedWindows(shape, by="k", time="t", aggs={"n": "count", "s": ("v", "sum")}, keep=4)
    events = [{"k": "ab"[i % 2], "t": i * 0.3, "v": i} for i in range(40)]
    out = []
    async for row in keyed_windows(_aiter(events), engine):
        out.append(dict(row))
        row["n"] = -1  # a downstream stage changing the dict it got changes nothing kept
        assert len(engine.emitted()) <= 4  # bounded by keep
    assert len(out) > 8
    assert engine.rows() == [{**r, "open": False} for r in out[-4:]]  # all closed at the end
    assert engine.partial() == [] and engine.snapshot().closed == len(out)
    per_item = 2 if shape.kind == "sliding" else 1  # sliding(2, 1): each item is in 2 windows
    assert sum(r["n"] for r in out) == len(events) * per_item


async def test_rows_while_open_put_the_partial_windows_last_and_keep_0_keeps_none() -> None:
    engine = KeyedWindows(tumbling(1.0), by="k", time="t", aggs={"n": "count"})
    for i in range(25):  # windows [0, 1) and [1, 2) close, [2, 3) stays open
        engine.push({"k": "ab"[i % 2], "t": i * 0.1})
    closed = engine.drain()
    rows = engine.rows()
    assert [(r["k"], r["window_start"], r["open"]) for r in rows] == [
        ("a", 0.0, False),
        ("b", 0.0, False),
        ("a", 1.0, False),
        ("b", 1.0, False),
        ("a", 2.0, True),
        ("b", 2.0, True),
    ]
    assert [r["n"] for r in rows] == [r["n"] for r in closed] + [3, 2]
    df = engine.to_pandas()
    assert df["open"].tolist() == [False] * 4 + [True] * 2
    assert df["n"].sum() == 25  # every item pushed is in exactly one row
    none = KeyedWindows(tumbling(1.0), time="t", keep=0)
    for i in range(25):
        none.push({"t": i * 0.1})
    assert len(none.drain()) == 2 and none.emitted() == []
    assert none.rows() == [{"window_start": 2.0, "window_end": 3.0, "count": 5, "open": True}]


async def test_late_correction_and_evicted_rows_are_kept_with_their_marks() -> None:
    engine = KeyedWindows(
        tumbling(1.0), by="k", time="t", late="include", max_keys=1, on_max_keys="evict"
    )
    for e in (
        {"k": "a", "t": 0.5},
        {"k": "a", "t": 1.5},
        {"k": "a", "t": 0.2},
        {"k": "b", "t": 1.6},
    ):
        engine.push(e)
    engine.drain()
    assert [
        (r["k"], r["window_start"], r.get("late"), r.get("evicted"), r["open"])
        for r in engine.rows()
    ] == [
        ("a", 0.0, None, None, False),  # closed by the watermark 1.5
        ("a", 0.0, True, None, False),  # the late item's correction row
        ("a", 1.0, None, True, False),  # evicted for the new key b
        ("b", 1.0, None, None, True),
    ]


def _mixed_events(n: int, seed: int, step: float) -> list[dict[str, Any]]:
    """Out-of-order events whose values are floats, ints, None and NaN."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = i * step - (rnd.randint(0, 40) * step if rnd.random() < 0.2 else 0.0)
        v = rnd.choice([None, math.nan, rnd.randint(0, 9), rnd.random(), True])
        out.append({"k": rnd.choice("abcd"), "t": t, "v": v})
    return out


_MIXED_AGGS = {"n": "count", "s": ("v", "sum"), "m": ("v", "mean"), "n2": "count"}


@pytest.mark.parametrize("lateness", [0.0, 0.1, 0.3, 2.5])
@pytest.mark.parametrize("seed", [3, 4])
async def test_the_compiled_tumbling_loop_emits_what_push_does_item_for_item(
    lateness: float, seed: int
) -> None:
    """The generated loop (key cache, watermark as `t >= close_at`) against push(): the same
    rows after the same item, also with a lateness that does not add up exactly."""
    events = _mixed_events(4000, seed, 0.1)

    def make() -> KeyedWindows:
        return KeyedWindows(
            tumbling(0.7), by="k", time="t", aggs=_MIXED_AGGS, allowed_lateness=lateness
        )

    ref = make()
    want = []
    for e in events:
        if ref.push(e):
            want += [(ref.items, r) for r in ref.drain()]
    want += [(ref.items, r) for r in ref.flush()]
    engine = make()
    got = [(engine.items, r) async for r in keyed_windows(_aiter(events), engine)]
    assert len(got) > 100 and ref.late > 0
    assert got == want
    assert engine.snapshot() == ref.snapshot()
    assert engine.dead_letter.count == ref.dead_letter.count == ref.late


async def test_tumbling_counts_sums_and_means_equal_the_general_accumulators() -> None:
    """Tumbling keeps count/sum/mean as plain numbers; sliding(size, every=size) - the same
    windows - folds them with the general accumulators: the rows are the same."""
    events = _mixed_events(3000, 5, 0.125)  # times exact in binary: the same window bounds
    tum = KeyedWindows(tumbling(1.0), by="k", time="t", aggs=_MIXED_AGGS, allowed_lateness=0.5)
    sli = KeyedWindows(sliding(1.0, 1.0), by="k", time="t", aggs=_MIXED_AGGS, allowed_lateness=0.5)
    rows = await _run(tum, events)
    assert rows == await _run(sli, events)
    assert tum.late == sli.late > 0
    assert any(isinstance(r["s"], int) for r in rows)  # a sum of ints stays an int
    assert any(math.isnan(r["m"]) for r in rows)  # a window of None / NaN values only


async def test_a_window_closes_at_the_item_whose_time_minus_lateness_reaches_its_end() -> None:
    # 2.7999999999999994 - 0.7 == 2.0999999999999996 (the end of [1.4, 2.1)), while
    # 2.0999999999999996 + 0.7 rounds to 2.8: the compiled loop must not wait for t >= 2.8
    times = (1.5, 2.7999999999999994, 2.75)
    engine = KeyedWindows(tumbling(0.7), time="t", allowed_lateness=0.7)
    rows = keyed_windows(_aiter({"t": t} for t in times), engine)
    got = [(engine.items, r["window_end"]) async for r in rows]
    assert got == [(2, 2.0999999999999996), (3, 2.8)]


def test_emitted_since_gives_only_the_rows_after_a_count_and_at_most_keep() -> None:
    engine = KeyedWindows(tumbling(1.0), time="t", keep=3)
    assert engine.emitted_since(0) == ([], 0)
    for t in range(3):  # closes [0, 1) and [1, 2)
        engine.push({"t": float(t)})
    first = engine.drain()
    rows, seen = engine.emitted_since(0)
    assert seen == 2 and rows == first and [r["window_end"] for r in rows] == [1.0, 2.0]
    for t in range(3, 8):  # closes [2, 3) .. [6, 7): five more, keep=3 of all seven
        engine.push({"t": float(t)})
    engine.drain()
    later, seen2 = engine.emitted_since(seen)
    assert seen2 == 7 and [r["window_end"] for r in later] == [5.0, 6.0, 7.0]
    assert engine.emitted_since(seen2) == ([], 7)
    engine.flush()
    assert [r["window_end"] for r in engine.emitted_since(seen2)[0]] == [8.0]

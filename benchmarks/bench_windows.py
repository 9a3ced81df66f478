"""Windows and aggregations benchmark: keyed tumbling windows, columnar to_pandas, chart messages.

Everything runs in ONE process, variants interleaved in every repeat, medians reported, so the
ratios hold on a noisy shared machine even when absolute times do not.

    python benchmarks/bench_windows.py [--events 1000000] [--repeats 3] [--rows 100000]

The job (``keyed_tumbling_*``): ``--events`` pre-built events ``{"k", "t", "v"}`` with 100 keys
and event times 0.1 ms apart (10,000 events per second of event time, in order), read from
one async generator (built before timing, then ``gc.freeze()``-d so that the collector does
not rescan the input); 1-second tumbling windows per key with count and mean of ``v``; every
closed window becomes a dict row collected in a list. Three implementations of that job:

- streamnb: ``KeyedWindows(tumbling(1.0), by="k", time="t", aggs=...)`` over the source;
- hand-written: a dict of ``[count, sum]`` accumulators keyed by (key, window start), closing
  windows as the event time passes their end - what you would write for this one job;
- streamz: the same accumulator logic in ``Stream.accumulate(returns_state=True)``, flattened
  to a sink, fed with ``emit`` from the same async source.

``to_pandas_vs_json_normalize``: a full ``Window(last=--rows)`` of flat dict rows,
``Window.to_pandas()`` against ``pd.json_normalize`` on the same list of rows.

``chart_messages``: a :class:`~streamnb.notebook.chart.LiveChart` fed one row per event of a
1,000,000-event run paced over ``--chart-seconds`` seconds (longer if adding the rows takes
longer), and of a 100,000-event run paced over the same duration: the widget messages sent
(the comm is a no-op outside a kernel; the chart counts what it sends).
They depend on the run's duration (<= 4 per second), not on the event count.

Last line: one JSON object with ``keyed_tumbling_vs_handwritten`` (target <= 1.5),
``keyed_tumbling_vs_streamz`` (target <= 0.2), ``to_pandas_vs_json_normalize`` (target <= 0.1),
``chart_messages`` (messages of the 1,000,000-event run), ``chart_messages_1m_vs_100k`` (~1)
and the per-append cost of a window of flat dicts (ns, informational).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pandas as pd
from streamz import Stream as ZStream

from streamnb.keyed import KeyedWindows, keyed_windows, tumbling
from streamnb.notebook.chart import LiveChart
from streamnb.window import Window

KEYS = 100
SPACING = 1e-4  # seconds of event time between events
SIZE = 1.0


def make_events(n: int) -> list[dict[str, Any]]:
    return [{"k": i % KEYS, "t": i * SPACING, "v": float(i % 17)} for i in range(n)]


async def source(events: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for e in events:
        yield e


# -- (a) streamnb ---------------------------------------------------------------------------
async def run_streamnb(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    engine = KeyedWindows(
        tumbling(SIZE), by="k", time="t", aggs={"count": "count", "mean": ("v", "mean")}
    )
    return [row async for row in keyed_windows(source(events), engine)]


# -- (b) hand-written dict of accumulators --------------------------------------------------
def _row(key: Any, start: float, acc: list[Any]) -> dict[str, Any]:
    return {
        "k": key,
        "window_start": start,
        "window_end": start + SIZE,
        "count": acc[0],
        "mean": acc[1] / acc[0],
    }


async def run_handwritten(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    state: dict[tuple[Any, float], list[Any]] = {}
    out: list[dict[str, Any]] = []
    max_t = -math.inf
    next_close = math.inf
    async for e in source(events):
        t = e["t"]
        start = (t // SIZE) * SIZE
        key = (e["k"], start)
        acc = state.get(key)
        if acc is None:
            acc = state[key] = [0, 0.0]
            next_close = min(next_close, start + SIZE)
        acc[0] += 1
        acc[1] += e["v"]
        if t > max_t:
            max_t = t
            if max_t >= next_close:
                for k in [k for k in state if k[1] + SIZE <= max_t]:
                    out.append(_row(k[0], k[1], state.pop(k)))
                next_close = min((k[1] + SIZE for k in state), default=math.inf)
    for k, acc in sorted(state.items(), key=lambda kv: kv[0][1]):
        out.append(_row(k[0], k[1], acc))
    return out


# -- (c) streamz --------------------------------------------------------------------------------
def _streamz_step(
    state: dict[str, Any], e: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    windows = state["w"]
    t = e["t"]
    start = (t // SIZE) * SIZE
    key = (e["k"], start)
    acc = windows.get(key)
    if acc is None:
        acc = windows[key] = [0, 0.0]
    acc[0] += 1
    acc[1] += e["v"]
    closed: list[dict[str, Any]] = []
    if t > state["max_t"]:
        state["max_t"] = t
        if t >= state["next"]:
            for k in [k for k in windows if k[1] + SIZE <= t]:
                closed.append(_row(k[0], k[1], windows.pop(k)))
            state["next"] = min((k[1] + SIZE for k in windows), default=math.inf)
        elif start + SIZE < state["next"]:
            state["next"] = start + SIZE
    return state, closed


async def run_streamz(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    state: dict[str, Any] = {"w": {}, "max_t": -math.inf, "next": SIZE}
    src = ZStream()
    src.accumulate(_streamz_step, returns_state=True, start=state).flatten().sink(out.append)
    async for e in source(events):
        src.emit(e)
    for k, acc in sorted(state["w"].items(), key=lambda kv: kv[0][1]):
        out.append(_row(k[0], k[1], acc))
    return out


def _check_same(a: list[dict[str, Any]], b: list[dict[str, Any]], what: str) -> None:
    def norm(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["k"], r["window_start"], r["count"], round(r["mean"], 9)) for r in rows)

    if norm(a) != norm(b):
        raise SystemExit(f"{what}: the implementations disagree")


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- to_pandas --------------------------------------------------------------------------------
def bench_to_pandas(rows: int, repeats: int) -> tuple[float, float, float]:
    rnd = random.Random(7)
    data = [
        {
            "id": i,
            "kind": rnd.choice(("api", "db", "cache", "queue")),
            "latency_ms": rnd.random() * 100,
            "bytes": rnd.randint(100, 10_000),
            "ok": i % 11 != 0,
        }
        for i in range(rows)
    ]
    window = Window(last=rows)
    append = window.append
    t0 = time.perf_counter()
    for r in data:
        append(r)
    append_ns = (time.perf_counter() - t0) / rows * 1e9
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeats):
        t, df = _timed(window.to_pandas)
        ours.append(t)
        t, ref = _timed(lambda: pd.json_normalize(data))
        theirs.append(t)
    if len(df) != rows or df["bytes"].tolist() != ref["bytes"].tolist():
        raise SystemExit("to_pandas: the frames differ")
    return statistics.median(ours), statistics.median(theirs), append_ns


# -- chart messages -----------------------------------------------------------------------------
async def chart_run(events: int, seconds: float) -> tuple[int, float]:
    chart = LiveChart(x="t", y="v", by="k", max_points=500, rate=4.0)
    slices = 100
    per = events // slices
    t0 = time.perf_counter()
    i = 0
    for s in range(slices):
        for _ in range(per):
            chart.add({"t": i * SPACING, "v": float(i % 17), "k": i % 5})
            i += 1
        # pace the run: it lasts about `seconds` whatever the event count
        await asyncio.sleep(max(0.0, t0 + seconds * (s + 1) / slices - time.perf_counter()))
    chart.flush()
    return chart.messages, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--chart-seconds", type=float, default=3.0)
    args = ap.parse_args()

    events = make_events(args.events)
    gc.freeze()  # the pre-built input is not the job: keep the collector from rescanning it
    times: dict[str, list[float]] = {"streamnb": [], "handwritten": [], "streamz": []}
    runners = {"streamnb": run_streamnb, "handwritten": run_handwritten, "streamz": run_streamz}
    results: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.repeats):
        for name, fn in runners.items():
            t, out = _timed(lambda fn=fn: asyncio.run(fn(events)))  # type: ignore[misc]
            times[name].append(t)
            results[name] = out
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    _check_same(results["streamnb"], results["handwritten"], "streamnb vs hand-written")
    _check_same(results["streamz"], results["handwritten"], "streamz vs hand-written")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(
            f"keyed tumbling {name:12s} median {t:7.3f} s ({t / args.events * 1e9:7.1f} ns/event)"
        )
    print(f"windows emitted: {len(results['streamnb'])}")

    ours, theirs, append_ns = bench_to_pandas(args.rows, max(3, args.repeats))
    print(
        f"to_pandas {args.rows:,} rows: {ours * 1e3:.1f} ms; json_normalize {theirs * 1e3:.1f} ms"
    )
    print(f"Window.append (flat dicts, amortised): {append_ns:.0f} ns")

    big, big_s = asyncio.run(chart_run(1_000_000, args.chart_seconds))
    # the same duration with a tenth of the events: the messages should not change
    small, small_s = asyncio.run(chart_run(100_000, max(args.chart_seconds, big_s)))
    print(
        f"chart: 1,000,000 events in {big_s:.1f} s -> {big} messages; "
        f"100,000 events in {small_s:.1f} s -> {small} messages"
    )

    result = {
        "keyed_tumbling_vs_handwritten": round(med["streamnb"] / med["handwritten"], 3),
        "keyed_tumbling_vs_streamz": round(med["streamnb"] / med["streamz"], 3),
        "to_pandas_vs_json_normalize": round(ours / theirs, 3),
        "chart_messages": big,
        "chart_messages_per_second": round(big / big_s, 2),
        "chart_messages_1m_vs_100k": round(big / max(1, small), 2),
        "window_append_ns": round(append_ns),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

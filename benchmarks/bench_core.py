"""Core engine benchmark: streamnb against a hand-written async-generator chain and aiostream.

Everything runs in ONE process, variants interleaved in every repeat, medians reported, so
the ratios hold on a noisy shared machine even when absolute times do not.

    python benchmarks/bench_core.py [--items 1000000] [--repeats 5] [--cmap-items 100000]

Last line: one JSON object
``{"pipeline_vs_handwritten": r1, "pipeline_vs_aiostream": r2, "buffer_vs_handwritten": r3,
"concurrent_map_vs_aiostream": r4}`` - each streamnb's time divided by the other's.
Targets: r1 <= 1.3, r2 <= 0.15, r3 <= 2.0, r4 <= 0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiostream import pipe, stream

from streamnb import Stream


def double(x: int) -> int:
    return x * 2


def div3(x: int) -> bool:
    return x % 3 == 0


async def touch(x: int) -> int:
    await asyncio.sleep(0)
    return x


# -- (a) hand-written async generators ----------------------------------------------------------
async def h_source(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def h_map(src: AsyncIterator[int]) -> AsyncIterator[int]:
    async for x in src:
        yield double(x)


async def h_filter(src: AsyncIterator[int]) -> AsyncIterator[int]:
    async for x in src:
        if div3(x):
            yield x


async def h_batch(src: AsyncIterator[int], size: int) -> AsyncIterator[list[int]]:
    chunk: list[int] = []
    async for x in src:
        chunk.append(x)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def h_buffer(src: AsyncIterator[int], size: int) -> AsyncIterator[int]:
    """What one writes by hand: an asyncio.Queue(maxsize) filled by a producer task."""
    q: asyncio.Queue[Any] = asyncio.Queue(maxsize=size)
    end = object()

    async def produce() -> None:
        async for x in src:
            await q.put(x)
        await q.put(end)

    task = asyncio.create_task(produce())
    try:
        while True:
            x = await q.get()
            if x is end:
                break
            yield x
    finally:
        task.cancel()


async def drain(it: AsyncIterator[Any]) -> int:
    n = 0
    async for _ in it:
        n += 1
    return n


async def hand_pipeline(n: int) -> int:
    return await drain(h_batch(h_filter(h_map(h_source(n))), 100))


async def hand_buffered(n: int) -> int:
    return await drain(h_batch(h_filter(h_buffer(h_map(h_source(n)), 100)), 100))


# -- (b) aiostream ------------------------------------------------------------------------------
async def aio_pipeline(n: int) -> int:
    xs = stream.iterate(range(n)) | pipe.map(double) | pipe.filter(div3) | pipe.chunks(100)
    async with xs.stream() as s:
        return await drain(s)


async def aio_cmap(n: int) -> int:
    xs = stream.iterate(range(n)) | pipe.map(touch, task_limit=10)
    async with xs.stream() as s:
        return await drain(s)


# -- (c) streamnb -------------------------------------------------------------------------------
async def snb_pipeline(n: int) -> int:
    return await Stream(range(n)).map(double).filter(div3).batch(100).count()


async def snb_buffered(n: int) -> int:
    return await Stream(range(n)).map(double).buffer(100).filter(div3).batch(100).count()


async def snb_cmap(n: int) -> int:
    return await Stream(range(n)).map(touch, concurrency=10).count()


def timed(fn: Callable[[int], Coroutine[Any, Any, int]], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter()
    asyncio.run(fn(n))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--cmap-items", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    n, cn = args.items, args.cmap_items

    # all variants must agree before anything is timed
    expect = asyncio.run(hand_pipeline(n))
    for fn in (aio_pipeline, snb_pipeline, hand_buffered, snb_buffered):
        got = asyncio.run(fn(n))
        assert got == expect, f"{fn.__name__} produced {got} batches, expected {expect}"
    assert asyncio.run(snb_cmap(cn)) == asyncio.run(aio_cmap(cn)) == cn

    variants: dict[str, tuple[Callable[[int], Coroutine[Any, Any, int]], int]] = {
        "handwritten": (hand_pipeline, n),
        "aiostream": (aio_pipeline, n),
        "streamnb": (snb_pipeline, n),
        "handwritten+buffer": (hand_buffered, n),
        "streamnb+buffer": (snb_buffered, n),
        "aiostream map task_limit=10": (aio_cmap, cn),
        "streamnb map concurrency=10": (snb_cmap, cn),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, (fn, count) in variants.items():
            times[name].append(timed(fn, count))
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, (_, count) in variants.items():
        print(f"{name:32s} median {med[name]:8.3f} s  ({med[name] / count * 1e9:8.1f} ns/item)")
    result = {
        "pipeline_vs_handwritten": round(med["streamnb"] / med["handwritten"], 3),
        "pipeline_vs_aiostream": round(med["streamnb"] / med["aiostream"], 3),
        "buffer_vs_handwritten": round(med["streamnb+buffer"] / med["handwritten+buffer"], 3),
        "concurrent_map_vs_aiostream": round(
            med["streamnb map concurrency=10"] / med["aiostream map task_limit=10"], 3
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""A CPU-bound stage in the loop's thread pool vs. on a 2-worker Dask LocalCluster.

The function is pure Python (~5 ms per item, calibrated on this machine), so threads share
one GIL: two of them do about the work of one. Two Dask worker processes have a GIL each.
Both runs use the same pipeline; only the stage's executor changes::

    Stream(items).map(work, executor=ThreadPoolExecutor(2), concurrency=2)
    Stream(items).map(work, executor=DaskExecutor(client), concurrency=CONCURRENCY)

A third, informative run sends batches of BATCH items per task
(``.batch(BATCH).map(work_many, executor=ex)``): a Dask task costs milliseconds of
scheduler and client CPU, which on a 2-core machine is taken from the same two cores the
workers compute on, so tasks of ~5 ms cannot reach the ideal 2x; batching amortises that.

Repeats are interleaved (thread, dask, thread, dask, ...) so that noise from the shared
machine hits both alike; the figure is the ratio of the median times. The cluster's start
(a few seconds) is not timed: it is paid once per session, not per stage.

Last line: ``{"speedup_vs_thread": s, "max_in_flight": k}`` (k: the most Dask futures the
stage held at once; it never exceeds CONCURRENCY).

    python benchmarks/bench_dask.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from distributed import Client, LocalCluster

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streamnb import Stream
from streamnb.dask import DaskExecutor

ITEMS = 400
TARGET_MS = 5.0
REPEATS = 3
CONCURRENCY = 8  # 4 per worker: a worker has its next tasks while results travel back
BATCH = 10


def spin(n: int) -> int:
    """Pure-Python CPU work: holds the GIL for all of it."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def spin_many(ns: list[int]) -> list[int]:
    return [spin(n) for n in ns]


def calibrate() -> int:
    """Loop count for ~TARGET_MS of work per call (best of 7: the least disturbed)."""
    n = 50_000
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        spin(n)
        best = min(best, time.perf_counter() - t0)
    return max(1, int(n * TARGET_MS / 1000 / best))


async def run_threads(n: int, pool: ThreadPoolExecutor) -> float:
    t0 = time.perf_counter()
    out = await Stream([n] * ITEMS).map(spin, executor=pool, concurrency=2).collect()
    dt = time.perf_counter() - t0
    assert len(out) == ITEMS
    return dt


async def run_dask(n: int, ex: DaskExecutor) -> float:
    t0 = time.perf_counter()
    out = await Stream([n] * ITEMS).map(spin, executor=ex, concurrency=CONCURRENCY).collect()
    dt = time.perf_counter() - t0
    assert len(out) == ITEMS
    return dt


async def run_dask_batched(n: int, ex: DaskExecutor) -> float:
    t0 = time.perf_counter()
    s = Stream([n] * ITEMS).batch(BATCH).map(spin_many, executor=ex, concurrency=4)
    out = await s.collect()
    dt = time.perf_counter() - t0
    assert sum(len(b) for b in out) == ITEMS
    return dt


async def main(client: Client) -> dict[str, float | int]:
    n = calibrate()
    one: list[float] = []
    for _ in range(21):
        t0 = time.perf_counter()
        spin(n)
        one.append(time.perf_counter() - t0)
    per_item_ms = min(one) * 1000  # the least disturbed call: what the work costs
    print(f"work: spin({n}) ~ {per_item_ms:.2f} ms per item, {ITEMS} items")
    print(f"serial estimate: {per_item_ms * ITEMS / 1000:.2f} s")
    threads: list[float] = []
    cluster: list[float] = []
    batched: list[float] = []
    max_in_flight = 0
    cpu = 0.0
    with ThreadPoolExecutor(2) as pool:
        async with (
            DaskExecutor(client, name="bench") as ex,
            DaskExecutor(client, name="batched") as exb,
        ):
            await run_dask(n, ex)  # warm-up: workers import and unpickle the function
            await run_dask_batched(n, exb)
            await run_threads(n, pool)
            for r in range(REPEATS):
                threads.append(await run_threads(n, pool))
                c0 = time.process_time()
                cluster.append(await run_dask(n, ex))
                cpu += time.process_time() - c0
                batched.append(await run_dask_batched(n, exb))
                print(
                    f"repeat {r + 1}: threads {threads[-1]:.3f} s, dask {cluster[-1]:.3f} s "
                    f"(ratio {threads[-1] / cluster[-1]:.2f}), dask batch({BATCH}) "
                    f"{batched[-1]:.3f} s (ratio {threads[-1] / batched[-1]:.2f})"
                )
            max_in_flight = ex.max_in_flight
            print(ex.info())
    t_med, d_med, b_med = (statistics.median(v) for v in (threads, cluster, batched))
    print(
        f"median: threads {t_med:.3f} s ({ITEMS / t_med:.0f} items/s), "
        f"dask {d_med:.3f} s ({ITEMS / d_med:.0f} items/s), "
        f"dask batch({BATCH}) {b_med:.3f} s ({ITEMS / b_med:.0f} items/s)"
    )
    print(
        f"coordination CPU in this process (client + LocalCluster scheduler): "
        f"{cpu / REPEATS / ITEMS * 1000:.2f} ms per task"
    )
    print(f"speedup of batch({BATCH}) tasks vs threads: {t_med / b_med:.2f}")
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        print(f"note: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: noisy")
    return {"speedup_vs_thread": round(t_med / d_med, 2), "max_in_flight": max_in_flight}


if __name__ == "__main__":
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
    print(
        f"cluster start: {time.perf_counter() - t0:.2f} s (not timed below); {os.cpu_count()} cores"
    )
    import logging

    logging.getLogger("streamnb").setLevel(logging.WARNING)
    with Client(cluster) as client:  # type: ignore[no-untyped-call]
        result = asyncio.run(main(client))
    cluster.close()
    print(json.dumps(result))

"""A CPU-bound stage in the loop's thread pool vs. on a 2-worker Dask LocalCluster.

The function is pure Python (~5 ms per item, calibrated on this machine), so threads share
one GIL: two of them do about the work of one. Two Dask worker processes have a GIL each.
Both runs use the same pipeline; only the stage's executor changes::

    Stream(items).map(work, executor=ThreadPoolExecutor(2), concurrency=2)
    Stream(items).map(work, executor=DaskExecutor(client), concurrency=CONCURRENCY)

A third run sends batches of BATCH items per task (``.batch(BATCH).map(work_many,
executor=ex)``, ~50 ms per task): the way the module docs recommend for calls this short.

Why one task per 5 ms item cannot reach 2x here: every Dask task costs CPU outside the
function - the client and the scheduler (both in this process with a LocalCluster) and the
worker's own bookkeeping. The script measures that cost (CPU of this process and of the
worker processes during the Dask run, minus the function's own CPU) and prints the best
speedup it allows on C cores when everything shares them: C * w / (w + overhead) for w
seconds of work per task. With ~5 ms per task and ~4-6 ms overhead that is ~1x, with
~50 ms tasks ~1.8x.

Settings that trim Dask's background cost, all on the cluster (none on the function or the
items): the worker's statistical profiler off (it samples the running task every 10 ms),
work stealing off (two equal workers have nothing to balance), no dashboard server.

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
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

import dask
import psutil  # type: ignore[import-untyped]
from distributed import Client, LocalCluster

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streamnb import Stream
from streamnb.dask import DaskExecutor

ITEMS = 400
TARGET_MS = 5.0
REPEATS = 5
#: Dask settings that only trim background cost (the workers and LocalCluster inherit them)
_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,  # no 10 ms sampling of the running task
    "distributed.scheduler.work-stealing": False,  # two equal workers: nothing to balance
}
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


def _workers_cpu(client: Client) -> float:
    """CPU seconds (user + system) used so far by the worker processes."""
    pids: dict[str, int] = client.run(os.getpid)
    return float(sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids.values()))


class _Costs:
    """Wall time and CPU (this process, the workers) of repeated runs."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.main_cpu: list[float] = []
        self.workers_cpu: list[float] = []

    async def run(self, client: Client, coro: Awaitable[float]) -> float:
        c0, w0 = time.process_time(), _workers_cpu(client)
        dt = await coro
        self.main_cpu.append(time.process_time() - c0)
        self.workers_cpu.append(_workers_cpu(client) - w0)
        self.wall.append(dt)
        return dt


async def main(client: Client) -> dict[str, float | int]:
    n = calibrate()
    one: list[float] = []
    for _ in range(21):
        t0 = time.process_time()
        spin(n)
        one.append(time.process_time() - t0)
    per_item = statistics.median(one)  # CPU seconds of one call
    cores = os.cpu_count() or 1
    print(f"work: spin({n}) ~ {per_item * 1000:.2f} ms CPU per item, {ITEMS} items")
    print(f"serial estimate: {per_item * ITEMS:.2f} s")
    threads, cluster, batched = _Costs(), _Costs(), _Costs()
    max_in_flight = 0
    with ThreadPoolExecutor(2) as pool:
        async with (
            DaskExecutor(client, name="bench") as ex,
            DaskExecutor(client, name="batched") as exb,
        ):
            await run_dask(n, ex)  # warm-up: workers import and unpickle the function
            await run_dask_batched(n, exb)
            await run_threads(n, pool)
            for r in range(REPEATS):
                t = await threads.run(client, run_threads(n, pool))
                d = await cluster.run(client, run_dask(n, ex))
                b = await batched.run(client, run_dask_batched(n, exb))
                print(
                    f"repeat {r + 1}: threads {t:.3f} s, dask {d:.3f} s (ratio {t / d:.2f}), "
                    f"dask batch({BATCH}) {b:.3f} s (ratio {t / b:.2f})"
                )
            max_in_flight = ex.max_in_flight
            print(ex.info())
            print(exb.info())
    t_med, d_med, b_med = (statistics.median(c.wall) for c in (threads, cluster, batched))
    print(
        f"median: threads {t_med:.3f} s ({ITEMS / t_med:.0f} items/s), "
        f"dask {d_med:.3f} s ({ITEMS / d_med:.0f} items/s), "
        f"dask batch({BATCH}) {b_med:.3f} s ({ITEMS / b_med:.0f} items/s)"
    )
    # Both Dask runs do the same work; they differ only in the number of tasks (ITEMS vs
    # ITEMS / BATCH). The difference of their CPU is therefore pure per-task cost, without
    # relying on a (noisy) single-call timing of the work.
    tasks1, tasks_b = ITEMS, ITEMS // BATCH
    main1, main_b = (statistics.median(c.main_cpu) for c in (cluster, batched))
    work1, work_b = (statistics.median(c.workers_cpu) for c in (cluster, batched))
    over_main = (main1 - main_b) / (tasks1 - tasks_b)
    over_workers = (work1 - work_b) / (tasks1 - tasks_b)
    work = work1 - tasks1 * over_workers  # worker CPU that is the function itself
    over = over_main + over_workers
    print(
        f"per-task cost outside the function (CPU, from the two Dask runs): this process "
        f"(client + LocalCluster scheduler) {over_main * 1000:.2f} ms + workers "
        f"{over_workers * 1000:.2f} ms = {over * 1000:.2f} ms; the function "
        f"{work / ITEMS * 1000:.2f} ms per item"
    )
    par = min(cores, 2)
    for label, tasks in (("1 item per task", tasks1), (f"{BATCH} items per task", tasks_b)):
        w = work / tasks
        best = t_med * par / (tasks * (w + over))
        print(
            f"  {label}: at most {par} x {w * 1000:.1f} / ({w * 1000:.1f} + {over * 1000:.2f})"
            f" ms of useful CPU -> best speedup vs the threads' {t_med:.2f} s: {best:.2f}"
        )
    print(f"speedup of batch({BATCH}) tasks vs threads: {t_med / b_med:.2f}")
    if os.getloadavg()[0] > cores:
        print(f"note: load average {os.getloadavg()[0]:.1f} on {cores} cores: noisy")
    return {"speedup_vs_thread": round(t_med / d_med, 2), "max_in_flight": max_in_flight}


if __name__ == "__main__":
    with warnings.catch_warnings(), dask.config.set(_CLUSTER_CONFIG):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,  # no dashboard server: nobody looks at it here
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

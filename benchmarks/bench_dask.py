"""A CPU-bound stage in the loop's thread pool vs. on a 2-worker Dask LocalCluster.

The function is pure Python (~5 ms per item, calibrated on this machine), so threads share
one GIL: two of them do about the work of one. Two Dask worker processes have a GIL each.
The headline runs the user's one-item-per-call pipeline; only the stage's executor changes::

    Stream(items).map(work, executor=ThreadPoolExecutor(2), concurrency=2)
    Stream(items).map(work, executor=DaskExecutor(client), concurrency=CONCURRENCY)

The DaskExecutor groups the calls into tasks of ~50 ms of work (sized from what it
measures). Beside it, three reference runs: the same pipeline without ``concurrency=``
(the stage follows the executor's ``preferred_concurrency``), with one task per call
(``DaskExecutor(client, batch_size=1)``), and batches made by hand
(``.batch(BATCH).map(work_many, executor=ex)``, the recipe before adaptive grouping).

Why one task per 5 ms item cannot reach 2x here: every Dask task costs CPU outside the
function - the client and the scheduler (both in this process with a LocalCluster) and the
worker's own bookkeeping. The script measures that cost from the one-task-per-call and the
hand-batched runs (same work, 10x fewer tasks: the CPU difference is per-task cost) and
prints the best speedup it allows on C cores when everything shares them:
C * w / (w + overhead) for w seconds of work per task.

Settings that trim Dask's background cost, all on the cluster (none on the function or the
items): the worker's statistical profiler off (it samples the running task every 10 ms),
work stealing off (two equal workers have nothing to balance), no dashboard server.

Repeats are interleaved (thread, dask, hand-batched, one per call, ...) so that noise from
the shared machine hits all alike; the figures are ratios of median times. The cluster's
start (a few seconds) is not timed: it is paid once per session, not per stage. The load
average is printed with the result: on a machine shared with other work the ratios drop.

Last line: ``{"speedup_vs_thread": s, "default_concurrency_speedup": a, "hand_batched_speedup":
h, "one_task_per_call_speedup": o, "items_per_task": k, "max_in_flight": m,
"default_concurrency": c, "load_avg": l}`` (``c``: the concurrency the stage without
``concurrency=`` ended at in its last run, read from the run's ``ConcurrencySnapshot``).

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

from streamnb import ConcurrencySnapshot, Stream
from streamnb.dask import DaskExecutor

ITEMS = 400
TARGET_MS = 5.0
REPEATS = 5
#: Dask settings that only trim background cost (the workers and LocalCluster inherit them)
_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,  # no 10 ms sampling of the running task
    "distributed.scheduler.work-stealing": False,  # two equal workers: nothing to balance
}
CONCURRENCY = 64  # >= 10 calls per task x 2 tasks per worker x 2 workers (the documented rule)
ONE_PER_CALL_CONCURRENCY = 8  # one task per call: 4 per worker keeps them busy
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
    """Loop count for ~TARGET_MS of CPU per call (median of 7 CPU timings: on a shared
    machine a wall-clock timing would include time spent waiting for a core)."""
    n = 50_000
    times = []
    for _ in range(7):
        t0 = time.thread_time()
        spin(n)
        times.append(time.thread_time() - t0)
    best = statistics.median(times)
    return max(1, int(n * TARGET_MS / 1000 / best))


async def run_threads(n: int, pool: ThreadPoolExecutor) -> float:
    t0 = time.perf_counter()
    out = await Stream([n] * ITEMS).map(spin, executor=pool, concurrency=2).collect()
    dt = time.perf_counter() - t0
    assert len(out) == ITEMS
    return dt


async def run_dask(n: int, ex: DaskExecutor, concurrency: int = CONCURRENCY) -> float:
    t0 = time.perf_counter()
    out = await Stream([n] * ITEMS).map(spin, executor=ex, concurrency=concurrency).collect()
    dt = time.perf_counter() - t0
    assert len(out) == ITEMS
    return dt


async def run_dask_default(n: int, ex: DaskExecutor, seen: list[ConcurrencySnapshot]) -> float:
    """No ``concurrency=``: the stage follows ``ex.preferred_concurrency``; its final
    snapshot (concurrency, grouping) is appended to ``seen``."""
    t0 = time.perf_counter()
    async with Stream([n] * ITEMS).map(spin, executor=ex, name="auto").open() as it:
        out = [y async for y in it]
    dt = time.perf_counter() - t0
    assert len(out) == ITEMS
    seen.append(it.stages["auto"])
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
    load0 = os.getloadavg()[0]
    print(f"work: spin({n}) ~ {per_item * 1000:.2f} ms CPU per item, {ITEMS} items")
    print(f"serial estimate: {per_item * ITEMS:.2f} s; load average {load0:.1f} on {cores} cores")
    threads, adaptive, default, batched, single = _Costs(), _Costs(), _Costs(), _Costs(), _Costs()
    seen: list[ConcurrencySnapshot] = []
    with ThreadPoolExecutor(2) as pool:
        async with (
            DaskExecutor(client, name="adaptive") as ex,
            DaskExecutor(client, name="default") as exa,
            DaskExecutor(client, name="by-hand") as exb,
            DaskExecutor(client, name="one-per-call", batch_size=1) as ex1,
        ):
            await run_dask(n, ex)  # warm-up: workers import and unpickle the function
            await run_dask_default(n, exa, seen)  # (its first run also grows from 2 x threads)
            print(f"default concurrency, first run: {seen[-1]}")
            await run_dask_batched(n, exb)
            await run_dask(n, ex1, ONE_PER_CALL_CONCURRENCY)
            await run_threads(n, pool)
            for r in range(REPEATS):
                t = await threads.run(client, run_threads(n, pool))
                d = await adaptive.run(client, run_dask(n, ex))
                a = await default.run(client, run_dask_default(n, exa, seen))
                b = await batched.run(client, run_dask_batched(n, exb))
                o = await single.run(client, run_dask(n, ex1, ONE_PER_CALL_CONCURRENCY))
                print(
                    f"repeat {r + 1}: threads {t:.3f} s | dask adaptive {d:.3f} s "
                    f"(ratio {t / d:.2f}) | default concurrency {a:.3f} s ({t / a:.2f}, "
                    f"at {seen[-1].concurrency}) | batch({BATCH}) by hand {b:.3f} s "
                    f"({t / b:.2f}) | one task per call {o:.3f} s ({t / o:.2f}) | "
                    f"load {os.getloadavg()[0]:.1f}"
                )
            info = ex.info()
            print(info)
            print(exa.info())
            print(exb.info())
            print(ex1.info())
            print(f"preferred concurrency of the adaptive executor: {ex.preferred_concurrency}")
            print(f"the default-concurrency stage's last snapshot: {seen[-1]}")
    t_med, d_med, a_med, b_med, o_med = (
        statistics.median(c.wall) for c in (threads, adaptive, default, batched, single)
    )
    print(
        f"median: threads {t_med:.3f} s ({ITEMS / t_med:.0f} items/s), "
        f"dask adaptive {d_med:.3f} s ({ITEMS / d_med:.0f} items/s), "
        f"default concurrency {a_med:.3f} s ({ITEMS / a_med:.0f} items/s), "
        f"batch({BATCH}) by hand {b_med:.3f} s ({ITEMS / b_med:.0f} items/s), "
        f"one task per call {o_med:.3f} s ({ITEMS / o_med:.0f} items/s)"
    )
    # The one-per-call and the hand-batched runs do the same work; they differ only in the
    # number of tasks (ITEMS vs ITEMS / BATCH). The difference of their CPU is therefore pure
    # per-task cost, without relying on a (noisy) single-call timing of the work.
    tasks1, tasks_b = ITEMS, ITEMS // BATCH
    main1, main_b = (statistics.median(c.main_cpu) for c in (single, batched))
    work1, work_b = (statistics.median(c.workers_cpu) for c in (single, batched))
    over_main = (main1 - main_b) / (tasks1 - tasks_b)
    over_workers = (work1 - work_b) / (tasks1 - tasks_b)
    work = work1 - tasks1 * over_workers  # worker CPU that is the function itself
    over = over_main + over_workers
    print(
        f"per-task cost outside the function (CPU, from the one-per-call and by-hand runs): "
        f"this process (client + LocalCluster scheduler) {over_main * 1000:.2f} ms + workers "
        f"{over_workers * 1000:.2f} ms = {over * 1000:.2f} ms; the function "
        f"{work / ITEMS * 1000:.2f} ms per item"
    )
    main_a, work_a = statistics.median(adaptive.main_cpu), statistics.median(adaptive.workers_cpu)
    print(
        f"CPU per item, adaptive grouping: this process {main_a / ITEMS * 1000:.2f} ms, workers "
        f"{work_a / ITEMS * 1000:.2f} ms (one task per call: {main1 / ITEMS * 1000:.2f} ms, "
        f"{work1 / ITEMS * 1000:.2f} ms)"
    )
    par = min(cores, 2)
    for label, tasks in (("1 item per task", tasks1), (f"{BATCH} items per task", tasks_b)):
        w = work / tasks
        best = t_med * par / (tasks * (w + over))
        print(
            f"  {label}: at most {par} x {w * 1000:.1f} / ({w * 1000:.1f} + {over * 1000:.2f})"
            f" ms of useful CPU -> best speedup vs the threads' {t_med:.2f} s: {best:.2f}"
        )
    load = os.getloadavg()[0]
    if load > cores:
        print(f"note: load average {load:.1f} on {cores} cores during the run: noisy, low")
    return {
        "speedup_vs_thread": round(t_med / d_med, 2),
        "default_concurrency_speedup": round(t_med / a_med, 2),
        "hand_batched_speedup": round(t_med / b_med, 2),
        "one_task_per_call_speedup": round(t_med / o_med, 2),
        "items_per_task": round(info.items_per_task or 0.0, 1),
        "max_in_flight": info.max_in_flight,
        "default_concurrency": seen[-1].concurrency,
        "load_avg": round((load0 + load) / 2, 1),
    }


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

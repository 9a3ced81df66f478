"""HTTP benchmark: streamnb's ``sse()`` against a hand-written httpx-sse loop, server elsewhere.

    python benchmarks/bench_http.py [--n 100000] [--repeats 3]

Starts ``python -m streamnb.demo --port 0 --http-port 0`` in a subprocess and, over loopback,
reads ``n`` Server-Sent Events (``/sse/feed``, payload_size=80: ~150 bytes per event with its
``id:`` and ``event:`` lines) two ways, both decoding every event's JSON data:

* raw: ``httpx.AsyncClient`` + ``httpx_sse.aconnect_sse`` + ``aiter_sse()`` and a counter;
* streamnb: ``sse(url, params=...).count()`` - the Stream, its call stats, Last-Event-ID
  bookkeeping and the decode policy included.

Runs are interleaved (raw, streamnb, raw, streamnb...) after a warm-up; each figure is the
median of ``repeats``. *Time* is the CPU time of this (client) process (``time.process_time``),
what the client itself costs; wall-clock medians are printed on the line before the JSON, but on
a shared machine they mostly measure the neighbours. The last line is one JSON object::

    {"sse_vs_raw": r}

r = streamnb time / raw time (target <= 1.15).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import structlog
from httpx_sse import aconnect_sse

from streamnb.http import sse

PAYLOAD = 80
PREFIX = "streamnb demo HTTP server listening on "


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamnb.demo", "--port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(5):
        line = proc.stdout.readline()
        if line.startswith(PREFIX):
            return proc, line[len(PREFIX) :].strip()
    proc.kill()
    raise RuntimeError("the demo server did not print its HTTP address")


async def raw_loop(url: str, n: int) -> int:
    params = {"count": n, "payload_size": PAYLOAD}
    count = 0
    loads = json.loads
    async with (
        httpx.AsyncClient(timeout=30.0) as client,
        aconnect_sse(client, "GET", url, params=params) as source,
    ):
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            loads(event.data)
            count += 1
    return count


async def streamnb_loop(url: str, n: int) -> int:
    return await sse(url, params={"count": n, "payload_size": PAYLOAD}).count()


async def _timed(fn: Callable[[str, int], Awaitable[int]], url: str, n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    got = await fn(url, n)
    if got != n:
        raise AssertionError(f"{fn.__name__}: {got} events, expected {n}")
    return time.process_time() - cpu, time.perf_counter() - wall


async def main(n: int, repeats: int) -> dict[str, float]:
    proc, base = _start_server()
    url = f"{base}/sse/feed"
    try:
        await raw_loop(url, min(n, 5000))  # warm-up: imports, connections, the server's paths
        await streamnb_loop(url, min(n, 5000))
        times: dict[str, list[tuple[float, float]]] = {"raw": [], "streamnb": []}
        for _ in range(repeats):
            times["raw"].append(await _timed(raw_loop, url, n))
            times["streamnb"].append(await _timed(streamnb_loop, url, n))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    cpu = {k: statistics.median(c for c, _ in v) for k, v in times.items()}
    wall = {k: statistics.median(w for _, w in v) for k, v in times.items()}
    for k in ("raw", "streamnb"):
        print(f"{k:>9}: {n} events, cpu {cpu[k]:.3f} s ({n / cpu[k]:,.0f}/s), wall {wall[k]:.3f} s")
    print(f"wall-clock ratio streamnb/raw: {wall['streamnb'] / wall['raw']:.3f}")
    return {"sse_vs_raw": round(cpu["streamnb"] / cpu["raw"], 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(json.dumps(asyncio.run(main(args.n, args.repeats))))

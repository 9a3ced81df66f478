"""Notebook layer benchmark: what the live dashboard costs, measured inside a real kernel.

The core benchmark pipeline ``map(x*2) -> filter(x%3==0) -> batch(100)`` over 1,000,000 ints
runs in an IPython kernel (started with jupyter_client, as Jupyter does) in three variants,
interleaved in every repeat, medians reported:

* ``plain``     - no monitoring, consumed with ``async with stream.open()``;
* ``monitored`` - every stage monitored, consumed the same way (no dashboard);
* ``dashboard`` - every stage monitored plus ``await run(stream)`` with the live widget
  dashboard at its default refresh rate (construction, display and final refresh included).

Times are taken inside the kernel around the run, so that messaging latency to this client is
not counted: the ratio uses the kernel process's CPU time (``time.process_time``, all its
threads, so the IOPub thread's work for the widget messages counts), which other tenants of a
shared machine do not inflate; wall-clock medians are printed too. Widget traffic is counted
from what this client
receives on iopub during the dashboard cells (``comm_open`` for the widgets built, ``comm_msg``
for their updates); the same run at a fifth of the items shows that it does not grow with the
item count.

    python benchmarks/bench_notebook.py [--items 1000000] [--repeats 7]

Last line: one JSON object ``{"dashboard_overhead": r, "widget_messages": m}``:
r = dashboard time / plain time - 1 (target <= 0.05), m = comm messages of one dashboard run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.manager import start_new_kernel

REPO = Path(__file__).resolve().parents[1]

SETUP = f"""
import sys, time, gc, json, logging
sys.path.insert(0, {str(REPO)!r})
import structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from streamnb import Stream
from streamnb.notebook import run, DEFAULT_REFRESH
from streamnb.notebook._env import display_mode
assert display_mode(True) == "widget", "the kernel should get the widget dashboard"

def double(x): return x * 2
def div3(x): return x % 3 == 0

def plain(n):
    return Stream(range(n)).map(double).filter(div3).batch(100)

def monitored(n):
    return (
        Stream(range(n)).monitor("source").map(double).monitor("map")
        .filter(div3).monitor("filter").batch(100).monitor("batch")
    )

async def consume(stream):
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    count = 0
    async with stream.open() as it:
        async for _ in it:
            count += 1
    return time.perf_counter() - t, time.process_time() - c, count

async def dashboard(stream):
    gc.collect()
    t, c = time.perf_counter(), time.process_time()
    summary = await run(stream, name="bench")
    return time.perf_counter() - t, time.process_time() - c, summary.items
"""


class KernelSession:
    """A kernel plus a client; ``run(code)`` executes and returns (stdout, iopub msg counts)."""

    def __init__(self) -> None:
        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(REPO))

    def run(self, code: str, timeout: float = 300) -> tuple[str, dict[str, int]]:
        msg_id = self.kc.execute(code)
        out: list[str] = []
        counts: dict[str, int] = {}
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=timeout)
            except Empty:
                raise SystemExit(
                    f"kernel did not answer within {timeout} s running:\n{code}"
                ) from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                tb = "\n".join(msg["content"]["traceback"])
                raise SystemExit(f"kernel error running:\n{code}\n{tb}")
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                return "".join(out), counts

    def value(self, code: str) -> tuple[Any, dict[str, int]]:
        text, counts = self.run(f"print('@@' + json.dumps({code}))")
        line = next(ln for ln in text.splitlines() if ln.startswith("@@"))
        return json.loads(line[2:]), counts

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    n = args.items

    session = KernelSession()
    try:
        session.run(SETUP)
        # warm-up: imports (ipywidgets, anywidget), code generation, caches
        session.value(f"await consume(plain({n}))")
        session.value(f"await consume(monitored({n}))")
        session.value(f"await dashboard(monitored({n}))")

        wall: dict[str, list[float]] = {"plain": [], "monitored": [], "dashboard": []}
        cpu: dict[str, list[float]] = {"plain": [], "monitored": [], "dashboard": []}
        messages: list[int] = []
        opens: list[int] = []
        for _ in range(args.repeats):
            outputs = []
            for variant, code in (
                ("plain", f"await consume(plain({n}))"),
                ("monitored", f"await consume(monitored({n}))"),
                ("dashboard", f"await dashboard(monitored({n}))"),
            ):
                (w, c, count), counts = session.value(code)
                wall[variant].append(w)
                cpu[variant].append(c)
                outputs.append(count)
            messages.append(counts.get("comm_msg", 0))
            opens.append(counts.get("comm_open", 0))
            if len(set(outputs)) != 1:
                raise SystemExit(f"variants disagree on the output: {outputs}")

        small_msgs = []
        for _ in range(3):
            _, counts = session.value(f"await dashboard(monitored({n // 5}))")
            small_msgs.append(counts.get("comm_msg", 0))
        refresh, _ = session.value("DEFAULT_REFRESH")
    finally:
        session.close()

    med = {k: statistics.median(v) for k, v in cpu.items()}
    med_wall = {k: statistics.median(v) for k, v in wall.items()}
    overhead = med["dashboard"] / med["plain"] - 1
    monitoring = med["monitored"] / med["plain"] - 1
    dashboard_only = med["dashboard"] / med["monitored"] - 1
    wall_overhead = med_wall["dashboard"] / med_wall["plain"] - 1
    m = int(statistics.median(messages))
    print(
        f"kernel, {n:,} items, {args.repeats} interleaved repeats, medians (cpus={os.cpu_count()})"
    )
    print("  variant      kernel CPU   wall")
    for k in med:
        print(f"  {k:<10} {med[k] * 1e3:8.1f} ms {med_wall[k] * 1e3:8.1f} ms")
    print(f"  monitoring alone (CPU):         {monitoring:+.3f}")
    print(f"  dashboard over monitored (CPU): {dashboard_only:+.3f}")
    print(f"  dashboard over plain (CPU):     {overhead:+.3f}  (target <= 0.05)")
    print(f"  dashboard over plain (wall):    {wall_overhead:+.3f}  (noisy on a shared machine)")
    print(
        f"  widget traffic per dashboard run: {m} comm_msg (runs: {messages}), "
        f"{int(statistics.median(opens))} comm_open; at {n // 5:,} items: {small_msgs} comm_msg; "
        f"refresh {refresh} Hz"
    )
    sys.stdout.flush()
    print(json.dumps({"dashboard_overhead": round(overhead, 4), "widget_messages": m}))


if __name__ == "__main__":
    main()

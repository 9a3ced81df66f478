"""Soak test: a long run must not grow in memory.

10,000,000 items flow through ``map -> buffer -> concurrent map -> window(last=1000) ->
monitor`` while a live dashboard *model* refreshes at 4 Hz: every refresh builds the run's
frame (monitor snapshots, window tail, concurrent stages) and renders everything the
dashboard widget and the text progress line show, through the same pure functions they use
(no kernel, no widgets). The process's resident memory (``VmRSS`` in ``/proc/self/status``)
is sampled at every refresh.

    python benchmarks/soak.py [--items 10000000] [--refresh 4]

Last line: one JSON object ``{"rss_growth_mb": x, "items_per_s": y}``: x is the RSS at the
end minus the RSS once the first million items (a tenth of the run, for a small ``--items``)
were consumed - the warm-up that fills the window, the buffer and the caches is not growth.
Target: x <= 5.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

from streamnb import Iteration, Stream
from streamnb.notebook._format import (
    RunFrame,
    ThroughputHistory,
    buffer_gauges,
    buffer_gauges_html,
    concurrent_html,
    concurrent_stages,
    progress_for,
    stage_rows,
    stage_table_html,
    window_table_html,
)
from streamnb.notebook._text import text_line

WARMUP_ITEMS = 1_000_000


def rss_mb() -> float:
    """Resident set size of this process in MiB, from /proc/self/status."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS line in /proc/self/status")


def stamp(x: int) -> dict[str, Any]:
    return {"seq": x, "value": x * 0.5, "ts": time.time()}


async def enrich(ev: dict[str, Any]) -> dict[str, Any]:
    if ev["seq"] % 512 == 0:
        await asyncio.sleep(0)  # a real suspension now and then: the workers interleave
    ev["double"] = ev["value"] * 2
    return ev


def pipeline(n: int) -> Stream[dict[str, Any]]:
    return (
        Stream(range(n))
        .map(stamp)
        .buffer(256, name="ingest")
        .map(enrich, concurrency=8)
        .window(last=1000, name="tail")
        .monitor("soak", timestamp=lambda ev: ev["ts"], total=n)
    )


class DashboardModel:
    """What the dashboard and the text line compute at every refresh, minus the widgets."""

    def __init__(self, it: Iteration[Any], total: int, refresh: float) -> None:
        self.it = it
        self.total = total
        self.history = ThroughputHistory(maxlen=max(8, int(30 * refresh) + 2))
        self.t0 = time.monotonic()
        self.frames = 0
        self.chars = 0  # what was rendered, so that nothing is optimised away

    def refresh(self, items: int, status: str = "running") -> None:
        it = self.it
        now = time.monotonic()
        frame = RunFrame(
            name="soak",
            status=status,  # type: ignore[arg-type]
            items=items,
            elapsed=now - self.t0,
            total=self.total,
            error=None,
            stages=it.metrics(),
            taken_at=now,
            window_tail=tuple(it.windows["tail"].tail(5)),
            concurrent=concurrent_stages(it.stages),
        )
        view = progress_for(frame)
        self.history.add(now, {name: snap.items for name, snap in frame.stages.items()})
        parts = [
            stage_table_html(stage_rows(frame.stages)),
            buffer_gauges_html(buffer_gauges(frame.stages)),
            concurrent_html(frame.concurrent),
            window_table_html(frame.window_tail),
            view.text,
            text_line(frame),
        ]
        self.chars += sum(len(p) for p in parts) + len(self.history.series())
        self.frames += 1


async def soak(n: int, refresh: float) -> dict[str, float]:
    warmup = min(WARMUP_ITEMS, max(1, n // 10))
    items = 0
    samples: list[tuple[int, float]] = []
    baseline: float | None = None
    async with pipeline(n).open() as it:
        model = DashboardModel(it, n, refresh)
        period = 1.0 / refresh

        async def tick() -> None:
            while True:
                await asyncio.sleep(period)
                model.refresh(items)
                samples.append((items, rss_mb()))

        ticker = asyncio.get_running_loop().create_task(tick())
        t0 = time.perf_counter()
        try:
            async for _ in it:
                items += 1
                if items == warmup:
                    gc.collect()
                    baseline = rss_mb()
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        elapsed = time.perf_counter() - t0
        model.refresh(items, status="done")
        snap = it.metrics()["soak"]
    gc.collect()
    end = rss_mb()
    assert items == n == snap.items, f"delivered {items}, monitored {snap.items}, expected {n}"
    assert baseline is not None
    peak = max((r for _, r in samples), default=end)
    print(
        f"{n:,} items in {elapsed:.1f} s, {model.frames} dashboard frames; RSS after "
        f"{warmup:,} items {baseline:.1f} MiB, peak {peak:.1f} MiB, end {end:.1f} MiB",
        flush=True,
    )
    return {"rss_growth_mb": round(end - baseline, 2), "items_per_s": round(n / elapsed)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000_000)
    ap.add_argument("--refresh", type=float, default=4.0, help="dashboard refreshes per second")
    args = ap.parse_args()
    if args.items < 1 or args.refresh <= 0:
        ap.error("--items must be >= 1 and --refresh > 0")
    result = asyncio.run(soak(args.items, args.refresh))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The live terminal demo: the embedded server, a faulty feed, exactly-once resume, an agent.

``python -m streamnb.demo --demo`` runs it; the notebook/README can call :func:`run_demo`.
It starts a :class:`~streamnb.demo.DemoServer` on an ephemeral port and, against it:

1. streams ``events`` events from ``EventFeed/Subscribe`` while the server drops the connection
   ``drops`` times; the client resumes after the last delivered event, and a live line shows
   rate, latency and reconnects - at the end it checks every event arrived exactly once;
2. sends numbers to ``Aggregator/Aggregate`` (client streaming) and prints the summary;
3. chats with ``Agent/Chat`` (bidirectional), printing tokens and tool calls as they arrive.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from streamnb import RetryPolicy
from streamnb.grpc import GrpcClient, call_snapshot
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

from .server import DemoServer

__all__ = ["run_demo"]

_FEED = "/streamnb.demo.v1.EventFeed/Subscribe"


async def run_demo(
    *,
    events: int = 50_000,
    drops: int = 5,
    rate: float = 0.0,
    prompts: tuple[str, ...] = ("hello streamnb", "what is the weather in Lisbon"),
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Run the three parts of the demo; return what was measured (and print it to ``out``).

    Raises AssertionError if the resumed feed did not deliver 0..events-1 exactly once.
    """
    out = out or sys.stdout
    live = out.isatty()
    drop_after = math.ceil(events / (drops + 1)) if drops else 0

    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, count=events, rate=rate, drop_after=drop_after)

    async with DemoServer() as srv, GrpcClient(srv.address, timeout=600) as client:
        print(f"demo server on {srv.address}", file=out)
        print(
            f"1) server streaming: {events:,} events, the server drops the connection {drops} "
            "times; the client resumes after the last delivered event",
            file=out,
        )
        feed = client.server_stream(
            _FEED,
            request(0),
            codec=pb.Event,
            resume=lambda ev: request(ev.seq + 1),
            retry=RetryPolicy(max_attempts=5, initial=0.02, max_delay=0.5),
        )
        monitored = feed.monitor(
            "events", timestamp=lambda ev: ev.timestamp, size=lambda ev: ev.ByteSize(), total=events
        )
        expected = 0
        duplicates_or_gaps = 0
        last_print = 0.0
        async with monitored.open() as it:
            async for ev in it:
                if ev.seq != expected:
                    duplicates_or_gaps += 1
                expected = ev.seq + 1
                now = time.monotonic()
                if now - last_print >= 0.25:
                    last_print = now
                    call = call_snapshot(it, feed.method)
                    _progress(out, it.metrics()["events"], call.reconnects, live)
            snap = it.metrics()["events"]
            reconnects = call_snapshot(it, feed.method).reconnects
        _progress(out, snap, reconnects, live)
        if live:
            print(file=out)
        ok = expected == events and duplicates_or_gaps == 0 and snap.items == events
        print(
            f"   delivered {snap.items:,} events, reconnects {reconnects}, "
            f"exactly once and in order: {'yes' if ok else 'NO'}",
            file=out,
        )
        assert ok, (
            f"resumed feed broke exactly-once: {snap.items} items, {duplicates_or_gaps} jumps"
        )

        print("2) client streaming: Aggregator/Aggregate over 1..100", file=out)
        summary = await client.client_stream(
            "/streamnb.demo.v1.Aggregator/Aggregate",
            (pb.Number(value=v) for v in range(1, 101)),
            codec=pb.Summary,
        )
        print(
            f"   count={summary.count} sum={summary.sum:g} mean={summary.mean:g} "
            f"min={summary.min:g} max={summary.max:g}",
            file=out,
        )

        print("3) bidirectional: Agent/Chat", file=out)
        answers = client.bidi(
            "/streamnb.demo.v1.Agent/Chat",
            [pb.Prompt(id=i, text=t) for i, t in enumerate(prompts)],
            codec=pb.AgentEvent,
        )
        tokens = 0
        line_start = True
        async for ev in answers:
            kind = ev.WhichOneof("event")
            if kind == "token":
                tokens += 1
                print(("   " if line_start else "") + ev.token.text, end="", file=out, flush=True)
                line_start = False
                continue
            if not line_start:
                print(file=out)
            if kind == "tool_call":
                print(f"   [tool call {ev.tool_call.name}({ev.tool_call.arguments})]", file=out)
            else:
                print(f"   <done: {ev.done.tokens} tokens>", file=out)
            line_start = True
        return {
            "events": snap.items,
            "rate": snap.rate,
            "latency": snap.latency,
            "reconnects": reconnects,
            "exactly_once": ok,
            "aggregate": {"count": summary.count, "sum": summary.sum},
            "tokens": tokens,
        }


def _progress(out: TextIO, snap: Any, reconnects: int, live: bool) -> None:
    latency = f"{snap.latency * 1000:.1f} ms" if snap.latency is not None else "-"
    pct = f"{100 * snap.items / snap.total:5.1f}%" if snap.total else ""
    line = (
        f"   {pct} {snap.items:>9,} events  {snap.rate:>9,.0f}/s  latency {latency}  "
        f"reconnects {reconnects}"
    )
    if live:
        print("\r" + line, end="", file=out, flush=True)
    else:
        print(line, file=out)

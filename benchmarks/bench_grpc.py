"""gRPC benchmark: streamnb's adapter against raw grpc.aio, server in another process.

    python benchmarks/bench_grpc.py [--n 100000] [--repeats 5]

Starts ``python -m streamnb.demo --port 0`` in a subprocess and, over loopback, measures:

* server streaming of ``n`` ~100-byte ``Event`` messages (``EventFeed/Subscribe``,
  payload_size=80): raw ``grpc.aio`` (``Event.FromString`` as its deserializer) vs
  ``GrpcClient.server_stream(..., codec=Event)`` consumed with ``Stream.count()``;
* the same ``n`` events batched 100 per message (``SubscribeBatched``) through streamnb,
  flattened back to events with ``flat_map`` (and raw, for reference);
* bidirectional echo (``EventFeed/Echo``) of ``n`` events: raw (a writer task + a reader)
  vs ``GrpcClient.bidi(...)``;
* client streaming of ``n`` ``Number`` messages to ``Aggregator/Aggregate``: raw (an async
  generator of requests passed to the multi-callable, ``Number.SerializeToString`` as its
  serializer) vs ``GrpcClient.client_stream(..., codec=Summary)`` from the same list.

Runs are interleaved (raw, streamnb, raw, streamnb...) after a warm-up, and each figure is
the median of ``repeats``. The last line is one JSON object::

    {"server_stream_vs_raw": r1, "batched_speedup": r2, "bidi_vs_raw": r3,
     "client_stream_vs_raw": r4}

r1, r3, r4 = streamnb time / raw time (target <= 1.1); r2 = streamnb's time per item unbatched /
time per item batched (target >= 5).

*Time* in the JSON is the CPU time of the client process (``time.process_time``: every thread,
grpc's poller included) - what the adapter itself costs. Wall-clock medians and ratios are
printed too, on the line before; on a shared machine they mostly measure the neighbours (the
same case varies 2x between repeats on two loaded cores), so they are not the headline.
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
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import structlog

from streamnb.grpc import GrpcClient
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

FEED = "/streamnb.demo.v1.EventFeed/"
AGGREGATOR = "/streamnb.demo.v1.Aggregator/Aggregate"
PAYLOAD = 80  # -> ~100 bytes per serialised Event


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamnb.demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("streamnb demo server listening on "):
            return proc, line.rsplit(" ", 1)[1].strip()
    proc.kill()
    raise RuntimeError("the demo server did not start")


async def raw_server_stream(channel: grpc.aio.Channel, n: int) -> int:
    mc = channel.unary_stream(
        FEED + "Subscribe",
        request_serializer=pb.SubscribeRequest.SerializeToString,
        response_deserializer=pb.Event.FromString,
    )
    count = 0
    async for _ in mc(pb.SubscribeRequest(count=n, payload_size=PAYLOAD)):
        count += 1
    return count


async def nb_server_stream(client: GrpcClient, n: int) -> int:
    req = pb.SubscribeRequest(count=n, payload_size=PAYLOAD)
    return await client.server_stream(FEED + "Subscribe", req, codec=pb.Event).count()


async def raw_batched(channel: grpc.aio.Channel, n: int) -> int:
    mc = channel.unary_stream(
        FEED + "SubscribeBatched",
        request_serializer=pb.SubscribeRequest.SerializeToString,
        response_deserializer=pb.EventBatch.FromString,
    )
    count = 0
    async for batch in mc(pb.SubscribeRequest(count=n, payload_size=PAYLOAD, batch_size=100)):
        for _ in batch.events:
            count += 1
    return count


async def nb_batched(client: GrpcClient, n: int) -> int:
    req = pb.SubscribeRequest(count=n, payload_size=PAYLOAD, batch_size=100)
    stream = client.server_stream(FEED + "SubscribeBatched", req, codec=pb.EventBatch)
    # iter(): protobuf's repeated-field container is a sequence without __iter__
    return await stream.flat_map(lambda batch: iter(batch.events)).count()


def _events(n: int) -> list[pb.Event]:
    return [pb.Event(seq=i, kind="tick", payload="x" * PAYLOAD) for i in range(n)]


async def raw_bidi(channel: grpc.aio.Channel, events: list[pb.Event]) -> int:
    mc = channel.stream_stream(
        FEED + "Echo",
        request_serializer=pb.Event.SerializeToString,
        response_deserializer=pb.Event.FromString,
    )
    call = mc()

    async def send() -> None:
        for ev in events:
            await call.write(ev)
        await call.done_writing()

    sender = asyncio.create_task(send())
    count = 0
    async for _ in call:
        count += 1
    await sender
    return count


async def nb_bidi(client: GrpcClient, events: list[pb.Event]) -> int:
    return await client.bidi(FEED + "Echo", events, codec=pb.Event).count()


def _numbers(n: int) -> list[pb.Number]:
    return [pb.Number(value=float(i % 1000)) for i in range(n)]


async def raw_client_stream(channel: grpc.aio.Channel, numbers: list[pb.Number]) -> int:
    mc = channel.stream_unary(
        AGGREGATOR,
        request_serializer=pb.Number.SerializeToString,
        response_deserializer=pb.Summary.FromString,
    )

    async def requests() -> AsyncIterator[pb.Number]:
        for number in numbers:
            yield number

    summary = await mc(requests())
    return int(summary.count)


async def nb_client_stream(client: GrpcClient, numbers: list[pb.Number]) -> int:
    summary = await client.client_stream(AGGREGATOR, numbers, codec=pb.Summary)
    return int(summary.count)


async def _timed(fn: Callable[[], Awaitable[int]], expected: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) of one run."""
    t0, c0 = time.perf_counter(), time.process_time()
    got = await fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if got != expected:
        raise AssertionError(f"expected {expected} items, got {got}")
    return wall, cpu


async def bench(address: str, n: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, cpu) seconds per case."""
    events = _events(n)
    numbers = _numbers(n)
    async with (
        grpc.aio.insecure_channel(address) as channel,
        GrpcClient(address) as client,
    ):
        await client.wait_ready()
        cases: dict[str, Callable[[], Awaitable[int]]] = {
            "raw_stream": lambda: raw_server_stream(channel, n),
            "nb_stream": lambda: nb_server_stream(client, n),
            "raw_batched": lambda: raw_batched(channel, n),
            "nb_batched": lambda: nb_batched(client, n),
            "raw_bidi": lambda: raw_bidi(channel, events),
            "nb_bidi": lambda: nb_bidi(client, events),
            "raw_client": lambda: raw_client_stream(channel, numbers),
            "nb_client": lambda: nb_client_stream(client, numbers),
        }
        small: dict[str, Callable[[], Awaitable[int]]] = {
            "raw_stream": lambda: raw_server_stream(channel, 2000),
            "nb_stream": lambda: nb_server_stream(client, 2000),
            "raw_bidi": lambda: raw_bidi(channel, events[:2000]),
            "nb_bidi": lambda: nb_bidi(client, events[:2000]),
            "raw_client": lambda: raw_client_stream(channel, numbers[:2000]),
            "nb_client": lambda: nb_client_stream(client, numbers[:2000]),
        }
        for fn in small.values():  # warm-up: connections, code paths, caches
            await _timed(fn, 2000)
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for r in range(repeats):
            for name, fn in cases.items():
                wall, cpu = await _timed(fn, n)
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(
                    f"  repeat {r + 1}/{repeats} {name:12s} wall {wall:7.3f} s  "
                    f"cpu {cpu:7.3f} s  {n / cpu:>11,.0f} items/cpu-s"
                )
        return {
            name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in cases
        }


def _ratios(med: dict[str, float]) -> dict[str, float]:
    return {
        "server_stream_vs_raw": round(med["nb_stream"] / med["raw_stream"], 3),
        "batched_speedup": round(med["nb_stream"] / med["nb_batched"], 3),
        "bidi_vs_raw": round(med["nb_bidi"] / med["raw_bidi"], 3),
        "client_stream_vs_raw": round(med["nb_client"] / med["raw_client"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="messages per run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per case")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    proc, address = _start_server()
    try:
        print(f"demo server (pid {proc.pid}) on {address}; n={args.n:,}, repeats={args.repeats}")
        med = asyncio.run(bench(address, args.n, args.repeats))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    n = args.n
    print("medians (wall s, client cpu s, items per cpu-second):")
    for name, (wall, cpu) in med.items():
        print(f"  {name:12s} wall {wall:7.3f}  cpu {cpu:7.3f}  {n / cpu:>11,.0f} items/cpu-s")
    print(
        "wall-clock ratios (noisy on shared machines):",
        json.dumps(_ratios({k: v[0] for k, v in med.items()})),
    )
    print(json.dumps(_ratios({k: v[1] for k, v in med.items()})))


if __name__ == "__main__":
    main()

"""A real process crash: the demo server in a subprocess, SIGKILLed mid-stream.

* Killed twice and restarted on the same port, a resumed ``server_stream`` delivers every
  event exactly once, in order.
* A server that stays down ends the resumed stream with ``RetryExhaustedError`` within the
  budget the default retry policy documents (8 attempts without progress, backoff 50 ms
  doubling to 2 s with jitter in [0.5, 1]: 2.6 to 5.2 s of sleeps in all).

Every test is bounded by ``asyncio.timeout`` and kills its server processes in ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import grpc
import pytest

from streamnb import RetryExhaustedError, RetryPolicy
from streamnb.grpc import GrpcClient, RpcError
from streamnb.grpc._generated import streamnb_demo_pb2 as pb

SUBSCRIBE = "/streamnb.demo.v1.EventFeed/Subscribe"
LISTENING = "streamnb demo server listening on "
# grpc's own reconnect backoff (1 s, growing) would dominate a test; keep it short
CHANNEL = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class ServerProcess:
    """``python -m streamnb.demo --port PORT`` in a subprocess (PORT 0: any free port)."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.starts = 0

    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamnb.demo",
            "--port",
            str(self.port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=os.environ.copy(),  # PYTHONPATH: the server runs this checkout's code
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await self.proc.stdout.readline()).decode()
        assert line.startswith(LISTENING), f"unexpected first line {line!r}"
        address = line[len(LISTENING) :].strip()
        port = int(address.rpartition(":")[2])
        assert self.port in (0, port), f"restarted on {port}, not on {self.port}"
        self.port = port
        self.starts += 1
        return address

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, the connection just dies."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def reap(self) -> None:
        if self.proc is not None:
            self.kill()
            await self.proc.wait()


async def test_two_sigkills_and_restarts_on_the_same_port_lose_and_repeat_nothing() -> None:
    server = ServerProcess()
    restarts: list[asyncio.Task[str]] = []
    total = 3000
    kill_at = (700, 1900)

    def request(start: int) -> pb.SubscribeRequest:
        return pb.SubscribeRequest(start=start, count=total, rate=1500)

    async def restart_later() -> str:
        await server.reap()
        await asyncio.sleep(0.3)  # the feed keeps reconnecting (and failing) meanwhile
        return await server.start()

    try:
        async with asyncio.timeout(90):
            address = await server.start()
            patient = RetryPolicy(max_attempts=60, initial=0.05, max_delay=0.5)
            async with GrpcClient(address, timeout=80, options=CHANNEL) as client:
                feed = client.server_stream(
                    SUBSCRIBE,
                    request(0),
                    codec=pb.Event,
                    resume=lambda ev: request(ev.seq + 1),
                    retry=patient,
                )
                seqs: list[int] = []
                async with feed.open() as it:
                    async for ev in it:
                        seqs.append(ev.seq)
                        if ev.seq in kill_at:
                            server.kill()  # mid-stream: the server is still sending
                            restarts.append(asyncio.create_task(restart_later()))
                    call = it.snapshots("call")[feed.method]
                for task in restarts:
                    await task
            assert seqs == list(range(total))  # every event exactly once, in order
            assert server.starts == 3
            assert call.reconnects >= 2 and call.code == "OK"  # type: ignore[union-attr]
    finally:
        for task in restarts:
            task.cancel()
        await asyncio.gather(*restarts, return_exceptions=True)
        await server.reap()


async def test_a_server_that_stays_down_exhausts_the_retries_within_the_budget() -> None:
    server = ServerProcess()
    try:
        async with asyncio.timeout(60):
            address = await server.start()
            async with GrpcClient(address, options=CHANNEL) as client:
                feed = client.server_stream(
                    SUBSCRIBE,
                    pb.SubscribeRequest(rate=1000),  # endless
                    codec=pb.Event,
                    resume=lambda ev: pb.SubscribeRequest(start=ev.seq + 1, rate=1000),
                )  # the default retry policy
                seqs: list[int] = []
                t_kill = 0.0
                with pytest.raises(RetryExhaustedError) as info:
                    async for ev in feed:
                        seqs.append(ev.seq)
                        if ev.seq == 200:
                            server.kill()
                            await server.reap()
                            t_kill = time.monotonic()
                gave_up_after = time.monotonic() - t_kill
            assert seqs[:201] == list(range(201)) and seqs == list(range(len(seqs)))
            cause = info.value.__cause__
            assert isinstance(cause, RpcError) and cause.code == grpc.StatusCode.UNAVAILABLE
            assert "8 times in a row" in str(info.value)
            # 7 sleeps between 8 attempts: 0.05 + 0.1 + ... + 1.6 + 2.0 = 5.15 s at most, half
            # that at least (jitter); the attempts themselves fail fast (connection refused)
            assert 0.5 * 5.15 - 0.1 <= gave_up_after <= 5.15 + 1.5, gave_up_after
            assert client.history[-1].code == "RetryExhaustedError"
    finally:
        await server.reap()

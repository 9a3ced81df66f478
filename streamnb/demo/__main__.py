"""``python -m streamnb.demo``: serve the demo services, or run the live terminal demo.

::

    python -m streamnb.demo                 # serve on 127.0.0.1:50051 until Ctrl-C
    python -m streamnb.demo --port 0        # any free port (printed on the first line)
    python -m streamnb.demo --http-port 0   # the HTTP side on any free port (second line)
    python -m streamnb.demo --demo          # the live terminal demo, then exit

The first line printed when serving is ``streamnb demo server listening on HOST:PORT``; the
second (unless ``--no-http``) ``streamnb demo HTTP server listening on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from .server import SERVICE_NAMES, DemoServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m streamnb.demo", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (0 = any free port)")
    p.add_argument("--http-port", type=int, default=0, help="HTTP port (default 0: any free)")
    p.add_argument("--no-http", action="store_true", help="serve gRPC only")
    p.add_argument("--token-delay", type=float, default=0.0, help="seconds between chat events")
    p.add_argument("--demo", action="store_true", help="run the live terminal demo and exit")
    p.add_argument("--events", type=int, default=50_000, help="events in the demo feed")
    p.add_argument("--drops", type=int, default=5, help="connection drops in the demo feed")
    p.add_argument("--rate", type=float, default=0.0, help="demo feed rate (events/s, 0 = max)")
    return p


async def main(argv: list[str] | None = None) -> int:
    """Entry point (also callable from a notebook: ``await main(["--demo"])``)."""
    args = _parser().parse_args(argv)
    if args.demo:
        from .live import run_demo

        await run_demo(events=args.events, drops=args.drops, rate=args.rate)
        return 0
    http = not args.no_http
    async with DemoServer(
        args.host, args.port, token_delay=args.token_delay, http=http, http_port=args.http_port
    ) as srv:
        print(f"streamnb demo server listening on {srv.address}", flush=True)
        if http:
            print(f"streamnb demo HTTP server listening on {srv.http_url}", flush=True)
        print(f"services: {', '.join(SERVICE_NAMES)}, streamnb.demo.v1.Json", flush=True)
        print("reflection and grpc.health.v1 enabled; Ctrl-C to stop", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
    print("stopped", flush=True)
    return 0


def _cli_logging() -> None:
    """As a program, keep stdout for the address/demo output: logs go to stderr (INFO+)."""
    import logging

    import structlog

    if not structlog.is_configured():
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        )


if __name__ == "__main__":
    _cli_logging()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))

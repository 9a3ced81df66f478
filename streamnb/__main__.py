"""``python -m streamnb``: the live demo - the embedded demo gRPC server streams events
through a resilient, buffered, monitored pipeline while a progress line shows it live.

Extra flags are those of ``python -m streamnb.demo --demo`` (``--events``, ``--drops``,
``--rate``). Needs the ``grpc`` extra: ``pip install "streamnb[grpc]"``.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import structlog


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # an application (unlike the library) may configure logging: keep the live line readable
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        from .demo.__main__ import main as demo_main
    except ImportError as exc:  # grpc missing: say what to install
        print(
            f"python -m streamnb needs the grpc extra ({exc}): pip install 'streamnb[grpc]'",
            file=sys.stderr,
        )
        return 2
    try:
        return asyncio.run(demo_main(["--demo", *args]))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

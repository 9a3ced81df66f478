"""Functions the Dask workers run in the tests.

They live in their own small module (on the workers' ``sys.path``, which spawned worker
processes inherit) so that workers import them by reference and tracebacks name this file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def square_late(x: int) -> int:
    """x*x, later for smaller x: finish order is (roughly) the reverse of input order."""
    time.sleep(max(0, 10 - x) * 0.005)
    return x * x


def busy(x: int) -> int:
    time.sleep(0.02)
    return x + 1


def nap(x: int) -> int:
    time.sleep(1.0)
    return x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item {x} is bad (worker pid {os.getpid()})")
    return x


def flaky(x: int, marker_dir: str) -> int:
    """Fails with a ConnectionError the first time it sees ``x``, then succeeds."""
    marker = Path(marker_dir) / str(x)
    if not marker.exists():
        marker.touch()
        raise ConnectionError(f"first attempt at {x}")
    return x


def use_model(x: int, *, model: bytes) -> tuple[int, int, int]:
    """(worker pid, id of the model object in that worker, its size)."""
    return os.getpid(), id(model), len(model)


def no_model(x: int) -> Any:
    return x


def quick(x: int) -> int:
    """x*x after ~2 ms: a call far shorter than a Dask task's overhead."""
    time.sleep(0.002)
    return x * x


def record(x: int, marker_dir: str) -> int:
    """Appends a line to ``marker_dir/x`` per call (so a test can count the calls of x)."""
    with open(Path(marker_dir) / str(x), "a") as f:
        f.write("call\n")
    return x


def fail_once_on_three(x: int, marker_dir: str) -> int:
    """Like :func:`record`, and the first call of 3 raises a ConnectionError."""
    record(x, marker_dir)
    if x == 3 and (Path(marker_dir) / "3").read_text().count("call") == 1:
        raise ConnectionError("first attempt at 3")
    return x


def cancelled_on_two(x: int) -> int:
    """Raises asyncio.CancelledError (a BaseException) for 2: user code, not a cancellation."""
    import asyncio

    if x == 2:
        raise asyncio.CancelledError("user code raised it")
    return x


def ident(x: Any) -> Any:
    return x


def stop_on_two(x: int) -> int:
    """Raises StopIteration for 2 (which an asyncio future cannot carry as it is)."""
    if x == 2:
        raise StopIteration("no more for 2")
    return x

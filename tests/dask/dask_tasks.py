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

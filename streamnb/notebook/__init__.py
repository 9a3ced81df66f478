"""The notebook layer: run Streams live on the kernel's loop, with a dashboard or a text line.

``await run(stream)`` (foreground), ``start(stream)`` (background, returns a :class:`Run`),
``run_sync(stream)`` (scripts, non-async cells). ``Stream.run/start/run_sync`` call these.
Importing this package does not import ipywidgets, matplotlib or pandas: the dashboard is built
only when a run is displayed in a notebook frontend.

Example::

    from streamnb.notebook import start
    handle = start(Stream(source).monitor("in"), name="ingest")
"""

from __future__ import annotations

from ._env import in_notebook
from .runner import (
    DEFAULT_REFRESH,
    NoWindowError,
    Run,
    RunSummary,
    active_runs,
    run,
    run_sync,
    start,
)

__all__ = [
    "DEFAULT_REFRESH",
    "NoWindowError",
    "Run",
    "RunSummary",
    "active_runs",
    "in_notebook",
    "run",
    "run_sync",
    "start",
]

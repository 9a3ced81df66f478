"""The notebook layer: run Streams live on the kernel's loop, with a dashboard or a text line.

``await run(stream)`` (foreground - the primary entry point, like ``tqdm(iterable)``),
``start(stream)`` (background, returns a :class:`Run`), ``run_sync(stream)`` (scripts,
non-async cells). All three take the same keywords, ``streamnb.stream.RunOptions``
(``name``, ``total``, ``refresh``, ``display``, ``window``); ``Stream.run/start/run_sync``
are shorthands for them.
Importing this package does not import ipywidgets, matplotlib or pandas: the dashboard is built
only when a run is displayed in a notebook frontend.

Example::

    from streamnb.notebook import run, start
    summary = await run(Stream(source).monitor("in"), total=10_000)
    handle = start(Stream(source).monitor("in"), name="ingest")
"""

from __future__ import annotations

from ._env import in_notebook
from .runner import (
    DEFAULT_REFRESH,
    RUN_OPTION_NAMES,
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
    "RUN_OPTION_NAMES",
    "NoWindowError",
    "Run",
    "RunSummary",
    "active_runs",
    "in_notebook",
    "run",
    "run_sync",
    "start",
]

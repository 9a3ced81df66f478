"""The package surface: a light import, a complete ``__all__``, typing marker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import streamnb

HEAVY = ["grpc", "ipywidgets", "matplotlib", "pandas", "distributed", "dask", "numpy"]
HEAVY += ["httpx", "httpx_sse", "websockets", "aiohttp"]


def test_import_streamnb_does_not_import_optional_dependencies() -> None:
    code = (
        "import sys, json, streamnb\n"
        "s = streamnb.Stream(range(3)).map(lambda x: x).buffer(2).monitor('m').batch(2)\n"
        "import asyncio\n"
        "assert asyncio.run(s.collect()) == [[0, 1], [2]]\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_all_names_resolve_and_are_unique() -> None:
    names = streamnb.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(streamnb, name) is not None, name
    for required in (
        "Stream",
        "RetryPolicy",
        "CircuitBreaker",
        "DeadLetter",
        "Meter",
        "MetricsSnapshot",
        "StreamnbError",
    ):
        assert required in names


def test_errors_derive_from_streamnb_error() -> None:
    from streamnb import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, streamnb.StreamnbError)
        assert cls.__doc__


def test_py_typed_marker_exists() -> None:
    assert (Path(streamnb.__file__).parent / "py.typed").is_file()

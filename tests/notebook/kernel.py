"""Drive a real IPython kernel through nbclient, cell by cell (used by the kernel tests).

Values are read back from the kernel by printing JSON in a later cell: nbclient's stored
widget state does not see updates made by background tasks after their cell ended.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]

PRELUDE = f"""
import sys, json, asyncio
sys.path.insert(0, {str(REPO)!r})
import structlog, logging
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from streamnb import Stream
from streamnb.notebook import active_runs
"""


class Kernel:
    """A notebook being executed one cell at a time in a live kernel."""

    def __init__(self, client: NotebookClient, nb: Any) -> None:
        self.client = client
        self.nb = nb

    async def cell(self, source: str, *, limit: float = 60) -> Any:
        """Execute ``source`` as a new cell; return the executed cell (errors allowed)."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = int(limit)
        return await self.client.async_execute_cell(cell, len(self.nb.cells) - 1)

    async def value(self, expr: str) -> Any:
        """Evaluate ``expr`` in the kernel and return it (through JSON)."""
        cell = await self.cell(f"print('@@' + json.dumps({expr}))")
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{expr!r} failed in the kernel: {errors[0].ename}: {errors[0].evalue}"
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        line = next((ln for ln in text.splitlines() if ln.startswith("@@")), None)
        assert line is not None, f"{expr!r} printed nothing parseable: {text!r}"
        return json.loads(line[2:])

    async def wait_until(self, expr: str, *, limit: float = 60.0) -> None:
        """Evaluate ``expr`` in the kernel every 0.2 s until it is true (a busy CI machine
        can be slow; a fixed sleep would make the test flaky)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not await self.value(f"bool({expr})"):
            if loop.time() > deadline:
                raise AssertionError(f"{expr!r} still false in the kernel after {limit} s")
            await asyncio.sleep(0.2)

    def text(self, cell: Any) -> str:
        return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")

    def errors(self, cell: Any) -> list[str]:
        return [f"{o.ename}: {o.evalue}" for o in cell.outputs if o.output_type == "error"]

    def widget_states(self) -> dict[str, Any]:
        """The widget state nbclient stored in the notebook's metadata (as a saved file has)."""
        self.client.set_widgets_metadata()
        meta = self.nb.metadata.get("widgets", {})
        state = meta.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
        return dict(state)


@asynccontextmanager
async def kernel(tmp_path: Path) -> AsyncIterator[Kernel]:
    """Start a kernel in ``tmp_path``, run the prelude, shut the kernel down on exit."""
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(
        nb,
        timeout=60,
        kernel_name="python3",
        allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    async with client.async_setup_kernel():
        k = Kernel(client, nb)
        first = await k.cell(PRELUDE)
        assert not k.errors(first), k.errors(first)
        yield k

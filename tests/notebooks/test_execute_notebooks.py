"""Every notebook in notebooks/ runs top to bottom in a real kernel, cleanly.

"Cleanly" means: no cell raises (so every check cell's assertions hold), nothing is written to
stderr (no warnings for the reader, no "Task was destroyed but it is pending", no "exception
was never retrieved"), and the final check cell reports success on stdout. Each notebook gets
its own kernel, with the real widget dashboard, and a per-notebook time limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ._support import NOTEBOOK_TIMEOUT, execute, notebook_paths, outputs_of, read

NOTEBOOKS = notebook_paths()


def test_the_catalogue_is_covered() -> None:
    names = {p.stem for p in NOTEBOOKS}
    expected = {
        "00_tour",
        "01_server_streaming",
        "02_client_streaming",
        "03_bidirectional_streaming",
        "04_async_iterators",
        "05_pipelines",
        "06_backpressure",
        "07_error_recovery",
        "08_metrics",
        "09_chunked_processing",
        "10_anti_patterns",
        "agent_pipeline",
    }
    assert expected <= names, f"missing notebooks: {sorted(expected - names)}"


@pytest.mark.timeout(NOTEBOOK_TIMEOUT)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_cleanly_in_a_kernel(path: Path) -> None:
    nb = execute(read(path))

    errors = outputs_of(nb, "error")
    assert not errors, f"{path.name}: cell {errors[0][0]} raised {errors[0][1].ename}"
    stderr = outputs_of(nb, "stream", "stderr")
    assert not stderr, f"{path.name}: cell {stderr[0][0]} wrote to stderr:\n{stderr[0][1].text}"

    last = next(c for c in reversed(nb.cells) if c.cell_type == "code")
    printed = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    assert printed.strip(), f"{path.name}: the final check cell printed nothing"

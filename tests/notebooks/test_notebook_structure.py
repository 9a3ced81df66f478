"""What every notebook must contain, checked without running it.

Each notebook explains its pattern first (a markdown cell), parses as IPython code, runs on
the standard ``python3`` kernel, and ends with a check cell that asserts what the reader
should have seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ._support import code_sources, notebook_paths, parse_cell, read

NOTEBOOKS = notebook_paths()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_explains_then_checks(path: Path) -> None:
    nb = read(path)
    assert nb.cells and nb.cells[0].cell_type == "markdown", f"{path.name}: start by explaining"
    assert nb.cells[0].source.lstrip().startswith("# "), f"{path.name}: the first cell is a title"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name

    sources = code_sources(nb)
    assert sources, f"{path.name}: no code"
    trees = [parse_cell(src) for src in sources]  # every cell is valid (async) Python
    asserts = [n for n in ast.walk(trees[-1]) if isinstance(n, ast.Assert)]
    assert len(asserts) >= 2, f"{path.name}: the last code cell must assert what was seen"


@pytest.mark.parametrize(
    "path", [p for p in NOTEBOOKS if p.stem != "dask_stage"], ids=lambda p: p.stem
)
def test_notebook_starts_and_stops_its_own_demo_server(path: Path) -> None:
    """Offline: the data comes from a DemoServer started in the notebook, and it is stopped."""
    text = "\n".join(code_sources(read(path)))
    assert "DemoServer(" in text and "await server.start()" in text, path.name
    assert "await server.stop()" in text, f"{path.name}: stop the demo server"
    closes = ("await client.close()", "await client.aclose()")  # GrpcClient, httpx.AsyncClient
    assert any(c in text for c in closes), f"{path.name}: close the client"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_check_cell_asserts_no_streamnb_task_is_left(path: Path) -> None:
    """The leak check is the public ``streamnb.running_tasks()``, never a copied helper."""
    sources = code_sources(read(path))
    assert "assert not running_tasks()" in sources[-1], f"{path.name}: check for leaked tasks"
    imports = [
        node
        for tree in map(parse_cell, sources)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "streamnb"
    ]
    assert any(a.name == "running_tasks" for n in imports for a in n.names), path.name
    text = "\n".join(sources)
    assert "all_tasks(" not in text, f"{path.name}: use streamnb.running_tasks(), not a copy"

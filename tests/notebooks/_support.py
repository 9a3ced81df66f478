"""Shared helpers of the notebook tests: where the notebooks are, running them, reading them.

Example::

    for path in notebook_paths():
        nb = read(path)
        print(path.name, sorted(imported_modules(nb)))
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
BINDER_DIR = REPO / "binder"
#: Seconds one cell may run before nbclient interrupts it.
CELL_TIMEOUT = 120
#: Seconds a whole notebook may take (pytest-timeout), kernel start-up included.
NOTEBOOK_TIMEOUT = 240

_MAGIC = re.compile(r"^\s*[%!]")


def notebook_paths() -> list[Path]:
    """Every notebook in notebooks/, sorted by name (the tour first)."""
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def read(path: Path) -> Any:
    """The notebook at ``path`` as an nbformat v4 node."""
    return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]


def code_sources(nb: Any) -> list[str]:
    """The sources of the code cells, in order."""
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def parse_cell(source: str) -> ast.Module:
    """Parse a cell as IPython would: top-level ``await`` allowed, magics and shell lines
    left out."""
    text = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    tree = compile(text, "<cell>", "exec", flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    assert isinstance(tree, ast.Module)
    return tree


def imported_modules(nb: Any) -> set[str]:
    """Dotted names of every module the notebook's code cells import."""
    found: set[str] = set()
    for source in code_sources(nb):
        for node in ast.walk(parse_cell(source)):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def kernel_env(**overrides: str) -> dict[str, str]:
    """Environment for a kernel: this one, with the repository importable, no display override."""
    env = dict(os.environ)
    env.pop("STREAMNB_DISPLAY", None)  # notebooks run with the real widget dashboard
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
    env.update(overrides)
    return env


def execute(nb: Any, *, kernel_name: str = "python3", env: dict[str, str] | None = None) -> Any:
    """Execute ``nb`` in place in a fresh kernel started in notebooks/; return it.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first failing cell.
    """
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute(env=kernel_env() if env is None else env)
    return nb


def outputs_of(nb: Any, output_type: str, name: str | None = None) -> list[tuple[int, Any]]:
    """(cell index, output) pairs of one type (and stream name) across the notebook."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == output_type and (name is None or out.get("name") == name):
                found.append((index, out))
    return found

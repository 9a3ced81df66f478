"""Notebooks are committed without outputs, and scripts/strip_notebooks.py makes them so."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

from ._support import REPO, notebook_paths, read

NOTEBOOKS = notebook_paths()
SCRIPT = REPO / "scripts" / "strip_notebooks.py"


def _strip_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strip_notebooks", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path: Path) -> None:
    found = _strip_module().problems(read(path))
    assert not found, (
        f"{path.name} is not clean ({'; '.join(found[:5])}): "
        f"run `python scripts/strip_notebooks.py {path.relative_to(REPO)}`"
    )


def _executed_like(path: Path) -> None:
    """Give a copy of a notebook what running and saving it in JupyterLab adds."""
    nb = read(path)
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.execution_count = n + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]  # type: ignore[no-untyped-call]
        cell.metadata["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]


def test_strip_script_checks_and_strips(tmp_path: Path) -> None:
    copy = tmp_path / "tour.ipynb"
    shutil.copy(NOTEBOOKS[0], copy)
    _executed_like(copy)
    original_sources = [c.source for c in read(copy).cells]

    check = [sys.executable, str(SCRIPT), "--check", str(copy)]
    dirty = subprocess.run(check, capture_output=True, text=True, check=False)
    assert dirty.returncode == 1 and "not clean" in dirty.stdout and "output(s)" in dirty.stdout

    stripped = subprocess.run(
        [sys.executable, str(SCRIPT), str(copy)], check=True, text=True, capture_output=True
    )
    assert "stripped" in stripped.stdout
    clean = subprocess.run(check, capture_output=True, text=True, check=False)
    assert clean.returncode == 0, clean.stdout

    nb = read(copy)
    assert [c.source for c in nb.cells] == original_sources, "sources are left alone"
    assert all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )
    assert "widgets" not in nb.metadata

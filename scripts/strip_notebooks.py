"""Strip outputs from notebooks so that they are committed clean.

Removes every code cell's outputs and execution count, and the metadata that executing or
saving a notebook adds (stored widget state, per-cell execution timings, collapsed/scrolled
view flags). Cell ids and sources are left alone, so a stripped notebook diffs only where its
source changed.

Usage::

    python scripts/strip_notebooks.py                 # strip notebooks/*.ipynb in place
    python scripts/strip_notebooks.py a.ipynb b.ipynb # strip these
    python scripts/strip_notebooks.py --check         # list unclean notebooks, exit 1 if any

``tests/notebooks/test_clean_notebooks.py`` fails while a committed notebook has outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

__all__ = ["main", "problems", "strip"]

_DEFAULT_DIR = Path(__file__).resolve().parents[1] / "notebooks"
_NOTEBOOK_METADATA = ("widgets",)
_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def problems(nb: Any) -> list[str]:
    """What is not clean in ``nb`` (an ``nbformat`` notebook), one line each.

    >>> problems(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]))
    []
    """
    found = [f"notebook metadata {key!r}" for key in _NOTEBOOK_METADATA if key in nb.metadata]
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {index}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {index}: execution_count {cell.execution_count}")
        found.extend(
            f"cell {index}: metadata {key!r}" for key in _CELL_METADATA if key in cell.metadata
        )
    return found


def strip(nb: Any) -> bool:
    """Remove outputs, execution counts and run metadata from ``nb`` in place.

    Returns True if anything changed.
    """
    changed = False
    for key in _NOTEBOOK_METADATA:
        if nb.metadata.pop(key, None) is not None:
            changed = True
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            cell.outputs = []
            changed = True
        if cell.get("execution_count") is not None:
            cell.execution_count = None
            changed = True
        for key in _CELL_METADATA:
            if cell.metadata.pop(key, None) is not None:
                changed = True
    return changed


def _paths(given: Sequence[str]) -> list[Path]:
    if given:
        return [Path(p) for p in given]
    return sorted(_DEFAULT_DIR.glob("*.ipynb"))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: notebooks/*.ipynb)")
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a notebook is not clean"
    )
    args = parser.parse_args(argv)
    dirty = 0
    for path in _paths(args.paths):
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)  # type: ignore[no-untyped-call]
        if args.check:
            found = problems(nb)
            if found:
                dirty += 1
                print(f"{path}: not clean: {'; '.join(found)}")
        elif strip(nb):
            nbformat.write(nb, path)  # type: ignore[no-untyped-call]
            print(f"{path}: stripped")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())

"""binder/ gives repo2docker everything the notebooks need, and nothing relies on luck.

* ``requirements.txt`` installs this repository (a local path, so repo2docker installs it after
  copying the repository) with every extra the notebooks import;
* every third-party module a notebook imports is provided by those extras (directly or through
  their dependencies) or by the Binder base environment (JupyterLab, ipykernel, ipywidgets);
* ``runtime.txt`` asks for a Python the package supports; ``postBuild`` is an executable,
  valid bash script.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from ._support import BINDER_DIR, REPO, code_sources, imported_modules, notebook_paths, read

#: What the Binder base environment provides besides what binder/ installs.
BASE_IMAGE = ("jupyterlab", "notebook", "ipykernel", "ipywidgets")
#: streamnb subpackages that need an extra.
MODULE_EXTRAS = {
    "streamnb.grpc": "grpc",
    "streamnb.demo": "grpc",
    "streamnb.notebook": "notebook",
    "streamnb.dask": "dask",
    "streamnb.http": "http",
}
#: Calls that use the notebook extra without importing it (dashboard, pandas).
NOTEBOOK_CALLS = re.compile(r"\.(start|run|run_sync|to_pandas)\(")
_LOCAL = re.compile(r"^(?:-e\s+|--editable\s+)?\.(?:\[(?P<extras>[^\]]*)\])?$")


def _pyproject() -> dict[str, Any]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _requirement_lines() -> list[str]:
    text = (BINDER_DIR / "requirements.txt").read_text()
    return [
        ln.split(" #")[0].strip()
        for ln in text.splitlines()
        if ln.strip() and not ln.startswith("#")
    ]


def _named_extras() -> set[str]:
    local = [m for m in map(_LOCAL.match, _requirement_lines()) if m]
    assert len(local) == 1, (
        "binder/requirements.txt must install this repository once: -e .[extras]"
    )
    extras = local[0].group("extras") or ""
    return {e.strip() for e in extras.split(",") if e.strip()}


def _needed_extras() -> dict[str, set[str]]:
    """extra -> notebooks that need it."""
    needed: dict[str, set[str]] = {}
    for path in notebook_paths():
        nb = read(path)
        for module in imported_modules(nb):
            for prefix, extra in MODULE_EXTRAS.items():
                if module == prefix or module.startswith(prefix + "."):
                    needed.setdefault(extra, set()).add(path.name)
        if any(NOTEBOOK_CALLS.search(src) for src in code_sources(nb)):
            needed.setdefault("notebook", set()).add(path.name)
    return needed


def _expand(extras: set[str]) -> set[str]:
    """Extras with self-references (``streamnb[grpc,notebook]``) resolved."""
    table = _pyproject()["project"]["optional-dependencies"]
    out: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in out:
            continue
        out.add(extra)
        for spec in table[extra]:
            req = Requirement(spec)
            if canonicalize_name(req.name) == "streamnb":
                todo.extend(req.extras)
    return out


@cache
def _closure(dist: str) -> frozenset[str]:
    """``dist`` and everything it requires (as installed here), canonical names."""
    seen: set[str] = set()
    todo = [canonicalize_name(dist)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for spec in requires:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return frozenset(seen)


def test_requirements_install_this_repository_with_every_extra_the_notebooks_need() -> None:
    named = _named_extras()
    declared = set(_pyproject()["project"]["optional-dependencies"])
    assert named <= declared, (
        f"unknown extras in binder/requirements.txt: {sorted(named - declared)}"
    )
    missing = {e: sorted(nbs) for e, nbs in _needed_extras().items() if e not in _expand(named)}
    assert not missing, f"binder/requirements.txt lacks extras the notebooks use: {missing}"
    assert {"grpc", "notebook"} <= _needed_extras().keys(), "the detection itself found the basics"


def test_every_third_party_import_is_provided() -> None:
    project = _pyproject()["project"]
    table = project["optional-dependencies"]
    direct = [Requirement(s).name for s in project["dependencies"]]
    for extra in _expand(_named_extras()):
        direct += [Requirement(s).name for s in table[extra]]
    direct += [
        Requirement(ln).name
        for ln in _requirement_lines()
        if not _LOCAL.match(ln) and not ln.startswith("-")
    ]
    provided: set[str] = set()
    for dist in [*direct, *BASE_IMAGE]:
        provided |= _closure(dist)

    dists_of = importlib.metadata.packages_distributions()
    unprovided: dict[str, set[str]] = {}
    for path in notebook_paths():
        for module in imported_modules(read(path)):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "streamnb":
                continue
            dists = {canonicalize_name(d) for d in dists_of.get(top, [])}
            if not dists & provided:
                unprovided.setdefault(top, set()).add(path.name)
    assert not unprovided, f"imported by notebooks but not installed on Binder: {unprovided}"


def test_runtime_is_a_supported_python() -> None:
    runtime = (BINDER_DIR / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(\d+\.\d+)", runtime)
    assert match, f"binder/runtime.txt: expected python-X.Y, got {runtime!r}"
    supported = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert match.group(1) in supported, f"{runtime} is outside requires-python {supported}"


def test_post_build_is_an_executable_bash_script() -> None:
    post_build = BINDER_DIR / "postBuild"
    assert os.access(post_build, os.X_OK), "binder/postBuild must be executable"
    assert post_build.read_text().startswith("#!/bin/bash")
    subprocess.run(["bash", "-n", str(post_build)], check=True)

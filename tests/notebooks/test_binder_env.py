"""The Binder requirements are sufficient: a fresh virtual environment with only
binder/requirements.txt (installed from the repository root, as repo2docker does after copying
the repository) and ipykernel runs the tour.

The environment has no access to this interpreter's site-packages, so a dependency missing
from the requirements fails here. pip's cache makes the installs quick after the main install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import nbformat
import pytest

from ._support import BINDER_DIR, NOTEBOOK_DIR, REPO, execute, outputs_of, read

KERNEL = "streamnb-binder-venv"


def _run(cmd: list[str], *, env: dict[str, str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


@pytest.mark.timeout(1200)
def test_tour_runs_in_a_fresh_environment_with_only_the_binder_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER", "STREAMNB_DISPLAY")
    }

    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
    ]
    _run([*pip, "-r", str(BINDER_DIR / "requirements.txt")], cwd=REPO, env=clean)
    _run([*pip, "ipykernel"], cwd=REPO, env=clean)

    # a kernelspec for that environment, visible to jupyter_client through JUPYTER_PATH only
    prefix = tmp_path / "jupyter"
    _run(
        [str(python), "-m", "ipykernel", "install", "--prefix", str(prefix), "--name", KERNEL],
        env=clean,
    )
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))

    nb = read(NOTEBOOK_DIR / "00_tour.ipynb")
    probe = "import json, sys, streamnb; print('@@' + json.dumps([sys.prefix, streamnb.__file__]))"
    nb.cells.append(nbformat.v4.new_code_cell(probe))  # type: ignore[no-untyped-call]
    execute(nb, kernel_name=KERNEL, env=clean)

    errors = outputs_of(nb, "error")
    assert not errors, f"cell {errors[0][0]} raised {errors[0][1].ename}: {errors[0][1].evalue}"
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    prefix_seen, module_file = json.loads(text.split("@@", 1)[1])
    assert Path(prefix_seen).resolve() == env_dir.resolve(), "the tour ran in the fresh environment"
    assert Path(module_file).resolve().is_relative_to(REPO), "streamnb came from this repository"
    assert sys.prefix != prefix_seen

"""The README's two commands: ``python -m streamnb`` runs the live demo end to end, and the
test command is exactly what ``.ci/run`` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_python_m_streamnb_runs_the_live_demo() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "streamnb", "--events", "3000", "--drops", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "delivered 3,000 events" in out, out[-2000:]
    assert "exactly once and in order: yes" in out
    assert "count=100 sum=5050" in out  # client streaming ran
    assert "<done:" in out  # the bidirectional agent answered


def _readme_commands() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    demo, tests = _readme_commands()
    assert demo == 'python3 -m pip install -e ".[all]" && python3 -m streamnb'
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    last = [line for line in ci if line.strip() and not line.startswith("#")][-1]
    assert last == tests, f".ci/run ends with {last!r}, the README says {tests!r}"
    script = tests.split("&&")[0].split()[-1]
    assert (REPO / script).is_file(), f"the README's test command names {script}, which is missing"


def test_setup_script_is_valid_bash_and_installs_the_test_extras() -> None:
    script = REPO / "scripts" / "setup-tests.sh"
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    text = script.read_text(encoding="utf-8")
    assert 'python3 -m pip install -e ".[all,test]"' in text
    assert "apt-get install" in text and "/usr/bin/chromium" in text

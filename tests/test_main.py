"""The README's first command: ``python -m streamnb`` runs the live demo end to end."""

from __future__ import annotations

import subprocess
import sys


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

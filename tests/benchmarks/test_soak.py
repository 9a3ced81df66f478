"""``benchmarks/soak.py`` runs end to end (small) and ends with its JSON line.

The full-size figure (10,000,000 items, RSS growth <= 5 MB) is measured by running the script
itself; this only proves the script works and reports what it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_soak_runs_small_and_prints_its_json_line() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--items", "20000"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert "20,000 items" in lines[-2]
    result = json.loads(lines[-1])
    assert set(result) == {"rss_growth_mb", "items_per_s"}
    assert isinstance(result["rss_growth_mb"], float | int)
    assert result["items_per_s"] > 0


def test_soak_refuses_a_bad_item_count() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--items", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "--items" in proc.stderr

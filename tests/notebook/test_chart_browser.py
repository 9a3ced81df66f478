"""Real browsers: the live chart moves in JupyterLab 4 and in Notebook 7 (Chromium, Playwright).

Each test starts the Jupyter server on 127.0.0.1, opens a notebook whose cell displays a
:class:`~streamnb.notebook.chart.LiveChart` and starts a background task that streams keyed
one-second windows into it, runs it from the Run menu, and reads the DOM: the number of points
the ES module has drawn (``data-points``) must grow while the task runs, and the kernel must
report that it sent a handful of delta messages (not one per item). A screenshot of the chart
goes to the test folder (and to docs/chart-lab.png / docs/chart-notebook7.png, the README's
pictures, when STREAMNB_UPDATE_SCREENSHOT=1 is set).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, sync_playwright

from .helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    accept_kernel_dialog,
    dismiss_news,
    jupyter_server,
)

CELL = f"""
import sys, asyncio, random, time
sys.path.insert(0, {str(REPO)!r})
from streamnb.keyed import KeyedWindows, keyed_windows, tumbling
from streamnb.notebook.chart import LiveChart

chart = LiveChart(x="window_end", y="count", by="kind", title="events per 0.25 s by kind",
                  max_points=200)
display(chart)

async def events(n=4000):
    rnd = random.Random(1)
    for i in range(n):
        await asyncio.sleep(0.004)
        yield {{"kind": rnd.choice(["api", "db", "cache"]), "ts": time.time()}}

engine = KeyedWindows(tumbling(0.25), by="kind", time="ts", aggs={{"count": "count"}})
task = asyncio.create_task(chart.feed(keyed_windows(events(), engine)))
"""

REPORT = """
await task
print("CHART", chart.rows, chart.messages, chart.points)
"""


_REPORTED = ".jp-OutputArea-output:has-text('CHART ')"


def _points(page: Page) -> int:
    value = page.evaluate(
        """() => {
            const c = document.querySelector('.streamnb-chart');
            return c ? parseInt(c.dataset.points || '0', 10) : -1;
        }"""
    )
    return int(value)


def _run_all(page: Page) -> None:
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item:has-text('Run All Cells')")


@pytest.mark.parametrize(
    ("frontend", "app", "path", "picture"),
    [
        ("lab", "jupyterlab", "lab/tree/chart.ipynb", "chart-lab.png"),
        ("notebook7", "notebook", "notebooks/chart.ipynb", "chart-notebook7.png"),
    ],
)
def test_live_chart_receives_points_while_a_background_task_streams(
    tmp_path: Path, frontend: str, app: str, path: str, picture: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(CELL), nbformat.v4.new_code_cell(REPORT)]
    nbformat.write(nb, root / "chart.ipynb")
    shot = tmp_path / picture

    with jupyter_server(root, tmp_path / f"{app}.log", app) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/{path}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            accept_kernel_dialog(page)
            _run_all(page)
            try:
                page.wait_for_selector(".streamnb-chart canvas", timeout=120_000)
            except Exception as exc:
                page.screenshot(path=str(tmp_path / "no-chart.png"))
                raise AssertionError(
                    f"no chart rendered in {frontend}; see {tmp_path}/no-chart.png and "
                    f"{tmp_path}/{app}.log"
                ) from exc
            seen: list[int] = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                seen.append(_points(page))
                if page.locator(_REPORTED).count():
                    break
                time.sleep(0.25)
            growing = sorted(set(p for p in seen if p > 0))
            assert len(growing) >= 3, f"the chart did not move while streaming: {seen}"
            out = page.locator(_REPORTED).first.inner_text()
            _, rows, messages, points = out.split()[:4]
            assert int(rows) >= 20
            # the delta messages: a few per second of run, far fewer than the 4,000 events
            assert 3 <= int(messages) <= 200, out
            page.wait_for_function(
                f"() => parseInt(document.querySelector('.streamnb-chart').dataset.points)"
                f" === {int(points)}",
                timeout=10_000,
            )
            dismiss_news(page)
            page.locator(".streamnb-chart").first.screenshot(path=str(shot))
        finally:
            browser.close()

    assert shot.stat().st_size > 3_000
    if os.environ.get("STREAMNB_UPDATE_SCREENSHOT"):
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs / picture)

"""Real browser: JupyterLab 4 + Chromium (Playwright) run a notebook with a live dashboard.

The test starts JupyterLab on 127.0.0.1 (empty token, a free port, a temporary root), opens a
notebook with two cells, runs all cells from the Run menu and reads the DOM while the pipeline
runs: the progress bar must be seen part-way and then full, the throughput chart (the anywidget
LiveChart's canvas) must have drawn rate points sent from the kernel, and clicking the Stop
button of a background run must end that run in the kernel. A screenshot goes to the test's
folder (and to docs/dashboard.png, the README's picture, when STREAMNB_UPDATE_SCREENSHOT=1 is
set).
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Page

from .helpers import (
    REPO,
    dismiss_news,
    notebook_in_browser,
    publish_screenshot,
    run_all_cells,
    wait_rendered,
)

FOREGROUND = f"""
import sys, asyncio
sys.path.insert(0, {str(REPO)!r})
import logging, structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
from streamnb import Stream

async def readings(n=1500, delay=0.004):
    for i in range(n):
        await asyncio.sleep(delay)
        yield {{"sensor": i % 4, "reading": {{"value": i * 0.5, "ok": i % 7 != 0}}}}

pipeline = (
    Stream(readings).monitor("source", total=1500)
    .buffer(64, name="buffer").monitor("buffer")
    .filter(lambda r: r["reading"]["ok"]).monitor("ok")
    .window(last=50)
)
summary = await pipeline.run(name="browser-demo", refresh=8)  # the bar follows "source"
print("FOREGROUND", summary.status, summary.items)
"""

BACKGROUND = """
async def forever():
    i = 0
    while True:
        await asyncio.sleep(0.01)
        yield i
        i += 1

bg = Stream(forever).monitor("ticks").start(name="browser-bg")
"""


def _bar_width(page: Page, index: int) -> float:
    """The fill (in %) of the index-th dashboard's progress bar, -1 if not rendered yet."""
    value = page.evaluate(
        """(i) => {
            const d = document.querySelectorAll('.streamnb-dashboard')[i];
            const bar = d && d.querySelector('.widget-hprogress .progress-bar');
            if (!bar) return -1;
            return parseFloat(bar.style.width || '0');
        }""",
        index,
    )
    return float(value)


def _dashboard_text(page: Page, index: int) -> str:
    return str(
        page.evaluate(
            """(i) => {
                const d = document.querySelectorAll('.streamnb-dashboard')[i];
                return d ? Array.from(d.querySelectorAll('.widget-html-content'))
                    .map(e => e.textContent).join(' | ') : '';
            }""",
            index,
        )
    )


def test_dashboard_runs_live_in_jupyterlab(tmp_path: Path) -> None:
    shot = tmp_path / "dashboard.png"
    cells = [FOREGROUND, BACKGROUND]
    with notebook_in_browser(
        tmp_path, cells, frontend="lab", name="dashboard.ipynb", viewport=(1280, 1000)
    ) as page:
        run_all_cells(page)

        wait_rendered(page, tmp_path, "dashboard", selector=".streamnb-dashboard .widget-hprogress")

        seen: list[float] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            width = _bar_width(page, 0)
            seen.append(width)
            if width >= 100.0 and "done" in _dashboard_text(page, 0):
                break
            time.sleep(0.2)
        partial = [w for w in seen if 0.0 < w < 100.0]
        assert partial, f"the progress bar was never seen part-way: {seen[:20]}..."
        assert seen[-1] >= 100.0, f"the progress bar did not fill: last widths {seen[-5:]}"
        text = _dashboard_text(page, 0)
        assert "1,500/1,500 items" in text and "source" in text, text
        assert "high-water" in text, f"no buffer gauge in {text!r}"

        # the throughput chart (anywidget canvas) drew the rate points the kernel sent
        page.wait_for_function(
            """() => {
                const c = document.querySelector('.streamnb-dashboard .streamnb-chart');
                return c && Number(c.dataset.points) >= 2;
            }""",
            timeout=30_000,
        )
        size = page.evaluate(
            "() => { const c = document.querySelector('.streamnb-dashboard canvas');"
            " return [c.width, c.height]; }"
        )
        assert size[0] > 100 and size[1] > 50, f"chart canvas too small: {size}"

        dashboards = page.locator(".streamnb-dashboard")
        dismiss_news(page)
        dashboards.first.screenshot(path=str(shot))

        # the background run's Stop button, clicked in the browser, stops it in the kernel
        page.wait_for_function(
            "() => document.querySelectorAll('.streamnb-dashboard').length >= 2",
            timeout=60_000,
        )
        page.wait_for_function(
            """() => {
                const d = document.querySelectorAll('.streamnb-dashboard')[1];
                return d && /running/.test(d.textContent);
            }""",
            timeout=60_000,
        )
        dashboards.nth(1).locator("button:has-text('Stop')").click()
        page.wait_for_function(
            """() => {
                const d = document.querySelectorAll('.streamnb-dashboard')[1];
                return d && /cancelled/.test(d.textContent);
            }""",
            timeout=30_000,
        )
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    assert shot.stat().st_size > 5_000
    publish_screenshot(shot, "dashboard.png")

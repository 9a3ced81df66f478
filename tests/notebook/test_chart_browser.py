"""Real browsers: live charts move in JupyterLab 4 and in Notebook 7 (Chromium, Playwright).

Each test serves a notebook from a Jupyter server on 127.0.0.1 (``helpers.notebook_in_browser``),
runs all its cells from the Run menu and reads the DOM while the data streams: the number of
points the chart's ES module has drawn (``data-points``) must grow, and the kernel must report
that the chart sent a handful of delta messages (a few per second, not one per item).

* a bare :class:`~streamnb.notebook.chart.LiveChart` fed by a background task of keyed windows;
* the user's API: ``run = start(stream)`` of a keyed window over the embedded demo server's
  feed, then ``run.chart(x="window_end", y="count", by="kind")`` - next to the run's dashboard.

Screenshots go to the test folder, and to the README's pictures (docs/chart-lab.png,
docs/chart-notebook7.png, docs/run-chart-lab.png, docs/run-chart-notebook7.png) when
STREAMNB_UPDATE_SCREENSHOT=1 is set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from .helpers import (
    REPO,
    dismiss_news,
    notebook_in_browser,
    publish_screenshot,
    run_all_cells,
    wait_rendered,
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

#: The run's chart: the notebook's setup (not in the picture), the user's cell, the report.
EVENTS = 6_000
RUN_SETUP = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from streamnb.demo import DemoServer
from streamnb.grpc import GrpcClient
from streamnb.keyed import tumbling
from streamnb.notebook import start

server = DemoServer()
await server.start()
client = GrpcClient(server.address)
"""

RUN_CELL = f"""
feed = client.server_stream(
    "/streamnb.demo.v1.Json/Subscribe",
    {{"count": {EVENTS}, "rate": 1_000, "kinds": ["api", "db", "cache"]}},
)
stream = feed.keyed_window(
    tumbling(0.25), by="kind", time="timestamp", name="per-kind"
).window(last=1_000, name="windows")
run = start(stream, name="run-chart")
chart = run.chart(x="window_end", y="count", by="kind", window="windows")
chart
"""

RUN_REPORT = """
import json
summary = await run
events = run.snapshots("window")["per-kind"].items
await client.close()
await server.stop()
print("RUNCHART", json.dumps({
    "status": summary.status, "events": events, "rows": summary.items,
    "elapsed": summary.elapsed, "rate": chart.rate, "chart_rows": chart.rows,
    "points": chart.points, "messages": chart.messages,
}))
"""

# The chart that is not the dashboard's throughput plot (the dashboard is a LiveChart too).
_CHART_JS = (
    "Array.from(document.querySelectorAll('.streamnb-chart'))"
    ".find(c => !c.closest('.streamnb-dashboard'))"
)


def _points(page: Page) -> int:
    """The points the chart has drawn (``data-points``), -1 before it rendered."""
    value = page.evaluate(
        f"() => {{ const c = {_CHART_JS}; return c ? parseInt(c.dataset.points || '0', 10) : -1; }}"
    )
    return int(value)


def _wait_for_chart(page: Page, tmp_path: Path, frontend: str) -> None:
    wait_rendered(
        page,
        tmp_path,
        f"chart in {frontend}",
        js=f"() => {{ const c = {_CHART_JS}; return c && c.querySelector('canvas'); }}",
    )


def _watch(page: Page, reported: str, seconds: float = 120.0) -> tuple[list[int], list[str]]:
    """Poll the drawn points (and the dashboard's text) until the report cell printed."""
    points: list[int] = []
    dashboard: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        points.append(_points(page))
        dashboard.append(
            str(
                page.evaluate(
                    "() => { const d = document.querySelector('.streamnb-dashboard');"
                    " return d ? d.textContent : ''; }"
                )
            )
        )
        if page.locator(reported).count():
            break
        time.sleep(0.25)
    return points, dashboard


def _wait_for_drawn(page: Page, points: int) -> None:
    """The browser ends up drawing exactly the points the kernel kept."""
    page.wait_for_function(
        f"() => {{ const c = {_CHART_JS}; return c && parseInt(c.dataset.points) === {points}; }}",
        timeout=10_000,
    )


@pytest.mark.parametrize(
    ("frontend", "picture"), [("lab", "chart-lab.png"), ("notebook7", "chart-notebook7.png")]
)
def test_live_chart_receives_points_while_a_background_task_streams(
    tmp_path: Path, frontend: str, picture: str
) -> None:
    reported = ".jp-OutputArea-output:has-text('CHART ')"
    shot = tmp_path / picture
    with notebook_in_browser(
        tmp_path, [CELL, REPORT], frontend=frontend, name="chart.ipynb"
    ) as page:
        run_all_cells(page)
        _wait_for_chart(page, tmp_path, frontend)
        seen, _ = _watch(page, reported, seconds=90)
        growing = sorted(set(p for p in seen if p > 0))
        assert len(growing) >= 3, f"the chart did not move while streaming: {seen}"
        out = page.locator(reported).first.inner_text()
        _, rows, messages, points = out.split()[:4]
        assert int(rows) >= 20
        # the delta messages: a few per second of run, far fewer than the 4,000 events
        assert 3 <= int(messages) <= 200, out
        _wait_for_drawn(page, int(points))
        dismiss_news(page)
        page.locator(".streamnb-chart").first.screenshot(path=str(shot))

    assert shot.stat().st_size > 3_000
    publish_screenshot(shot, picture)


@pytest.mark.parametrize(
    ("frontend", "picture"),
    [("lab", "run-chart-lab.png"), ("notebook7", "run-chart-notebook7.png")],
)
def test_run_chart_of_a_keyed_window_moves_next_to_its_dashboard(
    tmp_path: Path, frontend: str, picture: str
) -> None:
    reported = ".jp-OutputArea-output:has-text('RUNCHART ')"
    shot = tmp_path / picture
    cells = [RUN_SETUP, RUN_CELL, RUN_REPORT]
    with notebook_in_browser(
        tmp_path, cells, frontend=frontend, name="run-chart.ipynb", viewport=(1100, 1300)
    ) as page:
        run_all_cells(page)
        _wait_for_chart(page, tmp_path, frontend)
        seen, dashboard = _watch(page, reported)
        assert page.locator(reported).count(), f"the run did not report in time: {seen[-10:]}"
        # drawn points seen grow while the run's dashboard (present, named) says it is running
        running = [p for p, text in zip(seen, dashboard, strict=True) if "running" in text]
        assert all("run-chart" in text for text in dashboard if text), dashboard[-1:]
        growing = sorted(set(p for p in running if p > 0))
        assert len(growing) >= 3, f"the chart did not move while the run streamed: {seen}"

        report = json.loads(page.locator(reported).first.inner_text().split("RUNCHART", 1)[1])
        assert report["status"] == "done" and report["events"] == EVENTS, report
        # every closed window reached the chart once: the rows new since each refresh only
        # (6,000 events at <= 1,000/s span >= 6 s: >= 24 quarter-second windows per kind)
        assert report["chart_rows"] == report["points"] == report["rows"] >= 3 * 20, report
        # the messages follow the run's duration at the chart's rate (<= 4 Hz, plus the first
        # send, the history reply to the view's hello and the final flush), not the 6,000
        # events nor the rows
        bound = report["elapsed"] * report["rate"] + 3
        assert 3 <= report["messages"] <= bound, report
        assert report["messages"] * 50 < EVENTS, report

        _wait_for_drawn(page, report["points"])
        # the dashboard ends done, its own throughput chart drawn (its view may have rendered
        # late and be waiting for the history it asked for: the kernel answers once idle)
        page.wait_for_function(
            """() => {
                const d = document.querySelector('.streamnb-dashboard');
                const c = d && d.querySelector('.streamnb-chart');
                return /done/.test(d.textContent) && c && Number(c.dataset.points) >= 2;
            }""",
            timeout=30_000,
        )
        dismiss_news(page)
        page.locator(".jp-Notebook .jp-CodeCell").nth(1).screenshot(path=str(shot))

    assert shot.stat().st_size > 10_000
    publish_screenshot(shot, picture)

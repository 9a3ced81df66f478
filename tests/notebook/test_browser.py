"""Real browser: JupyterLab 4 + Chromium (Playwright) run a notebook with a live dashboard.

The test starts JupyterLab on 127.0.0.1 (empty token, a free port, a temporary root), opens a
notebook with two cells, runs all cells from the Run menu and reads the DOM while the pipeline
runs: the progress bar must be seen part-way and then full, the throughput plot must be an
<img> with a loaded blob/data source, and clicking the Stop button of a background run must
end that run in the kernel. A screenshot goes to the test's folder (and to docs/dashboard.png,
the README's picture, when STREAMNB_UPDATE_SCREENSHOT=1 is set).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parents[2]
#: The browser to drive: STREAMNB_CHROMIUM, else Debian's Chromium, else (None) Playwright's
#: own build - whichever scripts/setup-tests.sh (the README's test command) installed.
CHROMIUM: str | None = os.environ.get("STREAMNB_CHROMIUM") or (
    "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyterlab(root: Path, log: Path) -> Iterator[str]:
    """Run JupyterLab in ``root``; yield its base URL; always stop it."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:  # CI containers run as root; JupyterLab refuses without this
        cmd.append("--allow-root")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config")}
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"JupyterLab exited early ({proc.returncode}):\n{log.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"JupyterLab did not answer in 90 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _accept_kernel_dialog(page: Page) -> None:
    """JupyterLab 4 may ask which kernel to use even with a kernelspec: accept its choice."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=20_000)
    except Exception:
        return  # no dialog this time: the kernel was started directly
    page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".jp-Dialog", state="detached", timeout=20_000)


def _dismiss_news(page: Page) -> None:
    """Close JupyterLab's 'official Jupyter news?' toast so it does not cover the screenshot."""
    toast = page.locator(".Toastify__toast button:has-text('No')")
    if toast.count():
        toast.first.click()
        page.wait_for_timeout(500)


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
    root = tmp_path / "lab"
    root.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(FOREGROUND), nbformat.v4.new_code_cell(BACKGROUND)]
    nbformat.write(nb, root / "dashboard.ipynb")
    shot = tmp_path / "dashboard.png"

    with jupyterlab(root, tmp_path / "jupyterlab.log") as url, sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # no browser at all: say how to get one (the test still fails)
            raise AssertionError(
                f"cannot start Chromium ({CHROMIUM or 'Playwright-managed'}): run "
                "'bash scripts/setup-tests.sh' (the README's test command) to install one"
            ) from exc
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/dashboard.ipynb", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            _accept_kernel_dialog(page)
            page.click("li.lm-MenuBar-item:has-text('Run')")
            page.click("li.lm-Menu-item:has-text('Run All Cells')")

            try:
                page.wait_for_selector(".streamnb-dashboard .widget-hprogress", timeout=120_000)
            except Exception as exc:
                page.screenshot(path=str(tmp_path / "no-dashboard.png"))
                raise AssertionError(
                    f"no dashboard widget rendered; see {tmp_path}/no-dashboard.png and "
                    f"{tmp_path}/jupyterlab.log"
                ) from exc

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

            page.wait_for_function(
                """() => {
                    const img = document.querySelector('.streamnb-dashboard img');
                    return img && /^(blob:|data:)/.test(img.src) && img.complete
                        && img.naturalWidth > 0 && img.naturalHeight > 0;
                }""",
                timeout=30_000,
            )
            size = page.evaluate(
                "() => { const i = document.querySelector('.streamnb-dashboard img');"
                " return [i.naturalWidth, i.naturalHeight]; }"
            )
            assert size[0] > 100 and size[1] > 50, f"plot image too small: {size}"

            dashboards = page.locator(".streamnb-dashboard")
            _dismiss_news(page)
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
        finally:
            browser.close()

    assert shot.stat().st_size > 5_000
    if os.environ.get("STREAMNB_UPDATE_SCREENSHOT"):
        # opt-in, so that running the tests leaves the checkout clean
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs / "dashboard.png")

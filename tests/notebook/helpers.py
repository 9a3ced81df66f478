"""Small builders shared by the notebook tests (plain data, no mocks of streamnb), and the
real Jupyter servers and Chromium the browser tests drive (:func:`notebook_in_browser`)."""

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
from typing import TYPE_CHECKING, Any

import nbformat

from streamnb.metrics import (
    BufferSnapshot,
    CallSnapshot,
    KeyedWindowSnapshot,
    MetricsSnapshot,
    ResilientSnapshot,
)
from streamnb.notebook._format import RunFrame, RunStatus

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright


def snap(name: str = "stage", **over: Any) -> MetricsSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        status="running",
        items=0,
        errors=0,
        dropped=0,
        bytes=0,
        elapsed=1.0,
        rate=0.0,
        window_rate=0.0,
        bytes_rate=0.0,
        latency=None,
        latency_max=None,
        buffer_depth=None,
        buffer_capacity=None,
        buffer_high_water=None,
        total=None,
        error=None,
        taken_at=0.0,
    )
    base.update(over)
    return MetricsSnapshot(**base)


def buffer_snap(name: str = "buf", **over: Any) -> BufferSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        capacity=10,
        depth=0,
        high_water=0,
        dropped=0,
        blocked_seconds=0.0,
        overflow="block",
        taken_at=0.0,
    )
    base.update(over)
    return BufferSnapshot(**base)


def resilient_snap(name: str = "feed", **over: Any) -> ResilientSnapshot:
    base: dict[str, Any] = dict(
        name=name, delivered=0, failures=0, reconnects=0, last_error=None, taken_at=0.0
    )
    base.update(over)
    return ResilientSnapshot(**base)


def call_snap(name: str = "call", **over: Any) -> CallSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        method="/streamnb.demo.v1.Json/Subscribe",
        shape="server_stream",
        sent=1,
        received=0,
        bytes_sent=10,
        bytes_received=0,
        errors=0,
        decode_errors=0,
        reconnects=0,
        code=None,
        elapsed=1.0,
        taken_at=0.0,
    )
    base.update(over)
    return CallSnapshot(**base)


def keyed_snap(name: str = "per-second", **over: Any) -> KeyedWindowSnapshot:
    base: dict[str, Any] = dict(
        name=name,
        shape="tumbling(1)",
        items=0,
        late=0,
        closed=0,
        open=0,
        keys=0,
        evicted=0,
        watermark=None,
        max_keys=10_000,
    )
    base.update(over)
    return KeyedWindowSnapshot(**base)


def frame(
    status: RunStatus = "running",
    items: int = 0,
    elapsed: float = 1.0,
    *,
    total: int | None = None,
    error: str | None = None,
    stages: dict[str, MetricsSnapshot] | None = None,
    taken_at: float = 0.0,
    name: str = "run",
    window_tail: tuple[tuple[float, Any], ...] = (),
    **snapshots: Any,
) -> RunFrame:
    """A frame; ``snapshots`` are RunFrame's other snapshot mappings (buffers=, calls=...)."""
    return RunFrame(
        name=name,
        status=status,
        items=items,
        elapsed=elapsed,
        total=total,
        error=error,
        stages=stages or {},
        taken_at=taken_at,
        window_tail=window_tail,
        **snapshots,
    )


# -- real Jupyter servers and Chromium, shared by the browser tests ---------------------------
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def jupyter_server(root: Path, log: Path, app: str = "jupyterlab") -> Iterator[str]:
    """Run JupyterLab (``app="jupyterlab"``) or Notebook 7 (``app="notebook"``) in ``root``
    on 127.0.0.1 with an empty token; yield its base URL; always stop it and its kernels."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        app,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
    ]
    if app == "jupyterlab":
        cmd += [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses without this
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
                raise AssertionError(f"{app} exited early ({proc.returncode}):\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{app} did not answer in 90 s:\n{log.read_text()}")
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


def accept_kernel_dialog(page: Page) -> None:
    """JupyterLab 4 may ask which kernel to use even with a kernelspec: accept its choice."""
    try:
        page.wait_for_selector(".jp-Dialog .jp-mod-accept", timeout=20_000)
    except Exception:
        return  # no dialog this time: the kernel was started directly
    page.click(".jp-Dialog .jp-mod-accept")
    page.wait_for_selector(".jp-Dialog", state="detached", timeout=20_000)


def dismiss_news(page: Page) -> None:
    """Close JupyterLab's 'official Jupyter news?' toast so it does not cover the screenshot."""
    toast = page.locator(".Toastify__toast button:has-text('No')")
    if toast.count():
        toast.first.click()
        page.wait_for_timeout(500)


#: The frontends the browser tests drive: name -> (server app, URL prefix of an open notebook).
FRONTENDS: dict[str, tuple[str, str]] = {
    "lab": ("jupyterlab", "lab/tree"),
    "notebook7": ("notebook", "notebooks"),
}


def launch_chromium(pw: Playwright) -> Browser:
    """Start headless :data:`CHROMIUM`; without one, fail saying how to install it."""
    try:
        return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # no browser at all: say how to get one (the test still fails)
        raise AssertionError(
            f"cannot start Chromium ({CHROMIUM or 'Playwright-managed'}): run "
            "'bash scripts/setup-tests.sh' (the README's test command) to install one"
        ) from exc


@contextlib.contextmanager
def notebook_in_browser(
    tmp_path: Path,
    cells: list[str],
    *,
    frontend: str = "lab",
    name: str = "test.ipynb",
    viewport: tuple[int, int] = (1100, 900),
) -> Iterator[Page]:
    """Write ``cells`` (code) as ``tmp_path/root/name``, serve it with ``frontend`` (a key of
    :data:`FRONTENDS`) and open it in Chromium; yield the page once the notebook is shown and
    its kernel chosen. The server log is ``tmp_path/<app>.log``; server, kernel and browser
    are always stopped. Nothing is run: see :func:`run_all_cells`.

    Example::

        with notebook_in_browser(tmp_path, ["print('hi')"], frontend="notebook7") as page:
            run_all_cells(page)
            page.wait_for_selector(".jp-OutputArea-output:has-text('hi')")
    """
    app, prefix = FRONTENDS[frontend]
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nbformat.write(nb, root / name)

    from playwright.sync_api import sync_playwright

    with jupyter_server(root, tmp_path / f"{app}.log", app) as url, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/{prefix}/{name}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            accept_kernel_dialog(page)
            yield page
        finally:
            browser.close()


def run_all_cells(page: Page) -> None:
    """Run > Run All Cells (the same menu in JupyterLab 4 and Notebook 7)."""
    page.click("li.lm-MenuBar-item:has-text('Run')")
    page.click("li.lm-Menu-item:has-text('Run All Cells')")


def wait_rendered(
    page: Page, tmp_path: Path, what: str, *, selector: str | None = None, js: str | None = None
) -> None:
    """Wait (2 min) until ``what`` is on the page - a CSS ``selector`` or a ``js`` predicate;
    else a screenshot ``no-<what>.png`` and an AssertionError naming it and the server log."""
    if (selector is None) == (js is None):
        raise ValueError("wait_rendered: give a selector or a js predicate")
    try:
        if selector is not None:
            page.wait_for_selector(selector, timeout=120_000)
        else:
            page.wait_for_function(js or "", timeout=120_000)
    except Exception as exc:
        shot = tmp_path / f"no-{what.replace(' ', '-')}.png"
        page.screenshot(path=str(shot))
        raise AssertionError(
            f"no {what} rendered; see {shot} and the server log in {tmp_path}"
        ) from exc


def publish_screenshot(shot: Path, picture: str) -> None:
    """Copy ``shot`` to docs/``picture`` (a README picture) when STREAMNB_UPDATE_SCREENSHOT is
    set; opt-in, so that running the tests leaves the checkout clean."""
    if os.environ.get("STREAMNB_UPDATE_SCREENSHOT"):
        docs = REPO / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs / picture)

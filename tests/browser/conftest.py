"""Fixtures for browser tests: a real Streamlit server on loopback and Debian's headless Chromium.

- ``browser_page``: a Playwright page in Debian's Chromium;
- ``dashboard``: ``start(env) -> url`` runs ``python app.py`` (stopped at teardown);
- ``dashboard_env``: an environment whose ``PM_HOME`` is an empty folder under tmp_path;
- ``wait_idle(page)``: wait until the page's script run has finished;
- ``settled_box(locator)``: an element's bounding box once it stopped moving;
- ``select_row(page, grid, row, shown)``: tick a row of a selectable table until ``shown`` appears;
- ``model_home``: FD001 loaded and a tiny champion (per test module), built by the page tests' builder.

Without Chromium these tests skip, unless ``PM_REQUIRE_BROWSER=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api_support import build_trained_home

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _chromium() -> str:
    path = os.environ.get("PM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("PM_REQUIRE_BROWSER") == "1":
        pytest.fail("Chromium is required for browser tests (PM_REQUIRE_BROWSER=1) but is not installed.")
    pytest.skip("Chromium is not installed (apt-get install chromium).")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_dashboard(env: dict[str, str], timeout_s: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start the dashboard (``python app.py``, as ``make run`` does) on a free loopback port; wait until it answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "app.py",
            "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"The dashboard exited with {proc.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"The dashboard did not answer on {url} within {timeout_s:.0f} s.")


def wait_idle(page) -> None:
    """Wait until the page's script has finished its run: a control clicked while a rerun redraws the page may be
    the old one (a download button of the run before serves nothing)."""
    page.wait_for_timeout(300)
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for()


def settled_box(locator, tries: int = 40) -> dict[str, float]:
    """The locator's bounding box once it stopped moving between two looks 250 ms apart."""
    last = None
    for _ in range(tries):
        box = locator.bounding_box()
        if box is not None and box == last:
            return box
        last = box
        locator.page.wait_for_timeout(250)
    raise AssertionError(f"The element kept moving: last box {last}.")


GRID_ROW_PX = 35
"""Height of a Streamlit table's header and of each row."""


def select_row(page, grid, row: int, shown, tries: int = 3) -> None:
    """Tick the selection box of ``row`` (0 = first data row) of a selectable table until ``shown`` (a locator)
    appears. The table is a canvas, so the click is by position: made once the script run has finished and the
    table stopped moving, and made again only when the tick did not take (the box still unticked)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(tries):
        wait_idle(page)
        grid.scroll_into_view_if_needed()
        box = settled_box(grid)
        page.mouse.click(box["x"] + 15, box["y"] + GRID_ROW_PX * (row + 1) + GRID_ROW_PX / 2)
        try:
            shown.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"Ticking row {row} of the table did not show {shown}.")


def stop_dashboard(proc: subprocess.Popen) -> None:
    """Stop the dashboard server and everything it started."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture()
def browser_page() -> Iterator:
    """A Playwright page in Debian's headless Chromium (no browser download)."""
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


@pytest.fixture()
def dashboard() -> Iterator:
    """A function ``start(env) -> url`` that runs the dashboard; every server it started stops at teardown."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> str:
        proc, url = start_dashboard(env)
        started.append(proc)
        return url

    yield start
    for proc in started:
        stop_dashboard(proc)


@pytest.fixture()
def dashboard_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a dashboard with its own empty runtime state under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PM_HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """FD001 loaded and a tiny champion, built by the page tests' recipe."""
    return build_trained_home(tmp_path_factory.mktemp("browser_home"), cmapss_dir)

"""Benchmark: page settle times in headless Chromium, and the CPU an idle Models page costs the server.

- ``first_content_s``: from starting ``python app.py`` until the first page shows its title in the
  browser (server start, first script run and drawing included); ``first_content_after_open_s``: the
  part of it after the server answered and the browser opened the page (what a user who opens the page
  once the server says it is up waits);
- ``settle_s`` per page: from navigating to the page's address (warm server; a full page load with a new
  session) until the script has finished and no spinner or skeleton is left, median of ``repeats`` visits
  (the first visit of each page apart, as ``first_visit_s``);
- ``switch_s`` per page: the same, but reached by clicking its link in the sidebar from the page before it
  in ``PAGES`` order (the last page from the first), as a user moves between pages in one session: the
  browser keeps its loaded scripts and the session its state; median of ``repeats`` switches;
- ``idle_cpu_s_per_s``: CPU seconds the server process used per second of wall time while one tab
  shows the Models page and nothing runs, measured over ``idle_seconds``.

Run ``python -m core bench pages [--json]`` with a ``PM_HOME`` that holds data and a trained champion.
Chromium is Debian's (``/usr/bin/chromium``, override with ``PM_CHROMIUM``), driven by Playwright.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.results import Figure
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PAGES = ("home", "data", "fleet", "engine", "drift", "models")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SETTLED_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') === 'running') return false;
  const busy = document.querySelector('[data-testid="stSpinner"], [data-testid="stSkeleton"]');
  return !busy && !!document.querySelector('[data-testid="stMain"] h1');
}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the page benchmark."""
    parser.add_argument("--pages", nargs="+", default=list(PAGES), choices=PAGES, help="pages to time")
    parser.add_argument("--repeats", type=int, default=3, help="warm visits per page (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle Models page window (default 20 s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one page (default 120)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float, log: Path | None = None) -> None:
    """Wait until the dashboard at `url` answers its health check; UserError (with the end of its `log`, when
    given) if it exits first or does not answer within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = f": {log.read_text()[-500:]}" if log is not None else " before answering."
            raise UserError(f"The dashboard exited with code {proc.returncode}{tail}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise UserError(f"The dashboard did not answer within {timeout_s:.0f} s.")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (its threads included) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settle(page: Any, timeout_s: float) -> None:
    page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000, polling=100)
    page.wait_for_timeout(300)
    page.wait_for_function(SETTLED_JS, timeout=timeout_s * 1000, polling=100)


def _switch(page: Any, name: str, timeout_s: float) -> float:
    """Seconds from clicking page `name`'s sidebar link until another page's title is replaced by its own
    and it has settled."""
    before = page.inner_text('[data-testid="stMain"] h1')
    started = time.perf_counter()
    page.click(f'[data-testid="stSidebarNav"] a:has-text("{name.capitalize()}")')
    page.wait_for_function("""(before) => {
      const h1 = document.querySelector('[data-testid="stMain"] h1');
      return !!h1 && h1.innerText !== before;
    }""", arg=before, timeout=timeout_s * 1000, polling=50)
    _settle(page, timeout_s)
    return time.perf_counter() - started - 0.3


def _visit(page: Any, url: str, timeout_s: float) -> float:
    started = time.perf_counter()
    page.goto(url, wait_until="commit")
    _settle(page, timeout_s)
    return time.perf_counter() - started - 0.3


def _switches(page: Any, url: str, args: argparse.Namespace) -> dict[str, float]:
    """Median seconds of switching to each timed page through the sidebar, from the page before it."""
    times: dict[str, list[float]] = {name: [] for name in args.pages}
    for _ in range(args.repeats):
        for name in args.pages:
            before = PAGES[PAGES.index(name) - 1]
            _visit(page, f"{url}/{'' if before == 'home' else before}", args.timeout)
            times[name].append(_switch(page, name, args.timeout))
    return {name: round(statistics.median(values), 2) for name, values in times.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the dashboard, time the first page, every page warm, and the idle Models page's CPU."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PM_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise UserError(f"Chromium is not at {chromium}: install it (apt-get install chromium) or set PM_CHROMIUM.")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    started = time.perf_counter()
    proc = _start_server(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _wait_healthy(url, proc, args.timeout)
            healthy_s = time.perf_counter() - started
            page.goto(url, wait_until="commit")
            page.wait_for_selector('[data-testid="stMain"] h1', timeout=args.timeout * 1000)
            first_content_s = time.perf_counter() - started
            after_open_s = first_content_s - healthy_s
            _settle(page, args.timeout)
            first_settled_s = time.perf_counter() - started - 0.3
            first_visit = {name: round(_visit(page, f"{url}/{'' if name == 'home' else name}", args.timeout), 2)
                           for name in args.pages}
            settle = {}
            for name in args.pages:
                times = [_visit(page, f"{url}/{'' if name == 'home' else name}", args.timeout)
                         for _ in range(args.repeats)]
                settle[name] = round(statistics.median(times), 2)
            switch = _switches(page, url, args)
            _visit(page, f"{url}/models", args.timeout)
            page.wait_for_timeout(2000)
            cpu_before, wall_before = _cpu_seconds(proc.pid), time.perf_counter()
            page.wait_for_timeout(args.idle_seconds * 1000)
            idle_cpu = (_cpu_seconds(proc.pid) - cpu_before) / (time.perf_counter() - wall_before)
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "server_healthy_s": round(healthy_s, 2), "first_content_s": round(first_content_s, 2),
        "first_content_after_open_s": round(after_open_s, 2),
        "first_settled_s": round(first_settled_s, 2), "first_visit_s": first_visit, "settle_s": settle,
        "switch_s": switch,
        "repeats": args.repeats, "idle_seconds": args.idle_seconds, "idle_cpu_s_per_s": round(idle_cpu, 4),
    }


def render(result: dict[str, Any]) -> str:
    """A table of settle times, then the start-up and idle figures."""
    lines = [f"machine: {result['machine']}",
             f"{'page':<8} {'first visit s':>13} {'warm median s':>14} {'sidebar switch s':>17}"]
    for name, seconds in result["settle_s"].items():
        lines.append(f"{name:<8} {result['first_visit_s'][name]:>13.2f} {seconds:>14.2f} "
                     f"{result['switch_s'][name]:>17.2f}")
    lines.append(f"server healthy after {result['server_healthy_s']:.2f} s; first page content after "
                 f"{result['first_content_s']:.2f} s ({result['first_content_after_open_s']:.2f} s after the browser opened "
                 f"it), settled after {result['first_settled_s']:.2f} s (from start)")
    lines.append(f"idle Models page: {result['idle_cpu_s_per_s']:.4f} CPU-s per s over {result['idle_seconds']:.0f} s")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """Issue 12's figures in Chromium: the first page's content after the browser opened it (target 2 s), each
    page's warm visit (target 3 s), the idle Models page's CPU (target 0.05 CPU-s per s); and each page's first
    visit after a start, which has no target."""
    start = [Figure("pages.first_content_after_open_s", "First page's content after the browser opened it",
                    result["first_content_after_open_s"], "s", target=2.0)]
    first = [Figure(f"pages.{name}.first_s", f"{name.title()} page, first visit after a start", value, "s")
             for name, value in result["first_visit_s"].items()]
    warm = [Figure(f"pages.{name}.warm_s", f"{name.title()} page, warm visit (median)", value, "s", target=3.0)
            for name, value in result["settle_s"].items()]
    idle = [Figure("pages.idle_cpu_s_per_s", "Idle Models page, server CPU per second", result["idle_cpu_s_per_s"],
                   "CPU-s/s", target=0.05)]
    return start + first + warm + idle

"""Browser sessions for :mod:`bench.stress` (``--browsers N``): the threads run inside a dashboard server.

The server is ``python app.py`` on a free loopback port, started through :func:`bench.stress.serve` so the
threads run in its process; meanwhile N headless Chromium sessions (Playwright on Debian's
``/usr/bin/chromium``, or ``PM_CHROMIUM``) each upload the benchmark's training or test slice on the Data
page and press Load, again and again. A session's load ends in "Loaded ..." (or in the file then shown as
already loaded: the success line can come and go between two looks), in a sentence shown on the page
(counted as a refusal), or in a traceback (a Streamlit exception element, the word "Traceback", or no
outcome within 90 s). The server's own log is searched for tracebacks as well.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench import pages as page_bench
from bench import stress
from core import config
from core.errors import UserError

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
_START_TIMEOUT_S = 120.0
_STEP_TIMEOUT_S = 90.0


def _alerts(page: Any) -> list[str]:
    return [text.strip() for text in page.get_by_test_id("stAlertContent").all_inner_texts()]


def _load_once(page: Any, url: str, upload: Path) -> None:
    """Upload `upload` on the Data page and press Load; UserError with the page's sentence when refused."""
    page.goto(f"{url}/data")
    uploader = page.locator("input[type=file]").first
    uploader.wait_for(state="attached")
    uploader.set_input_files(str(upload))
    button = page.get_by_role("button", name=re.compile(r"^Load \d+ file"))
    button.or_(page.get_by_text("Nothing new to load")).first.wait_for()
    if not button.count():
        errors = [t for t in _alerts(page) if upload.name in t]
        raise UserError(" / ".join(errors) or page.get_by_text("Nothing new to load").first.inner_text().strip())
    before = set(_alerts(page))
    button.click()
    deadline = time.monotonic() + _STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        if page.get_by_test_id("stException").count() or page.get_by_text("Traceback").count():
            raise RuntimeError("the Data page showed an exception: " + page.inner_text("body")[:500])
        if page.get_by_text(re.compile(r"^Loaded \d+ datasets")).count():
            return
        new = [t for t in _alerts(page) if t not in before and not t.startswith("Nothing new to load")]
        if not new and not button.count() and page.get_by_text("Nothing new to load").count():
            return  # the rerun after the load already shows the file as loaded (its success line came and went)
        if new and not page.get_by_test_id("stProgress").count():
            raise UserError(" / ".join(new))
        time.sleep(0.2)
    raise RuntimeError(f"the Data page gave no outcome within {_STEP_TIMEOUT_S:.0f} s; it shows: "
                       + page.inner_text("body")[-1500:])


def _session(url: str, uploads: list[Path], stop_at: float, tally: stress.Tally) -> None:
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("PM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(_STEP_TIMEOUT_S * 1000)
        k = 0
        while time.monotonic() < stop_at:
            upload = uploads[k % len(uploads)]
            tally.run("browser load", lambda u=upload: _load_once(page, url, u))
            k += 1
        browser.close()


def run(scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Serve the dashboard on `scratch`'s home with the threads inside it, drive the browser sessions, report."""
    port = page_bench._free_port()
    url = f"http://127.0.0.1:{port}"
    server_args = ["--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
                   "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    log = scratch / "server.log"
    plan = json.dumps([str(scratch), args.seconds, args.threads, args.seed, server_args])
    with log.open("w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import json, sys; from bench import stress; stress.serve(*json.loads(sys.argv[1]))",
             plan], cwd=config.REPO_ROOT, env=dict(os.environ), stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True)
    tally = stress.Tally()
    try:
        page_bench._wait_healthy(url, proc, _START_TIMEOUT_S, log)
        (scratch / "go").touch()
        stop_at = time.monotonic() + args.seconds
        uploads = [scratch / "files" / "train_FD001.txt", scratch / "files" / "test_FD001.txt"]
        sessions = [threading.Thread(target=_session, args=(url, uploads[k % 2:] + uploads[:k % 2], stop_at, tally))
                    for k in range(args.browsers)]
        for session in sessions:
            session.start()
        for session in sessions:
            session.join()
        done = scratch / "threads.json"
        deadline = time.monotonic() + args.seconds + 300
        while not done.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        if not done.exists():
            raise UserError(f"The server's threads did not report; its log ends: {log.read_text()[-500:]}")
        result = json.loads(done.read_text())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    server_log = log.read_text()
    first = server_log.find("Traceback")
    result["browsers"] = {
        "sessions": args.browsers, "operations": dict(tally.done), "refusals": dict(tally.refusals.most_common()),
        "tracebacks": len(tally.tracebacks), "first_tracebacks": tally.tracebacks[:3],
        "seconds_p50": {k: round(sorted(v)[len(v) // 2], 3) for k, v in tally.seconds.items()},
    }
    result["server_log_tracebacks"] = server_log.count("Traceback")
    result["server_log_first_traceback"] = server_log[first:first + 3000] if first >= 0 else ""
    return result

"""Benchmark: the Drift page on a large fleet in headless Chromium (issue 26 item 3, issue 28 item 4).

- ``background_s``: from the server's start until its watcher has kept the default comparison
  (``$PM_HOME/drift/default.json`` holds the key of the current data; 0 when it was already current);
- ``first_visit_s``: the first visit of the Drift page after that start, until the script has finished and no
  spinner is left (the default comparison is read, not computed);
- ``change_s``: choosing the fleet dataset as the current data, until the page has settled again;
- ``history_s``: the same change, until the drift-over-time chart shows its points (it settles with the page);
- ``change_back_s``: choosing the default current dataset again (cached by then).

The fleet is ``--dataset`` (default ``synthetic_fleet``, as ``python -m core bench scale`` loads it); it is made with
``python -m core synth --engines N`` and loaded when missing. Run ``python -m core bench drift [--json]`` with a
``PM_HOME`` holding the C-MAPSS files (and, for prediction drift, a trained champion).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.pages import CHROMIUM_FLAGS, _free_port, _settle, _start_server, _wait_healthy
from bench.results import Figure, machine
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
HISTORY_JS = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')].find(
        p => p.layout && p.layout.title && String(p.layout.title.text).includes('Drift share per'));
    return !!plot && plot.data[0].x.length > 0;
}"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the drift page benchmark."""
    parser.add_argument("--engines", type=int, default=20_000, help="engines of the fleet made when missing")
    parser.add_argument("--dataset", default="synthetic_fleet", help="the fleet dataset (default synthetic_fleet)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one step (default 300)")


def _cli(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"python -m core {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def _ensure_fleet(dataset: str, engines: int) -> int:
    """Make and load the fleet when the store lacks it; its engine count."""
    from core.data import queries, store

    with store.connect(read_only=True) as con:
        found = queries.find_dataset(con, dataset)
    if found is None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "fleet.parquet"
            _cli(["synth", "--engines", str(engines), "--seed", "0", "--out", str(path)])
            _cli(["ingest", str(path), "--role", "fleet", "--dataset", dataset])
        with store.connect(read_only=True) as con:
            found = queries.get_dataset(con, dataset)
    return int(found["engines"])


def _kept_default() -> str | None:
    """The default current dataset when the kept default comparison is the one for the store and model as they are
    now, else None."""
    from core.data import queries, store
    from core.monitoring import default_drift
    from core.operations import registry

    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con)
    version = registry.champion_version()
    training = registry.training_datasets(version, registry.MODEL_NAME) if version is not None else []
    choice = default_drift.default_choice(listing, training, version)
    if choice is None or default_drift.load(default_drift.key(listing, choice)) is None:
        return None
    return choice.current


def _choose(page: Any, label: str, option: str) -> None:
    page.get_by_role("combobox", name=label).click()
    page.get_by_role("option", name=option, exact=True).click()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the dashboard, wait for the kept default comparison, time the first visit and two changes."""
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PM_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise UserError(f"Chromium is not at {chromium}: install it (apt-get install chromium) or set PM_CHROMIUM.")
    engines = _ensure_fleet(args.dataset, args.engines)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_server(port)
    try:
        _wait_healthy(url, proc, args.timeout)
        started = time.perf_counter()
        deadline = started + args.timeout
        while (default := _kept_default()) is None:
            if time.perf_counter() > deadline:
                raise UserError(f"The server did not keep the default drift comparison within {args.timeout:.0f} s.")
            time.sleep(0.5)
        background_s = time.perf_counter() - started
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(args.timeout * 1000)
            begin = time.perf_counter()
            page.goto(f"{url}/drift", wait_until="commit")
            _settle(page, args.timeout)
            first_visit_s = time.perf_counter() - begin - 0.3
            begin = time.perf_counter()
            _choose(page, "Current", args.dataset)
            page.wait_for_function(HISTORY_JS, timeout=args.timeout * 1000, polling=100)
            history_s = time.perf_counter() - begin
            _settle(page, args.timeout)
            change_s = time.perf_counter() - begin - 0.3
            begin = time.perf_counter()
            _choose(page, "Current", default)
            _settle(page, args.timeout)
            change_back_s = time.perf_counter() - begin - 0.3
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return {"machine": machine(), "load_1m": round(os.getloadavg()[0], 2), "engines": engines,
            "dataset": args.dataset, "background_s": round(background_s, 2), "first_visit_s": round(first_visit_s, 2),
            "change_s": round(change_s, 2), "history_s": round(history_s, 2), "change_back_s": round(change_back_s, 2)}


def render(result: dict[str, Any]) -> str:
    """The timings, one per line."""
    return "\n".join([
        (f"machine: {result['machine']} (load {result['load_1m']}); fleet {result['dataset']} of "
        f"{result['engines']:,} engines"),
        f"default comparison kept by the server after its start: {result['background_s']:.2f} s",
        f"Drift page, first visit after the start: {result['first_visit_s']:.2f} s",
        f"current -> the fleet: settled {result['change_s']:.2f} s, drift-over-time chart {result['history_s']:.2f} s",
        f"current -> the default again: {result['change_back_s']:.2f} s",
    ])


def figures(result: dict[str, Any]) -> list[Figure]:
    """Issue 26's and 28's targets: first visit within 3 s, a change within 2 s, the drift-over-time chart within
    3 s, at 20,000 engines."""
    return [
        Figure("drift.first_visit_s", "Drift page, first visit after a start (20,000-engine fleet loaded)",
               result["first_visit_s"], "s", target=3.0),
        Figure("drift.change_s", "Drift page, current changed to the 20,000-engine fleet", result["change_s"], "s",
               target=2.0),
        Figure("drift.history_s", "Drift over time chart of the 20,000-engine fleet", result["history_s"], "s",
               target=3.0),
        Figure("drift.change_back_s", "Drift page, current changed back to the default", result["change_back_s"],
               "s", target=2.0),
    ]

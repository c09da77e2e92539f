"""Benchmark: the Plan page with a large fleet in headless Chromium (issue 27: settles within 3 s at 20,000 engines).

In a scratch ``PM_HOME`` (a copy of ``--model-home``, which holds a champion): a synthetic fleet of ``--engines``
engines (``python -m core synth``, loaded with ``python -m core ingest``) is scored by the background scoring job,
as the app scores it. Then the dashboard (``python app.py``) runs and Chromium, in one tab:

- ``first_visit_s``: opens the Plan page once (a new session: the default 8 weeks and 5 slots, the plan computed
  for the first time in this server);
- ``warm_s``: opens it again ``--repeats`` times (new sessions, the same plan cached by the store's stamp): median;
- ``new_plan_s``: in that session sets the horizon to ``--weeks`` weeks and the slots to ``--slots``, then changes
  the slots by one ``--repeats`` times (each a plan not computed before): median seconds from the change until the
  page has settled, i.e. the whole plan of every engine over ``--weeks`` weeks plus drawing it;
- ``revisit_s``: sets back slot counts planned before (cached plans): median.

Settled as in ``bench pages``: the script run finished and no spinner or skeleton left (0.3 s confirmation not
counted). Run ``python -m core bench plan_page --model-home HOME [--json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import pages as page_bench
from bench import scale
from bench.results import Figure
from core import config
from core.errors import UserError

TARGET_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the Plan page benchmark."""
    parser.add_argument("--engines", type=int, default=20_000, help="engines in the synthetic fleet (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet (default 0)")
    parser.add_argument("--model-home", type=Path, required=True,
                        help="a PM_HOME holding a champion; it is copied, not changed")
    parser.add_argument("--weeks", type=int, default=26, help="horizon set on the page (default 26)")
    parser.add_argument("--slots", type=int, default=800, help="slots per week set on the page (default 800)")
    parser.add_argument("--repeats", type=int, default=3, help="warm visits and slot changes (default 3)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the page (default 180)")


def _set_number(page: Any, label: str, value: int, timeout_s: float) -> float:
    """Type `value` into the number input labelled `label`; seconds until the page has settled again."""
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    started = time.perf_counter()
    box.press("Enter")
    page.wait_for_function("""() => {
      const app = document.querySelector('[data-testid="stApp"]');
      return !!app && app.getAttribute('data-test-script-state') === 'running';
    }""", timeout=timeout_s * 1000, polling=20)
    page_bench._settle(page, timeout_s)
    return time.perf_counter() - started - 0.3


def _browse(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PM_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise UserError(f"Chromium is not at {chromium}: install it (apt-get install chromium) or set PM_CHROMIUM.")
    port = page_bench._free_port()
    url = f"http://127.0.0.1:{port}"
    proc = page_bench._start_server(port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=page_bench.CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page_bench._wait_healthy(url, proc, args.timeout)
            page_bench._visit(page, url, args.timeout)
            first = page_bench._visit(page, f"{url}/plan", args.timeout)
            warm = [page_bench._visit(page, f"{url}/plan", args.timeout) for _ in range(args.repeats)]
            _set_number(page, "Horizon (weeks)", args.weeks, args.timeout)
            _set_number(page, "Shop slots per week", args.slots, args.timeout)
            new = [_set_number(page, "Shop slots per week", args.slots + k, args.timeout)
                   for k in range(1, args.repeats + 1)]
            again = [_set_number(page, "Shop slots per week", args.slots + k, args.timeout)
                     for k in range(args.repeats)]
            planned = page.inner_text('[data-testid="stMetric"]:has-text("Planned within the horizon")')
            browser.close()
        peak = scale._hwm_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return {"first_visit_s": round(first, 2), "warm_s": round(statistics.median(warm), 2),
            "new_plan_s": round(statistics.median(new), 2), "new_plan_each_s": [round(s, 2) for s in new],
            "revisit_s": round(statistics.median(again), 2), "planned_metric": planned.replace("\n", " "),
            "server_peak_rss_mb": round(peak or 0.0, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The fleet loaded and scored in a copy of ``--model-home``, then the Plan page timed (see the module doc)."""
    if not args.model_home.is_dir():
        raise UserError(f"{args.model_home} is not a folder; give a PM_HOME with a trained champion.")
    scratch = Path(tempfile.mkdtemp(prefix="pm-plan-page-"))
    home = Path(shutil.copytree(args.model_home, scratch / "home"))
    scratch_env = {"PM_HOME": str(home), "PM_MAX_FILE_MB": "4096", "PM_DUCKDB": None, "MLFLOW_TRACKING_URI": None}
    load_before = os.getloadavg()
    steps: dict[str, Any] = {}
    try:
        with config.environment(scratch_env):
            fleet_file = scratch / f"{scale.DATASET}.parquet"
            steps["synth"] = scale._cli(["synth", "--engines", str(args.engines), "--seed", str(args.seed),
                                         "--out", str(fleet_file), "--json"])
            steps["ingest"] = scale._cli(["ingest", str(fleet_file), "--json"])
            steps["score_full"] = scale._scoring_job()
            page = _browse(args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "engines": args.engines, "weeks": args.weeks, "slots": args.slots, "repeats": args.repeats, "steps": steps,
        "page": page, "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def render(result: dict[str, Any]) -> str:
    """The page's times, one per line."""
    page = result["page"]
    return "\n".join([
        (f"machine: {result['machine']}; {result['engines']:,} engines (scored in {result['steps']['score_full']['s']} "
        f"s); load average before {result['load_average_before']}, after {result['load_average_after']}"),
        f"Plan page, first visit (8 weeks, 5 slots, plan computed): {page['first_visit_s']} s",
        f"Plan page, warm visit (plan cached), median of {result['repeats']}: {page['warm_s']} s",
        (f"{result['weeks']} weeks, a new slot count (a new plan of every engine), median: {page['new_plan_s']} s "
        f"({page['new_plan_each_s']})"),
        f"{result['weeks']} weeks, a slot count planned before, median: {page['revisit_s']} s",
        f"last page: {page['planned_metric']}; server peak RSS {page['server_peak_rss_mb']} MB",
    ])


def figures(result: dict[str, Any]) -> list[Figure]:
    """The Plan page at the fleet size: warm visit, a new plan over the set horizon, and the first visit."""
    page, n, w = result["page"], f"{result['engines']:,}", result["weeks"]
    return [
        Figure("plan_page.warm_s", f"Plan page warm visit, {n} engines (Chromium)", page["warm_s"], "s", TARGET_S),
        Figure("plan_page.new_plan_s", f"Plan page after a slot change, {n} engines x {w} weeks (new plan, Chromium)",
               page["new_plan_s"], "s", TARGET_S),
        Figure("plan_page.first_visit_s", f"Plan page first visit, {n} engines (Chromium)", page["first_visit_s"],
               "s"),
    ]

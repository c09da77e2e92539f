"""Benchmark: a synthetic fleet of N engines end to end (issue 15), each step timed with its peak memory.

Steps, in a scratch ``PM_HOME`` (a copy of ``--model-home``, which holds a champion):

- ``synth``: ``python -m core synth --engines N`` writes the fleet as Parquet;
- ``ingest``: ``python -m core ingest`` loads it (role fleet);
- ``score_full``: the background scoring job (:mod:`core.operations.scoring_job`, started as the app starts
  it) scores every engine; ``score_full_s`` is the job's wall time (process start, imports and model load
  included), ``scoring_s`` the time its scoring loop took;
- ``append`` and ``score_incremental``: one more cycle for ``--append-engines`` engines is appended
  (``python -m core ingest --dataset``), then the scoring job scores those engines again (a fresh process:
  the path a CLI user without a running server takes);
- ``pages``: the dashboard (``python app.py``) in headless Chromium: Fleet, one Engine (``ESN-000123``) and
  Drift, first visit and the median of ``--repeats`` warm visits (settled as in ``bench pages``);
- ``score_in_server``: with that server running and warm, one more cycle for the same engines is appended
  with the CLI; ``s`` is the time from the end of that command until the server has stored their new
  scores (read through ``GET /api/v1/engines/...`` for the first and the last engine, every 50 ms), which
  includes the server noticing the change (its watcher looks every second).

Peak RSS: of each CLI step and each job (its ``VmHWM``, sampled every 50 ms while it runs) and of the
dashboard server after the page visits (``VmHWM``). Run
``python -m core bench scale --engines 20000 --model-home HOME [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import pages as page_bench
from core import config
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DATASET = "synthetic_fleet"
ENGINE = "ESN-000123"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the scale benchmark."""
    parser.add_argument("--engines", type=int, default=20_000, help="engines in the synthetic fleet (default 20000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic fleet (default 0)")
    parser.add_argument("--model-home", type=Path, required=True,
                        help="a PM_HOME holding a champion (e.g. trained on train_FD001..4); it is copied, not changed")
    parser.add_argument("--append-engines", type=int, default=100, help="engines given one more cycle (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="warm visits per page (default 3)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for one page (default 180)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch home (its path is in the result)")


def _hwm_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a running process, MB; None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _cli(args: list[str]) -> dict[str, float]:
    """Run ``python -m core <args>``; its wall seconds and peak RSS (MB, its VmHWM sampled every 50 ms).
    UserError with its message on failure."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "core", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _hwm_mb(proc.pid) or 0.0)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        err = proc.stderr.read().decode().strip() if proc.stderr else ""
        raise UserError(f"'python -m core {' '.join(args)}' failed: {err.splitlines()[-1] if err else proc.returncode}")
    return {"s": round(seconds, 2), "peak_rss_mb": round(peak, 1)}


def _scoring_job() -> dict[str, Any]:
    """Start the scoring job as the app does, wait for it; its wall time, scoring time, engines and peak RSS."""
    from core.operations import jobs, scoring_job

    started = time.perf_counter()
    job = scoring_job.start(created_by="bench scale")
    if job is None:
        raise UserError("The scoring job found nothing to score.")
    peak = 0.0
    while not (record := jobs.get(job.id)).finished:
        peak = max(peak, _hwm_mb(job.pid) or 0.0) if job.pid else peak
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if record.state != "succeeded":
        raise UserError(f"The scoring job {job.id} {record.state}: {record.error}")
    return {"s": round(seconds, 2), "scoring_s": record.result.get("seconds"), "engines": record.result["engines"],
            "batches": record.result["batches"], "peak_rss_mb": round(peak, 1)}


def _append_one_cycle(home: Path, engines: int) -> Path:
    """A CSV with one more cycle (the last reading repeated) for the first `engines` engines of the fleet."""
    from core.data import store
    from core.data.cmapss import COLUMNS
    from core.data.sensors import mnemonic

    columns = ", ".join(f"r.{c}" for c in COLUMNS[2:])
    with store.connect(read_only=True) as con:
        frame = con.execute(
            f"SELECT e.engine, r.cycle + 1 AS cycle, {columns} FROM readings r JOIN engines e ON e.dataset_id = "
            "r.dataset_id AND e.unit = r.unit JOIN datasets d ON d.id = r.dataset_id WHERE d.name = ? AND r.unit <= ? "
            "QUALIFY row_number() OVER (PARTITION BY r.unit ORDER BY r.cycle DESC) = 1 ORDER BY r.unit",
            [DATASET, engines]).df()
    frame.columns = ["engine", "cycle", *[mnemonic(c) for c in COLUMNS[2:]]]
    path = home / "next_cycle.csv"
    frame.to_csv(path, index=False)
    return path


def _latest_cycle(url: str, token: str, engine: str) -> int | None:
    """The cycle of an engine's latest stored prediction, read through the server's API."""
    request = urllib.request.Request(f"{url}/api/v1/engines/{DATASET}/{engine}",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        latest = json.load(response)["latest_prediction"]
    return None if latest is None else int(latest["cycle"])


def _score_in_server(url: str, token: str, appended: Path, timeout_s: float) -> dict[str, Any]:
    """Append `appended` with the CLI while the server runs; seconds until the server stored the new scores."""
    import pandas as pd

    frame = pd.read_csv(appended)
    firsts = frame.iloc[[0, -1]]
    appended_step = _cli(["ingest", str(appended), "--dataset", DATASET, "--json"])
    started = time.perf_counter()
    while any(_latest_cycle(url, token, str(row.engine)) != int(row.cycle) for row in firsts.itertuples()):
        if time.perf_counter() - started > timeout_s:
            raise UserError(f"The server did not score the appended engines within {timeout_s:.0f} s.")
        time.sleep(0.05)
    return {"s": round(time.perf_counter() - started, 2), "engines": len(frame), "append_s": appended_step["s"]}


def _pages(args: argparse.Namespace, appended: Path) -> dict[str, Any]:
    """Fleet, Engine and Drift in headless Chromium: first visit and warm median; then scoring in the server
    after a CLI append of `appended`; the server's peak RSS."""
    from playwright.sync_api import TimeoutError as PageTimeout
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("PM_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        raise UserError(f"Chromium is not at {chromium}: install it (apt-get install chromium) or set PM_CHROMIUM.")
    port = page_bench._free_port()
    url = f"http://127.0.0.1:{port}"
    targets = {"fleet": f"{url}/fleet", "engine": f"{url}/engine?dataset={DATASET}&engine={ENGINE}",
               "drift": f"{url}/drift"}
    token = secrets.token_urlsafe(24)
    with config.environment({"PM_API_TOKEN": token}):
        proc = page_bench._start_server(port)
    first: dict[str, float | None] = {}
    warm: dict[str, float | None] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=page_bench.CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page_bench._wait_healthy(url, proc, args.timeout)
            page_bench._visit(page, url, args.timeout)
            for name, target in targets.items():
                try:
                    first[name] = round(page_bench._visit(page, target, args.timeout), 2)
                    warm[name] = round(statistics.median(page_bench._visit(page, target, args.timeout)
                                                         for _ in range(args.repeats)), 2)
                except PageTimeout:
                    first.setdefault(name, None)
                    warm[name] = None
            browser.close()
        in_server = _score_in_server(url, token, appended, args.timeout)
        server_peak = _hwm_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return {"first_visit_s": first, "settle_s": warm, "score_in_server": in_server,
            "server_peak_rss_mb": round(server_peak or 0.0, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every step on a copy of ``--model-home``; times, peak RSS and the machine's load average."""
    if not args.model_home.is_dir():
        raise UserError(f"{args.model_home} is not a folder; give a PM_HOME with a trained champion.")
    scratch = Path(tempfile.mkdtemp(prefix="pm-scale-"))
    home = Path(shutil.copytree(args.model_home, scratch / "home"))
    scratch_env = {"PM_HOME": str(home), "PM_MAX_FILE_MB": "4096", "PM_DUCKDB": None, "MLFLOW_TRACKING_URI": None}
    load_before = os.getloadavg()
    steps: dict[str, Any] = {}
    try:
        with config.environment(scratch_env):
            fleet_file = scratch / f"{DATASET}.parquet"
            steps["synth"] = _cli(["synth", "--engines", str(args.engines), "--seed", str(args.seed),
                                   "--out", str(fleet_file), "--json"])
            steps["ingest"] = _cli(["ingest", str(fleet_file), "--json"])
            steps["score_full"] = _scoring_job()
            appended = _append_one_cycle(scratch, args.append_engines)
            steps["append"] = _cli(["ingest", str(appended), "--dataset", DATASET, "--json"])
            steps["score_incremental"] = _scoring_job()
            steps["pages"] = _pages(args, _append_one_cycle(scratch, args.append_engines))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "engines": args.engines, "seed": args.seed, "append_engines": args.append_engines, "steps": steps,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "scratch": str(scratch) if args.keep else None,
    }


def render(result: dict[str, Any]) -> str:
    """One line per step: seconds and peak RSS; then the page times."""
    steps = result["steps"]
    lines = [(f"machine: {result['machine']}; {result['engines']:,} engines; load average before "
             f"{result['load_average_before']}, after {result['load_average_after']}"),
             f"{'step':<18} {'s':>8} {'peak RSS MB':>12}"]
    for name in ("synth", "ingest", "score_full", "append", "score_incremental"):
        step = steps[name]
        extra = f"  (scoring loop {step['scoring_s']} s, {step['engines']:,} engines)" if "scoring_s" in step else ""
        lines.append(f"{name:<18} {step['s']:>8.2f} {step['peak_rss_mb']:>12.1f}{extra}")
    pages = steps["pages"]
    for name, seconds in pages["settle_s"].items():
        lines.append(f"page {name:<13} first {pages['first_visit_s'][name]} s, warm median {seconds} s")
    in_server = pages["score_in_server"]
    lines.append(f"scored in the server: {in_server['engines']:,} engines {in_server['s']} s after their append "
                 f"({in_server['append_s']} s)")
    lines.append(f"server peak RSS {pages['server_peak_rss_mb']} MB")
    return "\n".join(lines)

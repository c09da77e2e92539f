"""Benchmark: time to load all twelve C-MAPSS files into a fresh store (median of N fresh stores).

Run ``python -m core bench ingest [--data DIR] [--repeats 3] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from core import config
from core.data import ingest, store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ingest benchmark."""
    parser.add_argument("--data", default=None, help="folder with the twelve files (default PM_DATA_DIR or "
                                                     "<repo>/../shared/data/cmapss)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh stores to time (default 3)")


def _data_dir(value: str | None) -> Path:
    if value:
        return Path(value).expanduser().resolve()
    return config.data_dir() or (config.REPO_ROOT.parent / "shared" / "data" / "cmapss").resolve()


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the folder into `repeats` fresh stores (temporary PM_HOMEs); report wall and CPU time (all threads)."""
    folder = _data_dir(args.data)
    saved = os.environ.get("PM_HOME")
    timings: list[float] = []
    cpu: list[float] = []
    try:
        for _ in range(max(1, args.repeats)):
            with tempfile.TemporaryDirectory(prefix="pm-bench-") as home:
                os.environ["PM_HOME"] = home
                started, cpu_started = time.perf_counter(), time.process_time()
                summary = ingest.load([folder])
                timings.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
                with store.connect(read_only=True) as con:
                    (readings,) = store.first_row(con, "SELECT count(*) FROM readings") or (0,)
    finally:
        if saved is None:
            os.environ.pop("PM_HOME", None)
        else:
            os.environ["PM_HOME"] = saved
    return {
        "benchmark": "ingest all twelve C-MAPSS files into a fresh store",
        "data": str(folder),
        "files": len(summary.files),
        "readings": int(readings),
        "truth_rows": summary.truth_rows_added,
        "seconds": [round(t, 3) for t in timings],
        "median_s": round(statistics.median(timings), 3),
        "median_cpu_s": round(statistics.median(cpu), 3),
        "load_average": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
                   f"{platform.python_version()}",
    }


def render(result: dict[str, Any]) -> str:
    """The result as a small Markdown table."""
    rows = [
        ("files", result["files"]),
        ("readings", f"{result['readings']:,}"),
        ("truth rows", result["truth_rows"]),
        ("runs (s)", ", ".join(f"{t:.2f}" for t in result["seconds"])),
        ("median (s)", f"{result['median_s']:.2f}"),
        ("median CPU time (s)", f"{result['median_cpu_s']:.2f}"),
        ("1-min load average", result["load_average"]),
        ("machine", result["machine"]),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"Ingest benchmark: {result['benchmark']}", "", f"| {'metric'.ljust(width)} | value |",
             f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)

"""Benchmark: appends cost what they add (issue 26): engine files appended one after another to one dataset.

A synthetic fleet (``python -m core synth``) is cut into ``--parts`` Parquet files of ``--engines`` engines each
(whole engines, ids unique across files). In a scratch ``PM_HOME``, ``python -m core ingest FILE --dataset
appended`` loads them one after another: the first creates the dataset (the cost of a file into a new dataset),
each next one appends to it; the last append is compared with that first load. Each step is a fresh CLI process (what a user runs),
timed wall to wall. Run ``python -m core bench append [--engines 5000 --parts 4] [--json]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.results import Figure, machine
from core import config
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engines", type=int, default=5000, help="engines per file (default 5000)")
    parser.add_argument("--parts", type=int, default=4, help="files appended to one dataset (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="the synthetic fleet's seed (default 0)")


def _ingest(args: list[str]) -> float:
    """Wall seconds of ``python -m core ingest <args>``; UserError with its last line on failure."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", "ingest", *args, "--json"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [str(done.returncode)])[-1]
        raise UserError(f"'python -m core ingest {' '.join(args)}' failed: {last}")
    return round(time.perf_counter() - started, 2)


def _parts(scratch: Path, engines: int, parts: int, seed: int) -> list[tuple[Path, int]]:
    """The fleet cut into `parts` files of `engines` whole engines each: (path, readings) per file."""
    fleet = scratch / "fleet.parquet"
    done = subprocess.run([sys.executable, "-m", "core", "synth", "--engines", str(engines * parts), "--seed",
                           str(seed), "--out", str(fleet)], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"'python -m core synth' failed: {done.stderr.strip()}")
    table = pq.read_table(fleet)
    engine = table["engine"].cast(pa.string())
    ids = pc.unique(engine)
    files = []
    for k in range(parts):
        part = table.filter(pc.is_in(engine, value_set=ids[k * engines:(k + 1) * engines]))
        path = scratch / f"part{k + 1}.parquet"
        pq.write_table(part, path)
        files.append((path, part.num_rows))
    return files


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Each load's wall time, the last append against the first load (a new dataset), the machine's load."""
    if args.engines < 1 or args.parts < 2:
        raise UserError("Give at least 1 engine per file and at least 2 files.")
    scratch = Path(tempfile.mkdtemp(prefix="pm-append-"))
    load_before = os.getloadavg()
    try:
        with config.environment({"PM_HOME": str(scratch / "home"), "PM_MAX_FILE_MB": "4096", "PM_DUCKDB": None}):
            files = _parts(scratch, args.engines, args.parts, args.seed)
            steps = [{"file": k + 1, "readings": rows, "stored_before": sum(r for _, r in files[:k]),
                      "s": _ingest([str(path), "--dataset", "appended"])} for k, (path, rows) in enumerate(files)]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"machine": machine(), "engines_per_file": args.engines, "parts": args.parts, "seed": args.seed,
            "steps": steps,
            "last_append_ratio": round(steps[-1]["s"] / steps[0]["s"], 2),
            "all_files_s": round(sum(s["s"] for s in steps), 2),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


def render(result: dict[str, Any]) -> str:
    lines = [(f"{result['parts']} files of {result['engines_per_file']:,} engines into one dataset "
             f"({result['machine']}; load average before {result['load_average_before'][0]}, after "
             f"{result['load_average_after'][0]})"), "",
             "| file | readings | readings stored before | s |", "|---|---|---|---|"]
    lines += [f"| {s['file']} | {s['readings']:,} | {s['stored_before']:,} | {s['s']:.2f} |" for s in result["steps"]]
    lines += ["", (f"The last append took {result['last_append_ratio']:.2f} x the first load (a new dataset). All {result['parts']} files: {result['all_files_s']:.2f} s.")]
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    engines, parts = result["engines_per_file"], result["parts"]
    return [
        Figure("append_last_ratio", f"Appending {engines:,} engines to a dataset of {engines * (parts - 1):,}, "
               "against loading a file of that size as a new dataset", result["last_append_ratio"], "x", 1.5),
        Figure("append_all_files_s", f"{parts} files of {engines:,} engines into one dataset",
               result["all_files_s"], "s", 30.0),
    ]

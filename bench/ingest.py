"""Benchmark: load time and peak memory of ingest: the twelve C-MAPSS files, big fleet files, hostile files.

Run ``python -m core bench ingest [--data DIR] [--repeats 3] [--csv-mb 199] [--rows 4000000 --rows-format
parquet] [--hostile] [--json]``. The twelve files are loaded into `repeats` fresh stores in this process
(median time). Every other case runs in a fresh Python process (``python -c``, importing only ingest)
whose peak resident memory (``VmHWM``) is reported next to the same figure for a child that only
imports the code (the baseline). Big fleet files repeat the four training files with new engine ids and
readings perturbed by about 0.01 %; hostile files are built by :mod:`bench.hostile_files` at full size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import hostile_files
from bench.results import Figure
from core import config
from core.data import ingest, store
from core.data.cmapss import COLUMNS, SUBSETS
from core.errors import UserError

_CHILD_TIMEOUT_S = 1_800


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the ingest benchmark."""
    parser.add_argument("--data", default=None, help="folder with the twelve files (default PM_DATA_DIR or "
                                                     "<repo>/../shared/data/cmapss)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh stores to time (default 3)")
    parser.add_argument("--csv-mb", type=float, default=None, metavar="MB",
                        help="also load a headered fleet CSV of about MB megabytes, in a child process")
    parser.add_argument("--rows", type=int, default=None, metavar="N",
                        help="also load a fleet file of N readings (PM_MAX_FILE_MB raised for it), in a child")
    parser.add_argument("--rows-format", choices=["csv", "parquet"], default="parquet",
                        help="format of the --rows file (default parquet)")
    parser.add_argument("--hostile", action="store_true",
                        help="also refuse the full-size hostile files (zip bomb, 1,500-deep zip, lying member, ...)")


def _data_dir(value: str | None) -> Path:
    if value:
        return Path(value).expanduser().resolve()
    return config.data_dir() or (config.REPO_ROOT.parent / "shared" / "data" / "cmapss").resolve()


# ----------------------------------------------------------------------------- measured children


def child_main(sources: list[str]) -> None:
    """In a fresh child process: load `sources`; print the outcome, seconds and peak RSS as one JSON line."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {"readings": 0, "refusal": ""}
    if sources:
        try:
            outcome["readings"] = ingest.load(sources).readings_added
        except UserError as err:
            outcome["refusal"] = str(err)
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    outcome["peak_rss_mb"] = round(peak_rss_kb() / 1024)
    print(json.dumps(outcome))


def peak_rss_kb() -> int:
    """This process's peak resident memory: ``VmHWM`` (of this program, not of the process it was forked from, which
    ``ru_maxrss`` would include after a fork and exec), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(sources: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Load `sources` in a fresh Python process with a fresh PM_HOME (plus `env`); its outcome and peak RSS."""
    code = "import sys; from bench.ingest import child_main; child_main(sys.argv[1:])"
    with tempfile.TemporaryDirectory(prefix="pm-bench-home-") as home:
        done = subprocess.run([sys.executable, "-c", code, *sources], cwd=config.REPO_ROOT,
                              env={**os.environ, "PM_HOME": home, **(env or {})}, capture_output=True, text=True,
                              timeout=_CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"The measured load of {', '.join(sources)} failed: {last}.")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- big fleet files


def _training_frames(folder: Path) -> list[pd.DataFrame]:
    frames = []
    for subset in SUBSETS:
        path = next(p for p in (folder / f"train_{subset}.txt.gz", folder / f"train_{subset}.txt") if p.exists())
        frame = pd.read_csv(path, sep=r"\s+", header=None, names=COLUMNS)
        frame["unit"] = frame["unit"].map(lambda u, s=subset: f"{s}-{u}")
        frames.append(frame)
    return frames


def _fleet_parts(folder: Path, rows: int, seed: int = 7):
    """Frames of whole engines, ``rows`` readings in all (about), each repetition with new ids and perturbed values."""
    base = pd.concat(_training_frames(folder), ignore_index=True).rename(columns={"unit": "engine"})
    rng = np.random.default_rng(seed)
    values = COLUMNS[5:]
    done, repetition = 0, 0
    while done < rows:
        part = base.copy()
        part["engine"] = part["engine"] + f"-r{repetition}"
        part[values] = (part[values] * (1 + rng.normal(0, 1e-4, (len(part), len(values))))).round(4)
        if done + len(part) > rows:
            cut = part.iloc[: rows - done]
            yield cut[cut["engine"] != part["engine"].iloc[rows - done]]
            return
        done += len(part)
        repetition += 1
        yield part


def write_fleet(folder: Path, out: Path, rows: int) -> Path:
    """A headered CSV or Parquet (by `out`'s suffix) of about `rows` readings, written a part at a time."""
    if out.suffix == ".parquet":
        writer = None
        for part in _fleet_parts(folder, rows):
            table = pa.Table.from_pandas(part, preserve_index=False)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        return out
    with out.open("w") as handle:
        for n, part in enumerate(_fleet_parts(folder, rows)):
            part.to_csv(handle, index=False, header=n == 0)
    return out


def _csv_rows_for(megabytes: float, folder: Path) -> int:
    sample = next(_fleet_parts(folder, 20_000))
    bytes_per_row = len(sample.to_csv(index=False).encode()) / len(sample)
    return int(megabytes * 2**20 / bytes_per_row)


# ----------------------------------------------------------------------------- hostile files


def _hostile_cases(folder: Path, data: Path) -> list[tuple[str, Path]]:
    text = gzip.decompress((data / "train_FD001.txt.gz").read_bytes()) if (data / "train_FD001.txt.gz").exists() \
        else (data / "train_FD001.txt").read_bytes()
    lines = text.decode().splitlines()
    values = [float(v) for v in lines[0].split()[2:]]
    return [
        ("zip bomb: 4 valid members of 185 MB", hostile_files.zip_bomb(folder, 4, 185 * 2**20, values)),
        ("zip nested 1,500 deep", hostile_files.deep_zip(folder, 1500, "train_FD001.txt", text)),
        ("member declaring 1 KB, inflating to 800 MB", hostile_files.lying_zip(folder, 800 * 2**20, 1024)),
        ("zip of 100,000 entries", hostile_files.many_entries_zip(folder, 100_000)),
        ("text named .zip", hostile_files.not_a_zip(folder)),
        ("truncated gzip (train_FD001)", hostile_files.truncated_gzip(folder, text)),
        ("Parquet with a true/false sensor", hostile_files.boolean_parquet(folder, lines)),
        ("Parquet with date cycles", hostile_files.datetime_cycle_parquet(folder, lines)),
        ("Excel BOM CSV (train_FD001, loads)", hostile_files.bom_csv(folder, lines)),
    ]


# ----------------------------------------------------------------------------- run


def _twelve_files(folder: Path, repeats: int) -> dict[str, Any]:
    saved = os.environ.get("PM_HOME")
    timings: list[float] = []
    cpu: list[float] = []
    try:
        for _ in range(max(1, repeats)):
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
    return {"files": len(summary.files), "readings": int(readings), "truth_rows": summary.truth_rows_added,
            "seconds": [round(t, 3) for t in timings], "median_s": round(statistics.median(timings), 3),
            "median_cpu_s": round(statistics.median(cpu), 3)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The twelve files in this process; big and hostile files each in a fresh child, with peak RSS."""
    folder = _data_dir(args.data)
    result: dict[str, Any] = {"benchmark": "ingest: the twelve C-MAPSS files, big fleet files, hostile files",
                              "data": str(folder), **_twelve_files(folder, args.repeats)}
    cases: list[dict[str, Any]] = [{"case": "baseline: a child that only imports", **measure([])},
                                   {"case": "the twelve C-MAPSS files", **measure([str(folder)])}]
    with tempfile.TemporaryDirectory(prefix="pm-bench-files-") as scratch:
        work = Path(scratch)
        if args.csv_mb:
            path = write_fleet(folder, work / "fleet_big.csv", _csv_rows_for(args.csv_mb, folder))
            cases.append({"case": f"headered CSV of {path.stat().st_size / 2**20:.0f} MB", **measure([str(path)])})
            path.unlink()
        if args.rows:
            path = write_fleet(folder, work / f"fleet_rows.{args.rows_format}", args.rows)
            size = path.stat().st_size / 2**20
            cases.append({"case": f"{args.rows:,}-reading {args.rows_format} ({size:.0f} MB)",
                          **measure([str(path)], {"PM_MAX_FILE_MB": str(int(size) + 1)})})
            path.unlink()
        if args.hostile:
            hostile = work / "hostile"
            hostile.mkdir()
            for name, path in _hostile_cases(hostile, folder):
                cases.append({"case": name, "file_mb": round(path.stat().st_size / 2**20, 2), **measure([str(path)])})
    result["cases"] = cases
    result["load_average"] = round(os.getloadavg()[0], 2)
    result["machine"] = (f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
                         f"{platform.python_version()}")
    return result


def render(result: dict[str, Any]) -> str:
    """The twelve-file timing and one row per measured case, as Markdown tables."""
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
    lines += ["", "| case | outcome | seconds | peak RSS (MB) |", "|---|---|---|---|"]
    for case in result["cases"]:
        outcome = f"refused: {case['refusal']}" if case["refusal"] else f"{case['readings']:,} readings loaded"
        lines.append(f"| {case['case']} | {outcome} | {case['seconds']:.2f} | {case['peak_rss_mb']} |")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """The headline figure: the twelve C-MAPSS files into a fresh store (median of the repeats)."""
    return [Figure("ingest.twelve_files_s", "Load all twelve C-MAPSS files into a fresh store (median)",
                   result["median_s"], "s", target=5.0)]

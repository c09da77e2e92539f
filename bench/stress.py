"""Benchmark: threads of one process loading, deleting, appending, recording outcomes and reading the store at once.

Run ``python -m core bench stress [--seconds 60] [--threads 10] [--browsers 0] [--data DIR] [--json]``.
Each thread plays a browser session or an API client of the server process and calls the functions the
pages and the API call (``ingest.load``, the Data page's delete, ``fleet_ops.append_readings`` /
``record_outcome``, the pages' reads) on small slices of the real files, in a scratch ``PM_HOME`` (no network). Reported:
operations done per kind, refusals grouped by sentence (numbers replaced by ``N``), tracebacks (any
exception that is not a :class:`UserError`; must be 0) and a consistency check of the store at the end.
With ``--browsers N`` the threads run inside a dashboard server on a loopback port while N Chromium
sessions load files on its Data page (:mod:`bench.stress_browsers`).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from core import config
from core.data import fleet_ops, ingest, queries, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError

ROLES = ("load", "delete", "append", "outcome", "read", "read", "load", "append", "read", "delete")
"""What each thread does, in thread order (repeated past ten threads)."""

LIVE = "live"
"""The fleet dataset the append and outcome threads work on (the API's readings and outcomes)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the stress benchmark."""
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the threads run (default 60)")
    parser.add_argument("--threads", type=int, default=10, help="concurrent threads (default 10)")
    parser.add_argument("--data", default=None, help="folder with the C-MAPSS files (default PM_DATA_DIR or "
                                                     "<repo>/../shared/data/cmapss)")
    parser.add_argument("--seed", type=int, default=13, help="seed of the threads' random choices")
    parser.add_argument("--browsers", type=int, default=0,
                        help="run the threads inside a dashboard server (localhost) with this many Chromium sessions "
                             "loading files on its Data page at the same time (default 0: threads only)")


def _lines(folder: Path, name: str, units: int) -> list[str]:
    text = gzip.decompress((folder / f"{name}.txt.gz").read_bytes()).decode()
    return [line for line in text.splitlines() if int(line.split()[0]) <= units]


def _files(source: Path, target: Path) -> dict[str, Path]:
    """Small slices of FD001: train (8 engines), test (5 engines) and its RUL file."""
    target.mkdir()
    out = {"train": target / "train_FD001.txt", "test": target / "test_FD001.txt", "rul": target / "RUL_FD001.txt"}
    out["train"].write_text("\n".join(_lines(source, "train_FD001", 8)) + "\n")
    out["test"].write_text("\n".join(_lines(source, "test_FD001", 5)) + "\n")
    rul = gzip.decompress((source / "RUL_FD001.txt.gz").read_bytes()).decode().splitlines()[:5]
    out["rul"].write_text("\n".join(rul) + "\n")
    return out


def _fleet_rows(train: Path) -> pd.DataFrame:
    """The train slice as fleet readings with engine ids (``ESN-<unit>``), for the append threads."""
    frame = pd.read_csv(train, sep=r"\s+", header=None, names=COLUMNS)
    return frame.drop(columns="unit").assign(engine=frame["unit"].map(lambda u: f"ESN-{int(u)}"))


class Tally:
    """Operations, refusals and tracebacks of all threads (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done: Counter[str] = Counter()
        self.seconds: dict[str, list[float]] = {}
        self.refusals: Counter[str] = Counter()
        self.tracebacks: list[str] = []

    def run(self, kind: str, operation: Callable[[], object]) -> None:
        """Run one operation and count what became of it."""
        started = time.perf_counter()
        try:
            operation()
        except UserError as err:
            with self._lock:
                self.refusals[re.sub(r"\d+", "N", str(err))] += 1
        except Exception:  # noqa: BLE001 - a traceback is what this benchmark counts
            with self._lock:
                self.tracebacks.append(traceback.format_exc())
        else:
            with self._lock:
                self.done[kind] += 1
        with self._lock:
            self.seconds.setdefault(kind, []).append(time.perf_counter() - started)


def _delete(name: str) -> None:
    """What the Data page's delete button does."""
    with store.connect() as con:
        writes.delete_dataset(con, name)


def _read(rng: random.Random) -> None:
    """What a page rerun reads: the listing (sidebar), then one dataset's readings or engines, or an engine's
    history."""
    with store.connect(read_only=True) as con:
        names = queries.list_datasets(con)["name"].tolist()
        if not names:
            return
        name = rng.choice(names)
        if rng.random() < 0.5:
            queries.readings_many(con, [name])
        else:
            queries.engines(con, name)
    if LIVE in names and rng.random() < 0.3:
        fleet_ops.engine_history(LIVE, f"ESN-{rng.randint(1, 8)}")


def _operation(role: str, rng: random.Random, files: dict[str, Path], rows: pd.DataFrame) -> tuple[str, Callable]:
    if role == "load":
        chosen = rng.choice([[files["train"]], [files["test"], files["rul"]], [files["rul"]]])
        return "load", lambda: ingest.load(chosen)
    if role == "delete":
        name = rng.choice(["train_FD001", "test_FD001", LIVE])
        return "delete", lambda: _delete(name)
    if role == "append":
        upto = rng.randint(1, 40) * 5
        part = rows[(rows["cycle"] > upto - 5) & (rows["cycle"] <= upto)]
        return "append", lambda: fleet_ops.append_readings(LIVE, part)
    if role == "outcome":
        engine = f"ESN-{rng.randint(1, 8)}"
        event = rng.choice(["inspection", "inspection", "inspection", "failure", "removal"])
        return "outcome", lambda: fleet_ops.record_outcome(LIVE, engine, 400, event)
    return "read", lambda: _read(rng)


def consistency() -> dict[str, int]:
    """Counts of every inconsistency the store could show (all must be 0), and the datasets left."""
    checks = {
        "duplicate_readings": "SELECT count(*) FROM (SELECT 1 FROM readings GROUP BY dataset_id, unit, cycle "
                              "HAVING count(*) > 1)",
        "orphan_readings": "SELECT count(*) FROM readings WHERE dataset_id NOT IN (SELECT id FROM datasets)",
        "orphan_rows": "SELECT (SELECT count(*) FROM engines WHERE dataset_id NOT IN (SELECT id FROM datasets)) + "
                       "(SELECT count(*) FROM rul_truth WHERE dataset_id NOT IN (SELECT id FROM datasets)) + "
                       "(SELECT count(*) FROM feedback WHERE dataset_id NOT IN (SELECT id FROM datasets)) + "
                       "(SELECT count(*) FROM loaded_files WHERE dataset_id NOT IN (SELECT id FROM datasets))",
        "wrong_counts": "SELECT count(*) FROM datasets d WHERE d.rows <> (SELECT count(*) FROM readings r WHERE "
                        "r.dataset_id = d.id) OR d.engines <> (SELECT count(DISTINCT unit) FROM readings r "
                        "WHERE r.dataset_id = d.id)",
        "units_without_engine": "SELECT count(*) FROM (SELECT DISTINCT dataset_id, unit FROM readings) r WHERE NOT "
                                "EXISTS (SELECT 1 FROM engines e WHERE e.dataset_id = r.dataset_id AND "
                                "e.unit = r.unit)",
        "closed_without_history": "SELECT count(*) FROM engines e JOIN datasets d ON d.id = e.dataset_id WHERE "
                                  "e.closed_event IN ('failure', 'removal') AND NOT EXISTS (SELECT 1 FROM "
                                  "datasets h WHERE h.name = d.name || '-closed')",
    }
    with store.connect(read_only=True) as con:
        found = {name: int(con.execute(sql).fetchall()[0][0]) for name, sql in checks.items()}
        found["datasets_left"] = len(queries.dataset_names(con))
    return found


def _run_threads(count: int, seconds: float, seed: int, files: dict[str, Path], rows: pd.DataFrame
                 ) -> tuple[Tally, float]:
    """Run `count` threads (roles from :data:`ROLES`) for `seconds`; their tally and the seconds they ran."""
    tally = Tally()
    stop = threading.Event()

    def work(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        role = ROLES[k % len(ROLES)]
        while not stop.is_set():
            tally.run(*_operation(role, rng, files, rows))

    threads = [threading.Thread(target=work, args=(k,), name=f"stress-{k}") for k in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def _summary(tally: Tally, elapsed: float, threads: int) -> dict[str, Any]:
    checked = consistency()
    return {
        "threads": threads, "seconds": round(elapsed, 1), "load_average": list(os.getloadavg()),
        "operations": dict(tally.done), "operations_total": sum(tally.done.values()),
        "seconds_p50": {k: round(statistics.median(v), 3) for k, v in tally.seconds.items()},
        "seconds_max": {k: round(max(v), 3) for k, v in tally.seconds.items()},
        "refusals": dict(tally.refusals.most_common()), "refusals_total": sum(tally.refusals.values()),
        "tracebacks": len(tally.tracebacks), "first_tracebacks": tally.tracebacks[:3],
        "consistency": checked, "consistent": all(v == 0 for k, v in checked.items() if k != "datasets_left"),
    }


def _source(value: str | None) -> Path:
    source = Path(value).expanduser().resolve() if value else (
        config.data_dir() or (config.REPO_ROOT.parent / "shared" / "data" / "cmapss").resolve())
    if not (source / "train_FD001.txt.gz").is_file():
        raise UserError(f"train_FD001.txt.gz is not in {source}; pass --data.")
    return source


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the threads for ``--seconds`` on a scratch home, then check the store; with ``--browsers``, in a
    dashboard server with that many browser sessions loading on its Data page meanwhile."""
    source = _source(args.data)
    scratch = Path(tempfile.mkdtemp(prefix="pm-stress-"))
    scratch.chmod(0o755)
    try:
        with config.environment({"PM_HOME": str(scratch / "home"), "PM_DUCKDB": None}):
            files = _files(source, scratch / "files")
            if args.browsers:
                from bench import stress_browsers

                return stress_browsers.run(scratch, args)
            store.prepare()
            tally, elapsed = _run_threads(args.threads, args.seconds, args.seed, files, _fleet_rows(files["train"]))
            return _summary(tally, elapsed, args.threads)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def serve(folder: str, seconds: float, threads: int, seed: int, server_args: list[str]) -> None:
    """In a dashboard server process (``python app.py server_args``): once the file ``go`` appears in `folder`,
    run the threads there for `seconds` and write their summary to ``threads.json`` in `folder`."""
    import json
    import runpy
    import sys

    base = Path(folder)
    files = {"train": base / "files" / "train_FD001.txt", "test": base / "files" / "test_FD001.txt",
             "rul": base / "files" / "RUL_FD001.txt"}

    def later() -> None:
        while not (base / "go").exists():
            time.sleep(0.1)
        tally, elapsed = _run_threads(threads, seconds, seed, files, _fleet_rows(files["train"]))
        (base / "threads.json").write_text(json.dumps(_summary(tally, elapsed, threads)))

    threading.Thread(target=later, name="stress-start", daemon=True).start()
    sys.argv = ["app.py", *server_args]
    runpy.run_path(str(config.REPO_ROOT / "app.py"), run_name="__main__")


def render(result: dict[str, Any]) -> str:
    """Operations, refusals, tracebacks and the consistency check as plain lines."""
    load = ", ".join(f"{v:.2f}" for v in result["load_average"])
    lines = [f"{result['threads']} threads for {result['seconds']} s (load average at the end {load})",
             f"{'operation':<9} {'done':>6} {'p50 s':>7} {'max s':>7}"]
    for kind in sorted(result["seconds_p50"]):
        lines.append(f"{kind:<9} {result['operations'].get(kind, 0):>6} {result['seconds_p50'][kind]:>7.3f} "
                     f"{result['seconds_max'][kind]:>7.3f}")
    lines.append(f"refusals: {result['refusals_total']}")
    lines.extend(f"  {count:>5}  {sentence}" for sentence, count in result["refusals"].items())
    lines.append(f"tracebacks: {result['tracebacks']}")
    lines.extend(result["first_tracebacks"])
    lines.append("consistency: " + ", ".join(f"{k} {v}" for k, v in result["consistency"].items())
                 + (" (consistent)" if result["consistent"] else " (INCONSISTENT)"))
    browsers = result.get("browsers")
    if browsers:
        lines.append(f"browser sessions: {browsers['sessions']}, loads done {browsers['operations']}, "
                     f"median s {browsers['seconds_p50']}, tracebacks {browsers['tracebacks']}")
        lines.extend(f"  {count:>5}  {sentence}" for sentence, count in browsers["refusals"].items())
        lines.extend(browsers["first_tracebacks"])
        lines.append(f"tracebacks in the server's log: {result['server_log_tracebacks']}")
        lines.append(result["server_log_first_traceback"])
    return "\n".join(lines)

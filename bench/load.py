"""Benchmark: the REST API under a crowd of Locust users against the real server (``python app.py``) on 127.0.0.1.

The benchmark starts the server with a random ``PM_API_TOKEN``, warms it up (predictions and health checks, so
the champion is loaded before memory is read), then runs Locust headless as a child process on loopback for
``--seconds`` (users spawned at ``--spawn-rate`` per second within that time) with the users of
``bench/locustfile.py``: ``CrowdUser`` (1 to 3 s between requests, predict:health 1:3) or, with ``--no-wait``,
``NoWaitUser`` (predictions back to back). Each predict carries the last 31 readings of one engine of
``--dataset`` (default test_FD001), read from the store.

It reports, per endpoint, Locust's p50/p95/p99 (Locust rounds times above 100 ms to two significant digits),
requests/s and failures; the server's resident memory, CPU seconds and threads before and after the run (from
``/proc`` of the server's pid); the CPU the Locust process spent (it shares the machine's cores with the server);
and the 1-minute load average at the start and the end.

Run ``python -m core bench load --users 200 --seconds 60 [--spawn-rate 20] [--no-wait] [--json]`` with a
``PM_HOME`` that holds the dataset and a champion. Locust is a test-time dependency (requirements.txt).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.results import Figure
from core.data import queries, store
from core.data.sensors import mnemonic
from core.errors import UserError
from core.server import process

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
READINGS = 31
"""Readings per predict: the last 31 cycles of an engine (the shortest test_FD001 engine has 31)."""
WARM_UP_PREDICTIONS = 20
ENDPOINTS = ("predict", "health")
PREDICT_P95_TARGETS_MS = ((200, 50.0), (500, 150.0))
"""Issue 26's targets for predict p95 with waiting users: 50 ms up to 200 users, 150 ms up to 500."""
HEALTH_P95_TARGET_MS = 10.0
PREDICTIONS_PER_S_TARGET = 150.0
RSS_GROWTH_TARGET_MB = 100.0
LOCUST_GRACE_S = 60.0
"""How long past ``--seconds`` Locust may take to spawn, stop its users and write its CSV before it is killed."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the load benchmark."""
    parser.add_argument("--users", type=int, default=200, help="concurrent Locust users (default 200)")
    parser.add_argument("--seconds", type=int, default=60, help="length of the Locust run, spawning included "
                                                                "(default 60)")
    parser.add_argument("--spawn-rate", type=float, default=None,
                        help="users started per second (default: all of them within the first tenth of the run)")
    parser.add_argument("--no-wait", action="store_true",
                        help="users that predict back to back (NoWaitUser) instead of the 1-3 s crowd (CrowdUser)")
    parser.add_argument("--dataset", default="test_FD001", help="stored dataset whose engines are predicted "
                                                                "(default test_FD001)")


def _bodies(dataset: str) -> list[dict[str, Any]]:
    """One ``{"engine", "readings"}`` per engine of `dataset` with at least :data:`READINGS` cycles: its last
    :data:`READINGS` readings in cycle order, columns by mnemonic."""
    with store.connect(read_only=True) as con:
        if queries.find_dataset(con, dataset) is None:
            raise UserError(f"The store in PM_HOME has no dataset {dataset!r}; load it first (python -m core ingest "
                            f"FILE) or name another with --dataset.")
        frame = queries.readings(con, dataset)
    bodies = []
    for unit, rows in frame.groupby("unit", sort=True):
        if len(rows) < READINGS:
            continue
        last = rows.drop(columns=["unit"]).sort_values("cycle").tail(READINGS).to_dict(orient="records")
        bodies.append({"engine": f"{dataset}-{unit}", "readings": [
            {("cycle" if k == "cycle" else mnemonic(k)): (int(v) if k == "cycle" else float(v)) for k, v in r.items()}
            for r in last]})
    if not bodies:
        raise UserError(f"No engine of {dataset} has {READINGS} readings to send.")
    return bodies


def _proc(pid: int) -> dict[str, float]:
    """Resident memory (MiB), CPU seconds (user + system, all threads) and threads of process `pid`, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024.0,
            "cpu_s": (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
            "threads": int(status["Threads"])}


def _warm_up(url: str, token: str, bodies: list[dict[str, Any]]) -> None:
    """A few predictions and health checks, so the champion and its explainer are loaded; any non-200 stops the
    benchmark with the server's answer."""
    calls = [("/api/v1/predict", json.dumps(b).encode()) for b in bodies[:WARM_UP_PREDICTIONS]]
    for path, payload in [*calls, ("/api/v1/health", None)]:
        request = urllib.request.Request(url + path, data=payload, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
        except urllib.error.HTTPError as err:
            raise UserError(f"The server answered {err.code} to {path} while warming up: "
                            f"{err.read().decode(errors='replace')[:500]}") from err


def _percentile(value: str) -> float | None:
    return None if value in ("", "N/A") else float(value)


def _stats(prefix: Path) -> dict[str, dict[str, Any]]:
    """Locust's ``PREFIX_stats.csv`` as ``{name: figures}`` for each endpoint and ``all`` (its Aggregated row)."""
    path = prefix.with_name(prefix.name + "_stats.csv")
    out = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            name = "all" if row["Name"] == "Aggregated" else row["Name"]
            out[name] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                         "p50_ms": _percentile(row["50%"]), "p95_ms": _percentile(row["95%"]),
                         "p99_ms": _percentile(row["99%"]), "max_ms": _percentile(row["Max Response Time"]),
                         "requests_per_s": float(row["Requests/s"])}
    return out


def _failure_samples(prefix: Path) -> list[str]:
    """Up to five lines of Locust's ``PREFIX_failures.csv``: occurrences, endpoint and error."""
    path = prefix.with_name(prefix.name + "_failures.csv")
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return [f"{row['Occurrences']} × {row['Name']}: {row['Error']}" for row in csv.DictReader(handle)][:5]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _locust(url: str, env: dict[str, str], args: argparse.Namespace, spawn_rate: float, prefix: Path,
            log: Path) -> dict[str, Any]:
    """Run Locust headless against `url` for ``args.seconds``; return its wall and CPU seconds and whether it
    warned that its own CPU was saturated. Killed (and the benchmark stopped) if it overruns by
    :data:`LOCUST_GRACE_S`."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(args.users),
               "-r", f"{spawn_rate:g}", "-t", f"{args.seconds}s", "-H", url, "--csv", str(prefix), "--only-summary",
               "--stop-timeout", "5", "NoWaitUser" if args.no_wait else "CrowdUser"]
    cpu_before, started = _children_cpu_s(), time.perf_counter()
    with log.open("wb") as handle:
        locust = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = locust.wait(timeout=args.seconds + LOCUST_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(locust.pid, signal.SIGKILL)
            locust.wait()
            raise UserError(f"Locust did not stop within {LOCUST_GRACE_S:.0f} s after its {args.seconds} s run "
                            f"(log: {log}).") from None
    wall = time.perf_counter() - started
    text = log.read_text(errors="replace")
    # Locust exits 1 when any request failed; the failures are counted from its CSV.
    if code not in (0, 1) or not prefix.with_name(prefix.name + "_stats.csv").is_file():
        raise UserError(f"Locust exited with code {code} without its statistics: {text[-1500:]}")
    cpu = _children_cpu_s() - cpu_before
    return {"wall_s": wall, "cpu_s": cpu, "cpu_cores": cpu / wall, "cpu_warning": "CPU usage above" in text}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, warm it up, run Locust against it, stop it; return the figures and the machine's load."""
    if args.users < 1 or args.seconds < 1 or (args.spawn_rate is not None and args.spawn_rate <= 0):
        raise UserError("Users, seconds and the spawn rate must be positive.")
    if importlib.util.find_spec("locust") is None:
        raise UserError("Locust is not installed in this Python; install the test dependencies "
                        "(pip install -r requirements.txt).")
    spawn_rate = args.spawn_rate or max(args.users / max(args.seconds / 10.0, 1.0), 1.0)
    load_at_start = os.getloadavg()[0]
    bodies = _bodies(args.dataset)
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    bodies_file = folder / "bodies.json"
    bodies_file.write_text(json.dumps(bodies), encoding="utf-8")
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "PM_API_TOKEN": token}
    server = process.start(env, folder / "server.log")
    try:
        _warm_up(server.url, token, bodies)
        before = _proc(server.proc.pid)
        generator = _locust(server.url, {**env, "PM_LOAD_BODIES": str(bodies_file)}, args, spawn_rate,
                            folder / "locust", folder / "locust.log")
        after = _proc(server.proc.pid)
    finally:
        server.stop()
    stats = _stats(folder / "locust")
    predict = stats.get("predict", {"requests": 0, "failures": 0, "requests_per_s": 0.0})
    successes = predict["requests"] - predict["failures"]
    return {
        "title": f"REST API under {args.users} Locust {'users without waiting' if args.no_wait else 'users'} "
                 f"for {args.seconds} s (server: python app.py on 127.0.0.1; Locust on the same machine)",
        "users": args.users, "seconds": args.seconds, "spawn_rate": spawn_rate, "no_wait": args.no_wait,
        "dataset": args.dataset, "engines": len(bodies), "readings_per_predict": READINGS,
        "endpoints": stats, "failures": stats.get("all", {"failures": 0})["failures"],
        "failure_samples": _failure_samples(folder / "locust"),
        "predictions_per_s": predict["requests_per_s"] * successes / max(predict["requests"], 1),
        "server": {"pid": server.proc.pid, "before": before, "after": after,
                   "rss_growth_mb": after["rss_mb"] - before["rss_mb"],
                   "cpu_cores": (after["cpu_s"] - before["cpu_s"]) / generator["wall_s"]},
        "locust": generator,
        "files": {"folder": str(folder), "server_log": str(folder / "server.log"),
                  "locust_log": str(folder / "locust.log")},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
                    "load_average_at_start": load_at_start, "load_average_1m": os.getloadavg()[0]},
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def render(result: dict[str, Any]) -> str:
    """A table per endpoint, then the server's and Locust's resources and the load."""
    machine, server, generator = result["machine"], result["server"], result["locust"]
    before, after = server["before"], server["after"]
    load = (f"{machine['cpus']} CPUs, load average {machine['load_average_at_start']:.1f} at the start, "
            f"{machine['load_average_1m']:.1f} at the end; {result['engines']} engines of {result['dataset']}, "
            f"{result['readings_per_predict']} readings per predict; spawn rate {result['spawn_rate']:g}/s")
    header = (f"{'endpoint':<10} {'requests':>9} {'failures':>9} {'req/s':>8} {'p50':>8} {'p95':>8} {'p99':>8} "
              f"{'max':>8}")
    lines = [result["title"], load, header]
    for name in (*ENDPOINTS, "all"):
        if name in result["endpoints"]:
            e = result["endpoints"][name]
            lines.append(f"{name:<10} {e['requests']:>9} {e['failures']:>9} {e['requests_per_s']:>8.1f} "
                         f"{_ms(e['p50_ms']):>8} {_ms(e['p95_ms']):>8} {_ms(e['p99_ms']):>8} {_ms(e['max_ms']):>8}")
    memory = (f"server RSS {before['rss_mb']:.0f} → {after['rss_mb']:.0f} MiB ({server['rss_growth_mb']:+.1f}); "
              f"CPU {before['cpu_s']:.1f} → {after['cpu_s']:.1f} s ({server['cpu_cores']:.2f} cores during the run); "
              f"threads {before['threads']} → {after['threads']}")
    saturated = "; Locust warned that its CPU was saturated" if generator["cpu_warning"] else ""
    lines += [f"predictions/s {result['predictions_per_s']:.1f}", memory,
              f"Locust CPU {generator['cpu_s']:.1f} s ({generator['cpu_cores']:.2f} cores){saturated}"]
    lines += [f"failure: {sample}" for sample in result["failure_samples"]]
    return "\n".join(lines)


def _predict_p95_target(users: int) -> float | None:
    return next((target for limit, target in PREDICT_P95_TARGETS_MS if users <= limit), None)


def figures(result: dict[str, Any]) -> list[Figure]:
    """Keys carry the user count (and ``nowait`` for users that do not wait), so runs of different sizes are
    separate figures: with waiting users, predict and health p95, failures and RSS growth; without, predictions/s
    and failures."""
    users, seconds, endpoints = result["users"], result["seconds"], result["endpoints"]
    if result["no_wait"]:
        crowd = f"Locust, {users} users without waiting, {seconds} s"
        return [
            Figure(f"load.nowait_{users}.predictions_per_s", f"{crowd}: predictions/s", result["predictions_per_s"],
                   "/s", target=PREDICTIONS_PER_S_TARGET, better="higher"),
            Figure(f"load.nowait_{users}.failures", f"{crowd}: failures", result["failures"], "", target=0.0),
        ]
    crowd = f"Locust, {users} users (1-3 s wait), {seconds} s"
    out = [Figure(f"load.users_{users}.{name}_p95_ms", f"{crowd}: {name} p95", endpoints[name]["p95_ms"], "ms",
                  target=target)
           for name, target in (("predict", _predict_p95_target(users)), ("health", HEALTH_P95_TARGET_MS))
           if endpoints.get(name, {}).get("p95_ms") is not None]
    return [*out,
            Figure(f"load.users_{users}.failures", f"{crowd}: failures", result["failures"], "", target=0.0),
            Figure(f"load.users_{users}.rss_growth_mb", f"{crowd}: server RSS growth", result["server"]["rss_growth_mb"],
                   "MiB", target=RSS_GROWTH_TARGET_MB)]

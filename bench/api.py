"""Benchmark: the REST API over HTTP against the real server (``python app.py``) on 127.0.0.1.

- single predict (test_FD001 engines, with and without SHAP factors), one client after another: p50/p95;
- throughput with ``--clients`` concurrent clients (keep-alive connections), for ``--throughput-s`` seconds;
- batch-predict of 100 engines (test_FD001) and of 707 engines (the four test sets), readings in the body;
- for each of these, the server process's CPU time per request (from ``/proc``), a figure that depends far
  less on what else runs on the machine than the wall-clock ones;
- a bounded mixed load for ``--load-s`` seconds (predict, small batches, health, alerts, metrics and
  deliberately bad requests, which must get 422): unexpected answers counted as errors, and the server's
  resident memory after warm-up (one request of each kind), before the mixed load and after it.

Run ``python -m core bench api [--json]`` with a ``PM_HOME`` that holds the four test sets and a champion.
The benchmark starts and stops its own server (with a random ``PM_API_TOKEN``) and runs its clients in
this process, so clients and server share the machine's cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from bench.results import Figure
from core.data import queries, store
from core.data.sensors import mnemonic
from core.errors import UserError
from core.server import process

TEST_SETS = ["test_FD001", "test_FD002", "test_FD003", "test_FD004"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the API benchmark."""
    parser.add_argument("--repeats", type=int, default=200, help="timed single predictions (default 200)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--throughput-s", type=float, default=20.0, help="seconds of the throughput run (default 20)")
    parser.add_argument("--batch-repeats", type=int, default=5, help="timed batches of each size (default 5)")
    parser.add_argument("--load-s", type=float, default=60.0, help="seconds of the mixed load (default 60)")


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        self.conn.request(method, path, body=body, headers=self.auth)
        response = self.conn.getresponse()
        return response.status, response.read()


def _bodies(names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per dataset, one ``{"engine", "readings"}`` per engine, columns by mnemonic."""
    out: dict[str, list[dict[str, Any]]] = {}
    with store.connect(read_only=True) as con:
        for name in names:
            frame = queries.readings(con, name)
            engines = []
            for unit, rows in frame.groupby("unit", sort=True):
                records = rows.drop(columns=["unit"]).sort_values("cycle").to_dict(orient="records")
                engines.append({"engine": f"{name}-{unit}", "readings": [
                    {("cycle" if k == "cycle" else mnemonic(k)): (int(v) if k == "cycle" else float(v))
                     for k, v in r.items()} for r in records]})
            out[name] = engines
    return out


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _with_server_cpu(pid: int, measure: Any) -> dict[str, Any]:
    """``measure()``'s figures plus the server's CPU milliseconds per request while it ran."""
    before = _cpu_s(pid)
    figures = measure()
    requests = figures.get("requests", figures.get("n", 0))
    figures["server_cpu_ms_per_request"] = (_cpu_s(pid) - before) * 1000.0 / max(requests, 1)
    return figures


def _ms(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000.0
    return {"p50_ms": float(np.percentile(array, 50)), "p95_ms": float(np.percentile(array, 95)),
            "max_ms": float(array.max()), "n": len(values)}


def _sequential(client: Client, payloads: list[bytes], path: str, repeats: int) -> dict[str, float]:
    times, errors = [], 0
    for i in range(repeats):
        started = time.perf_counter()
        status, _ = client.call("POST", path, payloads[i % len(payloads)])
        times.append(time.perf_counter() - started)
        errors += status != 200
    return {**_ms(times), "errors": errors}


def _concurrent(url: str, token: str, clients: int, seconds: float, work: Any) -> dict[str, Any]:
    """Run `work(client, rng) -> (ok, predictions)` in `clients` threads for `seconds`; count and time it."""
    results: list[tuple[float, bool, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def loop(seed: int) -> None:
        client, rng, mine = Client(url, token), random.Random(seed), []
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                ok, predictions = work(client, rng)
                mine.append((time.perf_counter() - started, ok, predictions))
        except (OSError, http.client.HTTPException) as err:
            with lock:
                failures.append(f"{type(err).__name__}: {err}")
        with lock:
            results.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(seed,)) for seed in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    predictions = sum(p for _, ok, p in results if ok)
    return {"clients": clients, "seconds": elapsed, "requests": len(results),
            "errors": sum(not ok for _, ok, _ in results) + len(failures), "failures": failures[:5],
            "predictions_per_s": predictions / elapsed, "requests_per_s": len(results) / elapsed,
            **_ms([t for t, _, _ in results] or [0.0])}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server, measure, stop it; return the figures and the machine they ran on."""
    if min(args.repeats, args.clients, args.batch_repeats) < 1 or min(args.throughput_s, args.load_s) <= 0:
        raise UserError("Repetitions, clients and durations must be positive.")
    load_at_start = os.getloadavg()[0]
    bodies = _bodies(TEST_SETS)
    fd001 = bodies["test_FD001"]
    everything = [e for name in TEST_SETS for e in bodies[name]]
    single = [json.dumps(e).encode() for e in fd001]
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "PM_API_TOKEN": token}
    log = Path(tempfile.mkdtemp(prefix="bench-api-")) / "server.log"
    server = process.start(env, log)
    try:
        client = Client(server.url, token)
        for payload in single[:20]:
            client.call("POST", "/api/v1/predict", payload)
            client.call("POST", "/api/v1/predict?factors=false", payload)
        client.call("POST", "/api/v1/batch-predict", json.dumps({"engines": fd001}).encode())
        for method, path in (("GET", "/api/v1/health"), ("GET", "/api/v1/alerts"), ("GET", "/metrics")):
            client.call(method, path)
        rss_start = server.rss_mb()
        pid = server.proc.pid
        result: dict[str, Any] = {
            "single_predict": _with_server_cpu(pid, lambda: _sequential(client, single, "/api/v1/predict",
                                                                        args.repeats)),
            "single_predict_no_factors": _with_server_cpu(pid, lambda: _sequential(
                Client(server.url, token), single, "/api/v1/predict?factors=false", args.repeats)),
        }

        def predict(path: str) -> Any:
            def work(c: Client, rng: random.Random) -> tuple[bool, int]:
                return c.call("POST", path, rng.choice(single))[0] == 200, 1
            return work

        result["throughput"] = _with_server_cpu(pid, lambda: _concurrent(
            server.url, token, args.clients, args.throughput_s, predict("/api/v1/predict")))
        result["throughput_no_factors"] = _with_server_cpu(pid, lambda: _concurrent(
            server.url, token, args.clients, args.throughput_s, predict("/api/v1/predict?factors=false")))
        for label, engines in (("batch_100", fd001), ("batch_707", everything)):
            payload = json.dumps({"engines": engines}).encode()
            client = Client(server.url, token)  # uvicorn closes a connection idle for 5 s
            times, errors = [], 0
            for _ in range(args.batch_repeats):
                started = time.perf_counter()
                status, _ = client.call("POST", "/api/v1/batch-predict", payload)
                times.append(time.perf_counter() - started)
                errors += status != 200
            result[label] = {"engines": len(engines), "body_mb": len(payload) / 1048576,
                             "median_s": statistics.median(times), "max_s": max(times), "errors": errors}

        small_batches = [json.dumps({"engines": everything[i:i + 10]}).encode() for i in range(0, 700, 10)]
        missing_t30 = [json.dumps({**e, "readings": [{k: v for k, v in r.items() if k != "T30"}
                                                     for r in e["readings"]]}).encode() for e in fd001[:10]]

        def mixed(c: Client, rng: random.Random) -> tuple[bool, int]:
            pick = rng.random()
            if pick < 0.70:
                return c.call("POST", "/api/v1/predict", rng.choice(single))[0] == 200, 1
            if pick < 0.80:
                return c.call("POST", "/api/v1/batch-predict", rng.choice(small_batches))[0] == 200, 10
            if pick < 0.87:
                return c.call("GET", "/api/v1/health")[0] == 200, 0
            if pick < 0.92:
                return c.call("GET", "/api/v1/alerts")[0] == 200, 0
            if pick < 0.95:
                return c.call("GET", "/metrics")[0] == 200, 0
            return c.call("POST", "/api/v1/predict", rng.choice(missing_t30))[0] == 422, 0

        rss_before_load = server.rss_mb()
        result["mixed_load"] = _concurrent(server.url, token, args.clients, args.load_s, mixed)
        rss_end = server.rss_mb()
        result["rss_mb"] = {"after_warmup": rss_start, "before_load": rss_before_load, "after_load": rss_end,
                            "load_growth": rss_end - rss_before_load}
    finally:
        server.stop()
    result.update({
        "title": "REST API over HTTP on 127.0.0.1 (server: python app.py; clients in the benchmark process)",
        "server_log": str(log),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.machine(),
                    "load_average_1m": os.getloadavg()[0], "load_average_at_start": load_at_start},
    })
    return result


def render(result: dict[str, Any]) -> str:
    """A small table of the figures."""
    machine = result["machine"]
    lines = [result["title"], (f"{machine['cpus']} CPUs, load average {machine['load_average_at_start']:.1f} at the "
                              f"start, {machine['load_average_1m']:.1f} at the end")]
    for key in ("single_predict", "single_predict_no_factors"):
        r = result[key]
        lines.append(f"{key:<28} p50 {r['p50_ms']:.1f} ms  p95 {r['p95_ms']:.1f} ms  ({r['n']} requests, "
                     f"{r['errors']} errors; server CPU {r['server_cpu_ms_per_request']:.1f} ms per request)")
    for key in ("throughput", "throughput_no_factors", "mixed_load"):
        r = result[key]
        cpu = f", server CPU {r['server_cpu_ms_per_request']:.1f} ms per request" if key != "mixed_load" else ""
        lines.append(f"{key:<28} {r['predictions_per_s']:.1f} predictions/s, {r['requests_per_s']:.1f} requests/s "
                     f"with {r['clients']} clients, p95 {r['p95_ms']:.0f} ms, {r['errors']} errors{cpu}")
    for key in ("batch_100", "batch_707"):
        r = result[key]
        lines.append(f"{key:<28} {r['median_s']:.3f} s median ({r['engines']} engines, {r['body_mb']:.1f} MB body, "
                     f"{r['errors']} errors)")
    rss = result["rss_mb"]
    lines.append(f"{'server RSS (MiB)':<28} {rss['after_warmup']:.0f} after warm-up, {rss['before_load']:.0f} before "
                 f"the mixed load, {rss['after_load']:.0f} after it ({rss['load_growth']:+.1f})")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """Single-client latency, 8-client throughput, a batch of 100 and the mixed load's errors and memory."""
    return [
        Figure("api.predict_p95_ms", "API predict with SHAP factors, 1 client, p95", result["single_predict"]["p95_ms"],
               "ms", target=50.0),
        Figure("api.predictions_per_s", f"API predictions/s, {result['throughput']['clients']} clients with factors",
               result["throughput"]["predictions_per_s"], "/s", target=100.0, better="higher"),
        Figure("api.batch_100_s", "API batch-predict of 100 engines (median)", result["batch_100"]["median_s"], "s",
               target=0.5),
        Figure("api.mixed_load_errors", "API mixed load, 60 s: errors", result["mixed_load"]["errors"], "",
               target=0.0),
        Figure("api.rss_growth_mb", "Server RSS growth over the mixed load", result["rss_mb"]["load_growth"], "MiB",
               target=50.0),
    ]

"""Benchmark: serving latency of the champion model.

- ``whatif_p95_ms``: one what-if on one engine (shift a sensor over the last 10 cycles, then
  features + ensemble + interval + risk + SHAP for XGBoost and the LSTM), warm, `repeats` times;
  ``whatif_cpu_p50_ms``/``whatif_cpu_p95_ms``: the CPU time of the same calls (one thread), which
  depends far less on the machine's other load than the wall clock.
- ``fleet_score_s``: score every engine of the datasets (default: the four official test sets,
  707 engines): read their readings from the store and predict (features, ensemble, interval,
  risk), as the Fleet page does on a cold cache; median of `fleet_repeats`.

Run ``python -m core bench latency [--json]`` with a ``PM_HOME`` that holds the data and a trained champion.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.results import Figure
from core.errors import UserError
from core.serving import scoring, whatif

OFFICIAL_TESTS = ["test_FD001", "test_FD002", "test_FD003", "test_FD004"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the latency benchmark."""
    parser.add_argument("--model", default="champion", help="model version, 'champion' (default) or 'challenger'")
    parser.add_argument("--datasets", nargs="+", default=OFFICIAL_TESTS, help="datasets to score (default: the "
                                                                              "four official test sets)")
    parser.add_argument("--repeats", type=int, default=200, help="timed what-if repetitions (default 200)")
    parser.add_argument("--fleet-repeats", type=int, default=3, help="timed fleet scorings (default 3)")
    parser.add_argument("--last-n", type=int, default=10, help="cycles the what-if shifts (default 10)")
    parser.add_argument("--threads", type=int, default=whatif.SERVING_THREADS,
                        help=f"CPU threads per prediction, as the dashboard serves (default {whatif.SERVING_THREADS})")


def _times_ms(fn: Callable[[], object], repeats: int, warmup: int = 10) -> np.ndarray:
    return _wall_and_cpu_ms(fn, repeats, warmup)[0]


def _wall_and_cpu_ms(fn: Callable[[], object], repeats: int, warmup: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Wall-clock and CPU (this thread's) milliseconds of each of `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    wall, cpu = np.empty(repeats), np.empty(repeats)
    for i in range(repeats):
        started, cpu_started = time.perf_counter(), time.thread_time()
        fn()
        cpu[i] = (time.thread_time() - cpu_started) * 1000.0
        wall[i] = (time.perf_counter() - started) * 1000.0
    return wall, cpu


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time fleet scoring and the what-if path; return the figures and the machine they ran on."""
    if args.repeats < 1 or args.fleet_repeats < 1:
        raise UserError("Repetitions must be at least 1.")
    load_started = time.perf_counter()
    version, ensemble = scoring.load_model(args.model)
    whatif.serving_setup(ensemble, args.threads)
    load_s = time.perf_counter() - load_started

    read_s, score_s, total_s = [], [], []
    rows, truth = scoring.fleet_frame(list(args.datasets))
    table = scoring.score(ensemble, rows, truth)
    for _ in range(args.fleet_repeats):
        started = time.perf_counter()
        rows, truth = scoring.fleet_frame(list(args.datasets))
        read = time.perf_counter()
        table = scoring.score(ensemble, rows, truth)
        done = time.perf_counter()
        read_s.append(read - started)
        score_s.append(done - read)
        total_s.append(done - started)

    started = time.perf_counter()
    explainer = whatif.build_explainer(ensemble)
    explainer_s = time.perf_counter() - started

    lengths = rows.groupby(["dataset", "unit"]).size().sort_values()
    dataset, unit = lengths.index[len(lengths) // 2]
    engine = whatif.engine_rows(rows, str(dataset), int(unit))
    baseline = whatif.predict_one(ensemble, explainer, engine)
    sensor = baseline.explanation.top_sensors(1)[0]
    shift = {sensor: whatif.slider_ranges(ensemble)[sensor].sigma}

    def one_whatif() -> object:
        return whatif.what_if(ensemble, explainer, engine, shift, args.last_n, baseline=baseline)

    fs = ensemble.features(engine, "last")
    load_at_start = os.getloadavg()[0]
    whatif_ms, whatif_cpu_ms = _wall_and_cpu_ms(one_whatif, args.repeats)
    parts = {
        "features": _times_ms(lambda: ensemble.features(engine, "last"), 50),
        "ensemble_interval_risk": _times_ms(lambda: ensemble.predict_features(fs), 50),
        "shap_xgboost_and_lstm": _times_ms(lambda: explainer.explain(fs), 50),
    }
    counts = table["risk"].value_counts()
    return {
        "title": "serving latency: one what-if (features + ensemble + interval + SHAP) and fleet scoring",
        "model_version": version,
        "datasets": list(args.datasets),
        "engines": len(table),
        "fleet_score_s": statistics.median(total_s),
        "fleet_read_s": statistics.median(read_s),
        "fleet_predict_s": statistics.median(score_s),
        "whatif_p50_ms": float(np.percentile(whatif_ms, 50)),
        "whatif_p95_ms": float(np.percentile(whatif_ms, 95)),
        "whatif_max_ms": float(whatif_ms.max()),
        "whatif_cpu_p50_ms": float(np.percentile(whatif_cpu_ms, 50)),
        "whatif_cpu_p95_ms": float(np.percentile(whatif_cpu_ms, 95)),
        "whatif_repeats": args.repeats,
        "whatif_engine": f"{dataset} #{unit} ({len(engine)} cycles), {sensor} shifted over the last {args.last_n}",
        "part_p50_ms": {name: float(np.percentile(v, 50)) for name, v in parts.items()},
        "model_load_s": load_s,
        "explainer_build_s": explainer_s,
        "risk_counts": {k: int(counts.get(k, 0)) for k in ("HIGH", "MEDIUM", "LOW")},
        "threads": args.threads,
        "machine": {"cpus": os.cpu_count(),
                    "platform": platform.platform(), "processor": platform.machine(),
                    "load_average_1m": os.getloadavg()[0], "load_average_at_start": load_at_start},
    }


def render(result: dict[str, Any]) -> str:
    """A small table of the figures."""
    lines = [result["title"], (f"model v{result['model_version']} on {result['machine']['cpus']} CPUs, "
             f"{result['threads']} thread(s) per prediction "
             f"(load average {result['machine']['load_average_at_start']:.1f} before the what-ifs, "
             f"{result['machine']['load_average_1m']:.1f} at the end)")]
    rows = [
        ("engines", f"{result['engines']}"),
        ("fleet_score_s", (f"{result['fleet_score_s']:.3f}  (read {result['fleet_read_s']:.3f} + "
                          f"predict {result['fleet_predict_s']:.3f})")),
        ("whatif_p50_ms", f"{result['whatif_p50_ms']:.1f}"),
        ("whatif_p95_ms", f"{result['whatif_p95_ms']:.1f}  ({result['whatif_repeats']} repetitions)"),
        ("whatif CPU p50 / p95 ms", f"{result['whatif_cpu_p50_ms']:.1f} / {result['whatif_cpu_p95_ms']:.1f}"),
        *[(f"  {k} p50 ms", f"{v:.1f}") for k, v in result["part_p50_ms"].items()],
        ("explainer_build_s", f"{result['explainer_build_s']:.2f}"),
    ]
    lines += [f"{name:<36} {value}" for name, value in rows]
    lines.append(f"what-if engine: {result['whatif_engine']}")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """The headline figures: one what-if's p95 (features + ensemble + interval + SHAP) and scoring the fleet."""
    return [Figure("latency.whatif_p95_ms", "What-if with SHAP, in process, p95", result["whatif_p95_ms"], "ms",
                   target=50.0),
            Figure("latency.fleet_score_s", f"Score {result['engines']:,} engines (read + predict)",
                   result["fleet_score_s"], "s", target=2.0)]

"""``python -m core bench NAME``: run one of the benchmarks in ``bench/`` and print its table.

Each benchmark module ``bench.<name>`` defines ``add_arguments(parser)``, ``run(args) -> dict``
and optionally ``render(result) -> str``.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

HELP = "run a benchmark: ingest, accuracy, train_time, latency, pages, api or scale (results go in BENCHMARKS.md)"
BENCHMARKS = ("ingest", "accuracy", "train_time", "latency", "pages", "api", "scale", "stress")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark, with that benchmark's own arguments."""
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        bench_parser = sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        bench_parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                  help="print the result as JSON")
        module.add_arguments(bench_parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen benchmark and return its result, with the benchmark's module name under ``bench``."""
    result = importlib.import_module(f"bench.{args.benchmark}").run(args)
    return {**result, "bench": args.benchmark}


def render(result: dict[str, Any]) -> str:
    """The benchmark's own table where it has one, else its result as JSON."""
    module = importlib.import_module(f"bench.{result['bench']}")
    if hasattr(module, "render"):
        return module.render(result)
    return json.dumps(result, indent=2, default=str)

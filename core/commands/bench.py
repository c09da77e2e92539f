"""``python -m core bench NAME``: run one of the benchmarks in ``bench/`` and print its table;
``python -m core bench report [--write]``: the current-figures table of BENCHMARKS.md.

Each benchmark module ``bench.<name>`` defines ``add_arguments(parser)``, ``run(args) -> dict``, optionally
``render(result) -> str``, and optionally ``figures(result) -> list[bench.results.Figure]``: its headline numbers,
which a run appends to ``bench/results/<name>.jsonl`` (unless ``--no-record``) for the report.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

from core.errors import UserError

HELP = ("run a benchmark (ingest, append, accuracy, train_time, latency, pages, api, load, scale, stress, plan, "
        "plan_page, drift), or 'report' to regenerate BENCHMARKS.md's current figures from the recorded runs")
BENCHMARKS = ("ingest", "append", "accuracy", "train_time", "latency", "pages", "api", "load", "scale", "stress", "plan",
              "plan_page", "drift")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per benchmark, with that benchmark's own arguments."""
    sub = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        bench_parser = sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        bench_parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                                  help="print the result as JSON")
        bench_parser.add_argument("--no-record", action="store_true",
                                  help="do not append this run's figures to bench/results/ (a trial run)")
        module.add_arguments(bench_parser)
    report = sub.add_parser("report", help="the current figures: the newest recorded run of every figure")
    report.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")
    report.add_argument("--write", action="store_true", help="also write the table into BENCHMARKS.md")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the chosen benchmark and return its result, with the benchmark's module name under ``bench`` and the
    file its figures were recorded in under ``recorded``; or, for ``report``, the current figures."""
    from bench import results

    if args.benchmark == "report":
        try:
            return {**results.report(write=args.write), "bench": "report"}
        except ValueError as err:
            raise UserError(str(err)) from err
    module = importlib.import_module(f"bench.{args.benchmark}")
    result = module.run(args)
    recorded = None
    if hasattr(module, "figures") and not args.no_record:
        recorded = str(results.record(args.benchmark, module.figures(result)))
    return {**result, "bench": args.benchmark, "recorded": recorded}


def render(result: dict[str, Any]) -> str:
    """The benchmark's own table where it has one, else its result as JSON."""
    if result["bench"] == "report":
        return str(result["table"]) + (f"\n\nWritten into {result['written']}." if result["written"] else "")
    module = importlib.import_module(f"bench.{result['bench']}")
    if hasattr(module, "render"):
        return module.render(result)
    return json.dumps(result, indent=2, default=str)

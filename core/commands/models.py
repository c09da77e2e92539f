"""``python -m core models``: the registered versions with aliases, training data, creator and validation metrics;
``python -m core models compare A B``: two versions side by side (:mod:`core.operations.compare`)."""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from typing import Any

HELP = "list the registered model versions, or compare two of them (models compare A B)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``models`` and of its ``compare`` action."""
    parser.add_argument("--simulation", action="store_true",
                        help="work on the production simulation's sandbox (rul-ensemble-sim) instead of the served model")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    compare = actions.add_parser("compare", help="two versions side by side: differing parameters, metric deltas "
                                                 "(B - A), loss curves and training data lineage",
                                 description="Compare two registered versions (numbers, champion or challenger).")
    compare.add_argument("a", help="version A: a number, 'champion' or 'challenger'")
    compare.add_argument("b", help="version B: a number, 'champion' or 'challenger'")
    compare.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the result as JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The versions of ``rul-ensemble`` (or of the simulation's sandbox), newest first; or the comparison of two."""
    from core.operations import compare, registry, version_table

    if getattr(args, "action", None) == "compare":
        with registry.sandbox() if args.simulation else nullcontext():
            return compare.compare(args.a, args.b)
    return version_table.listing(registry.SIM_MODEL_NAME if args.simulation else registry.MODEL_NAME)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _render_comparison(result: dict[str, Any]) -> str:
    """Differing parameters, metrics with deltas, the last loss of each curve and the lineage, as text."""
    a, b = result["a"]["version"], result["b"]["version"]
    lines = [f"{result['model']}: v{a} (A) against v{b} (B); deltas are B - A", "",
             f"Parameters that differ ({len(result['parameters'])}; {result['same_parameters']} equal):"]
    lines += [f"  {p['name']}: {p['a'] if p['a'] is not None else '-'} -> {p['b'] if p['b'] is not None else '-'}"
              for p in result["parameters"]] or ["  none"]
    lines += ["", f"{'Metric':<34} {'A':>10} {'B':>10} {'delta':>10}"]
    lines += [f"{m['label'][:34]:<34} {_number(m['a']):>10} {_number(m['b']):>10} {_number(m['delta']):>10}"
              for m in result["metrics"]]
    lines += [result["live_note"], "", "Loss curves (steps, last value):"]
    for side, version in (("a", a), ("b", b)):
        curves = result["losses"][side]
        lines += [f"  v{version} {key}: {len(points)} steps, last {points[-1][1]:.4f}"
                  for key, points in curves.items() if points] or [f"  v{version}: none logged"]
    lines += ["", "Training data:"]
    lines += [f"  {row['field']}: {row['a'] or '-'}" + ("" if row["same"] else f" | {row['b'] or '-'}")
              for row in result["lineage"]]
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    """One line per version: aliases, creator, date, data and the headline validation metrics; or a comparison."""
    from core.operations import version_table

    if "parameters" in result:
        return _render_comparison(result)
    if not result["versions"]:
        return f"{result['model']}: no version is registered yet."
    lines = [(f"{result['model']}: champion v{result['champion']}, challenger "
             f"{'v' + str(result['challenger']) if result['challenger'] is not None else 'none'}")]
    for v in result["versions"]:
        metrics = ", ".join(f"{version_table.metric_label(k)} {value:.3f}"
                            for k, value in list(v["validation"].items())[:4])
        aliases = f" [{', '.join(v['aliases'])}]" if v["aliases"] else ""
        copied = f" (copy of {v['copied_from']})" if v["copied_from"] else ""
        lines.append(f"  v{v['version']}{aliases} by {v['created_by']} on {v['created'][:16].replace('T', ' ')}"
                     f"{copied}: data {v['data'] or '-'}; {metrics or 'no validation metrics'}")
    return "\n".join(lines)

"""``python -m core models``: the registered versions with aliases, training data, creator and validation metrics."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "list the registered model versions: aliases, training data, created by, validation metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``models``."""
    parser.add_argument("--simulation", action="store_true",
                        help="list the production simulation's sandbox (rul-ensemble-sim) instead of the served model")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The versions of ``rul-ensemble`` (or of the simulation's sandbox), newest first."""
    from core.operations import registry, version_table

    return version_table.listing(registry.SIM_MODEL_NAME if args.simulation else registry.MODEL_NAME)


def render(result: dict[str, Any]) -> str:
    """One line per version: aliases, creator, date, data and the headline validation metrics."""
    from core.operations import version_table

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

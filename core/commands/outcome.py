"""``python -m core outcome``: record a failure, removal or inspection of an in-service engine."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import fleet_ops, names

HELP = "record an engine's failure, removal (closes it; its readings become history) or inspection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``outcome``."""
    parser.add_argument("--dataset", required=True, metavar="NAME", type=names.argument(names.DATASET),
                        help="the in-service dataset holding the engine")
    parser.add_argument("--engine", required=True, metavar="ID", type=names.argument(names.ENGINE),
                        help="the engine id as the operator writes it")
    parser.add_argument("--cycle", required=True, type=int, metavar="N", help="the cycle of the event")
    parser.add_argument("--event", required=True, choices=list(fleet_ops.EVENTS), help="what happened")
    parser.add_argument("--note", default="", metavar="TEXT", help="free text kept with the outcome")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Record the outcome with the serving model's version; UserError (nothing written) when refused."""
    from core.operations import registry

    return fleet_ops.record_outcome(args.dataset, args.engine, args.cycle, args.event, args.note,
                                    model_version=registry.champion_version())


def render(result: dict[str, Any]) -> str:
    """One sentence."""
    line = f"Recorded {result['event']} of engine {result['engine']} ({result['dataset']}) at cycle {result['cycle']}."
    if result["closed"]:
        line += f" The engine is closed; its readings are now history in '{result['history_dataset']}'."
    return line

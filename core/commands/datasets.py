"""``python -m core datasets``: the loaded datasets with their role, engines and readings."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import queries, store

HELP = "list the loaded datasets: name, role, engines, readings, first and last loaded"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``datasets`` takes no arguments beyond ``--json``."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One record per dataset (the simulation's sandbox is not listed) and ``engines``, the engines in the store
    counted once (a closed engine's history copy is not counted again)."""
    with store.connect(read_only=True) as con:
        listing = queries.list_datasets(con)
        engines = queries.engine_count(con)
    records = [
        {"name": row["name"], "role": row["role"], "subset": row["subset"], "engines": int(row["engines"]),
         "closed_engines": int(row["closed"]), "readings": int(row["rows"]), "has_truth": bool(row["has_truth"]),
         "first_loaded": row["loaded_at"].isoformat(sep=" ", timespec="seconds"),
         "last_loaded": row["last_loaded_at"].isoformat(sep=" ", timespec="seconds")}
        for row in listing.to_dict("records")
    ]
    return {"datasets": records, "engines": engines}


def render(result: dict[str, Any]) -> str:
    """A table, one dataset a line."""
    if not result["datasets"]:
        return "No datasets are loaded."
    header = f"{'name':<24} {'role':<10} {'engines':>8} {'closed':>7} {'readings':>10}  first loaded         last loaded"
    lines = [header]
    for d in result["datasets"]:
        lines.append(f"{d['name']:<24} {d['role']:<10} {d['engines']:>8,} {d['closed_engines']:>7,} "
                     f"{d['readings']:>10,}  {d['first_loaded']}  {d['last_loaded']}")
    lines.append(f"{result['engines']:,} engines in all, each counted once (a closed engine's history copy is not "
                 "counted again).")
    return "\n".join(lines)

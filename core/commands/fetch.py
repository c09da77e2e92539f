"""``python -m core fetch``: get the twelve C-MAPSS files (from PM_DATA_DIR or NASA's zip), optionally load them."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import fetch, ingest

HELP = "copy the C-MAPSS files from PM_DATA_DIR or download NASA's zip; --load also ingests them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``fetch``."""
    parser.add_argument("--dest", default=None, help="folder to put the files in (default $PM_HOME/downloads/cmapss)")
    parser.add_argument("--source", default=None, help="a folder or URL to take them from (default PM_DATA_DIR, "
                                                       "else PM_CMAPSS_URL / NASA's URL)")
    parser.add_argument("--load", action="store_true", help="load the files into the fleet store afterwards")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Fetch the files and, with ``--load``, ingest them."""
    result = fetch.fetch(args.dest or fetch.default_dest(), source=args.source)
    if args.load:
        result["load"] = ingest.load(result["files"]).to_dict()
    return result


def render(result: dict[str, Any]) -> str:
    """Where the files came from and went, and what loading added."""
    text = f"Put {len(result['files'])} C-MAPSS files from {result['source']} into {result['dest']}."
    if "load" in result:
        load = result["load"]
        text += (f"\nLoaded {load['readings_added']:,} readings and {load['truth_rows_added']:,} truth rows; "
                 f"skipped {load['skipped']} file(s) already loaded.")
    return text

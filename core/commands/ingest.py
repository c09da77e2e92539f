"""``python -m core ingest PATH...``: validate C-MAPSS files and load them into the fleet store."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import ingest, names, store

HELP = "load C-MAPSS files (.txt, .txt.gz, NASA zip, folders, CSV/Parquet) into the fleet store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ingest``."""
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or NASA zips to load")
    parser.add_argument("--role", choices=["history", "fleet", "evaluation"],
                        help="what the data is for (default from the file name: train_* history, test_* "
                             "evaluation, anything else fleet)")
    parser.add_argument("--dataset", metavar="NAME", type=names.argument(names.DATASET),
                        help="load into this dataset (default: the file name); an existing fleet or evaluation "
                             "dataset gets the new readings appended")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the files in one transaction; a bad file raises UserError and changes nothing."""
    summary = ingest.load(args.paths, role=args.role, dataset=args.dataset).to_dict()
    with store.connect(read_only=True) as con:
        (readings, truth, datasets) = con.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM rul_truth), (SELECT count(*) FROM datasets)"
        ).fetchall()[0]
    summary["store"] = {"datasets": int(datasets), "readings": int(readings), "truth_rows": int(truth)}
    return summary


def render(result: dict[str, Any]) -> str:
    """A short human-readable summary: one line per file, then the totals."""
    lines = []
    appended = {a["file"]: a for a in result.get("appended", [])}
    for f in result["files"]:
        if f["status"] != "ok":
            lines.append(f"{f['file']}: skipped, the same content is already loaded.")
        elif f["role"] == "truth":
            lines.append(f"{f['file']}: {f['rows']:,} RUL values for {f['target']} loaded.")
        elif f["file"] in appended:
            a = appended[f["file"]]
            lines.append(f"{f['file']}: {a['readings_added']:,} readings appended to {f['name']} "
                         f"({a['readings_unchanged']:,} already stored, {len(a['new_engines'])} new engines).")
        else:
            lines.append(f"{f['file']}: {f['name']} ({f['role']}) loaded, {f['rows']:,} readings of "
                         f"{f['engines']} engines.")
    lines.append(
        f"Added {len(result['datasets_added'])} dataset(s), {result['readings_added']:,} readings and "
        f"{result['truth_rows_added']:,} truth rows; skipped {result['skipped']} file(s) already loaded."
    )
    totals = result["store"]
    lines.append(f"The store now holds {totals['datasets']} dataset(s), {totals['readings']:,} readings and "
                 f"{totals['truth_rows']:,} truth rows.")
    return "\n".join(lines)

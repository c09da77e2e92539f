"""``python -m core setup``: first-run setup behind `make run`.

Loads the C-MAPSS files when the store is empty (from ``PM_DATA_DIR``, else NASA's zip)
and starts training a first model in the background when none is registered. Missing data
or network is not an error here: the dashboard still starts and says how to load data.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core import config
from core.errors import UserError

HELP = "load the data and start training a first model if there are none (used by `make run`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``setup``."""
    parser.add_argument("--no-train", action="store_true", help="do not start training a first model")


def _bar(label: str) -> Callable[[float, str], None]:
    def show(fraction: float, message: str) -> None:
        filled = int(30 * min(max(fraction, 0.0), 1.0))
        sys.stderr.write(f"\r{label} [{'#' * filled}{' ' * (30 - filled)}] {fraction:4.0%} {message[:60]:<60}")
        if fraction >= 1.0:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _load_data() -> str:
    from core.data import fetch, ingest, queries, store

    with store.connect() as con:
        loaded = queries.list_datasets(con)
    if not loaded.empty:
        return f"{len(loaded)} datasets are already loaded."
    folder = config.data_dir()
    try:
        if folder is None:
            files: list[Any] = fetch.fetch(fetch.default_dest(), progress=_bar("Downloading C-MAPSS"))["files"]
        else:
            files = [folder]
        summary = ingest.load(files, progress=_bar("Loading into DuckDB"))
    except UserError as err:
        return f"No data loaded: {err} The dashboard starts anyway; load the files on its Data page."
    return (
        f"Loaded {len(summary.datasets_added)} datasets ({summary.readings_added:,} readings, "
        f"{summary.truth_rows_added:,} true-RUL rows)."
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare runtime state, data and a first model; never fails for want of data or network."""
    from core.operations import registry

    home = config.ensure_home()
    registry.init()
    result: dict[str, Any] = {"home": str(home.home), "data": _load_data()}
    if not args.no_train:
        from core.operations import retrain

        result["model"] = retrain.first_model("setup")[1]
    return result


def render(result: dict[str, Any]) -> str:
    """One line per step."""
    return "\n".join(f"{key}: {value}" for key, value in result.items())

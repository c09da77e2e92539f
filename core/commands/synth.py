"""``python -m core synth --engines N``: write a synthetic in-service fleet resampled from C-MAPSS (for benchmarks)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

HELP = "write a synthetic in-service fleet (role fleet) resampled and perturbed from the four C-MAPSS subsets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``synth``."""
    parser.add_argument("--engines", type=int, required=True, help="how many engines the fleet holds")
    parser.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same file (default 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="file to write (default synth_fleet_<N>.<format> in the working directory)")
    parser.add_argument("--format", choices=["csv", "parquet"], default=None,
                        help="file format (default from --out's suffix, else parquet)")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder with the C-MAPSS train_FD00x files (default PM_DATA_DIR or ../shared/data/cmapss)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the fleet and write it; returns where, how big, and how long it took."""
    from core.data import synth

    fmt = synth.format_for(args.out or Path(), args.format)
    out = (args.out or Path(f"synth_fleet_{args.engines}.{fmt}")).resolve()
    started = time.perf_counter()
    table = synth.generate(args.engines, args.seed, synth.load_source(args.data))
    size = synth.write(table, out, fmt)
    return {"path": str(out), "format": fmt, "engines": args.engines, "readings": table.num_rows, "seed": args.seed,
            "bytes": size, "seconds": round(time.perf_counter() - started, 2)}


def render(result: dict[str, Any]) -> str:
    """One line: what was written where."""
    return (f"Wrote {result['engines']:,} engines ({result['readings']:,} readings, seed {result['seed']}) to "
            f"{result['path']} ({result['bytes'] / 2**20:.1f} MB {result['format']}) in {result['seconds']:.1f} s; "
            "load it with 'python -m core ingest' (role fleet).")

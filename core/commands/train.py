"""``python -m core train``: train the ensemble on loaded training data, register it, apply the gate."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from core.data import names
from core.data.cmapss import SUBSETS
from core.errors import UserError

HELP = "train the XGBoost + LSTM ensemble, log it to MLflow and register a new version"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``train``."""
    parser.add_argument("--subsets", nargs="+", choices=SUBSETS, help="train on train_FD00x of these subsets")
    parser.add_argument("--datasets", nargs="+", type=names.argument(names.DATASET),
                        help="or name the history datasets explicitly (default: every history dataset not "
                             "deselected on the Models page)")
    parser.add_argument("--epochs", type=int, help="LSTM epochs (default: the model's default)")
    parser.add_argument("--trees", type=int, help="XGBoost trees (default: the model's default)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--background", action="store_true", help="run as a background job and return at once")
    parser.add_argument("--dask", metavar="SCHEDULER_ADDRESS",
                        help="train the XGBoost member on this Dask cluster (e.g. tcp://host:8786); the LSTM trains here")


def print_progress(event: dict[str, Any]) -> None:
    parts = [str(event.get("phase", ""))]
    if "epoch" in event:
        parts.append(f"{event['epoch']}/{event.get('epochs', '?')}")
    parts += [f"{k}={v:.4g}" for k, v in event.items() if k.endswith("_loss") and isinstance(v, (int, float))]
    if event.get("message"):
        parts.append(str(event["message"]))
    print(" ".join(parts), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export the snapshot, then train in the foreground or start the background job.

    Both hold the single-training slot: while another training or tuning runs, this one is refused.
    """
    from core.operations import retrain
    from core.operations.gate import rules_before_training
    from core.operations.training_run import run_training

    rules_before_training()
    names = retrain.training_datasets(args.subsets, args.datasets)
    config = retrain.make_config(epochs=args.epochs, trees=args.trees, device=args.device, seed=args.seed)
    snap = retrain.export_snapshot(names)
    if args.dask and args.background:
        raise UserError("--dask trains in the foreground: leave out --background.")
    if args.background:
        job = retrain.start_job(snap, config, created_by="cli")
        return {"job": job.id, "state": job.state, "data": names, "snapshot": snap.sha256}
    with retrain.exclusive(retrain.TRAIN_KIND, "core.commands.train", config, snap) as slot:
        def progress(event: dict[str, Any]) -> None:
            if "device" in event:
                slot.device = str(event["device"])
            print_progress(event)

        if args.dask:
            from core.operations.dask_training import run_dask_training

            slot.result = run_dask_training(snap.path, config, args.dask, progress)
        else:
            slot.result = run_training(snap.path, config, progress)
    return {**slot.result, "job": slot.id}

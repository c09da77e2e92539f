"""``python -m core tune``: search XGBoost and LSTM settings with Optuna on validation engines."""

from __future__ import annotations

import argparse
from typing import Any

from core.data import names
from core.data.cmapss import SUBSETS

HELP = "tune both members' hyper-parameters on validation engines; keep the best recipe if it beats the current one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tune``."""
    parser.add_argument("--subsets", nargs="+", choices=SUBSETS, help="tune on train_FD00x of these subsets")
    parser.add_argument("--datasets", nargs="+", type=names.argument(names.DATASET),
                        help="or name the training datasets explicitly")
    parser.add_argument("--trials", type=int, default=10, help="Optuna trials after the baseline (default 10)")
    parser.add_argument("--epochs", type=int, help="LSTM epochs per trial (default: the recipe's)")
    parser.add_argument("--trees", type=int, help="XGBoost trees per trial (default: the recipe's)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--seed", type=int, help="random seed (split, models and sampler)")
    parser.add_argument("--background", action="store_true", help="run as a background job and return at once")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export the snapshot, then tune in the foreground or start the background job."""
    from core.commands.train import print_progress
    from core.errors import UserError
    from core.operations import retrain, tune_job
    from core.operations.tune import tune

    if args.trials < 1:
        raise UserError("--trials must be at least 1.")
    names = retrain.training_datasets(args.subsets, args.datasets)
    base = retrain.make_config(epochs=args.epochs, trees=args.trees, device=args.device, seed=args.seed)
    snap = retrain.export_snapshot(names)
    if args.background:
        job = tune_job.start_job(snap, base, args.trials, created_by="cli")
        return {"job": job.id, "state": job.state, "data": names, "snapshot": snap.sha256}
    with retrain.exclusive(tune_job.TUNE_KIND, "core.commands.tune", base, snap) as slot:
        slot.result = tune(snap.path, base, args.trials, print_progress)
    return {**slot.result, "job": slot.id}

"""Benchmark: wall time to train the default recipe on one subset (FD001, FD004) and on all four.

Reports wall and process CPU seconds, the device and threads used, XGBoost trees kept and
LSTM epochs run. Run ``python -m core bench train_time [--json]``.
"""

from __future__ import annotations

import argparse
import resource
import time
from typing import Any

import pandas as pd

from bench.accuracy import data_folder, machine, read_readings
from bench.results import Figure
from core.data.cmapss import SUBSETS
from models.device import default_threads
from models.training import TrainConfig, train

DEFAULT_RUNS = ["FD001", "FD004"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the training-time benchmark."""
    parser.add_argument("--subsets", nargs="+", default=DEFAULT_RUNS, choices=SUBSETS,
                        help="subsets to time one by one (default: FD001 FD004)")
    parser.add_argument("--all", action="store_true", help="also time one model on all four training sets")
    parser.add_argument("--data-dir", default=None, help="folder with the NASA .txt.gz files")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="training device")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _time(name: str, subsets: list[str], args: argparse.Namespace) -> dict[str, Any]:
    folder = data_folder(args.data_dir)
    frame = pd.concat([read_readings(folder, f"train_{s}") for s in subsets], ignore_index=True)
    cfg = TrainConfig(device=args.device)
    cpu, wall = _cpu_seconds(), time.perf_counter()
    result = train(frame, cfg)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    epochs = [h for h in result.history if h.get("phase") == "lstm" and "train_loss" in h]
    best = next(h["best_epoch"] for h in result.history if "best_epoch" in h)
    return {"train": name, "rows": len(frame), "wall_s": wall, "cpu_s": cpu,
            "device": result.ensemble.info["device"]["name"], "threads": cfg.threads or default_threads(),
            "xgb_trees": [result.ensemble.xgb.reg.num_boosted_rounds(), result.ensemble.xgb.clf.num_boosted_rounds()],
            "lstm_epochs": len(epochs), "lstm_best_epoch": best, "val_rmse": result.metrics["val_rmse"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Time training of the default recipe on each subset (and all four with --all)."""
    runs = [_time(s, [s], args) for s in args.subsets]
    if args.all:
        runs.append(_time("ALL", list(SUBSETS), args))
    return {"config": TrainConfig(device=args.device).to_dict(), "machine": machine(), "results": runs}


def render(result: dict[str, Any]) -> str:
    """The timings as a fixed-width table."""
    lines = [(f"{'train':>6}  {'rows':>7}  {'wall s':>7}  {'cpu s':>7}  {'device':>8}  {'thr':>3}  "
             f"{'trees (rul/fail)':>16}  {'epochs':>6}  {'val RMSE':>8}")]
    for r in result["results"]:
        trees = f"{r['xgb_trees'][0]}/{r['xgb_trees'][1]}"
        lines.append(f"{r['train']:>6}  {r['rows']:>7}  {r['wall_s']:>7.1f}  {r['cpu_s']:>7.1f}  {r['device']:>8}  "
                     f"{r['threads']:>3}  {trees:>16}  {r['lstm_epochs']:>6}  {r['val_rmse']:>8.2f}")
    lines.append(f"machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> list[Figure]:
    """Wall time of each training: one subset (target 5 min) or all four in one model (target 6 min). The key names
    the kind of device (``cpu``, ``cuda``), the label the device itself."""
    return [Figure(f"train_time.{row['train']}.{row['device'].split()[0]}.wall_s",
                   f"Train the default recipe on {'all four subsets' if row['train'] == 'ALL' else row['train']}, "
                   f"on {row['device']}", row["wall_s"], "s", target=360.0 if row["train"] == "ALL" else 300.0)
            for row in result["results"]]

"""Benchmark: test-set accuracy of the default training recipe on NASA C-MAPSS.

For each subset FD00x a model is trained on ``train_FD00x`` (validation engines held out
from it) and reported on ``test_FD00x`` at each engine's last cycle against ``RUL_FD00x``;
then one model trained on all four training sets is reported on each test set. Test sets
are used for reporting only. The figures come from :func:`models.training.evaluate`, which leaves out any test
engine the model was trained on (an evaluation engine closed by a recorded outcome) and counts it in
``excluded``; trained on NASA's training files alone, these models leave none out (``excluded`` is 0 in the JSON).

RMSE, MAE, PHM08 and interval coverage compare with the true RUL capped at 125 (the target
definition); ``rmse_raw`` with the uncapped truth. ``rmse_xgb`` / ``rmse_lstm`` score each member
alone; ``val_*`` are the validation (held-out training engines, every cycle) RMSEs and
``val_gain`` is how much lower the blend's validation RMSE is than its better member's, in %. F2/precision/recall score risk HIGH as
the prediction of "fails within 30 cycles"; AUCs score the calibrated probability.

Run ``python -m core bench accuracy [--json]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.results import Figure
from core import config
from core.data.cmapss import COLUMNS, SUBSETS
from core.errors import UserError
from models.training import TrainConfig, evaluate, train

COLUMNS_SHOWN = [("model", "model", "{}"), ("test", "test set", "{}"), ("rmse", "RMSE", "{:.2f}"),
                 ("rmse_xgb", "XGB", "{:.2f}"), ("rmse_lstm", "LSTM", "{:.2f}"), ("val_rmse", "val", "{:.2f}"),
                 ("val_rmse_xgb", "val XGB", "{:.2f}"), ("val_rmse_lstm", "val LSTM", "{:.2f}"),
                 ("val_gain", "val gain %", "{:.1f}"),
                 ("rmse_uncapped", "RMSE raw", "{:.2f}"), ("phm08", "PHM08", "{:.0f}"), ("f2", "F2", "{:.3f}"),
                 ("recall", "recall", "{:.3f}"), ("precision", "precision", "{:.3f}"), ("roc_auc", "ROC-AUC", "{:.3f}"),
                 ("coverage", "cover@90", "{:.3f}"), ("interval_width", "width", "{:.1f}"),
                 ("train_seconds", "train s", "{:.0f}")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the accuracy benchmark."""
    parser.add_argument("--subsets", nargs="+", default=SUBSETS, choices=SUBSETS, help="subsets to train and test "
                                                                                      "one by one (default: all four)")
    parser.add_argument("--no-combined", action="store_true", help="skip the model trained on all four subsets")
    parser.add_argument("--data-dir", default=None, help="folder with the NASA .txt.gz files "
                                                         "(default: PM_DATA_DIR or ../shared/data/cmapss)")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed, help="training seed")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="training device")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="LSTM epochs (default: the recipe's)")
    parser.add_argument("--trees", type=int, default=TrainConfig.n_trees, help="XGBoost trees (default: the recipe's)")


def data_folder(value: str | None) -> Path:
    """The folder holding the NASA files: the argument, PM_DATA_DIR, or the shared copy next to the repo."""
    folder = Path(value) if value else config.data_dir() or config.REPO_ROOT.parent / "shared" / "data" / "cmapss"
    if not folder.is_dir():
        raise UserError(f"The C-MAPSS data folder {folder} does not exist; pass --data-dir or set PM_DATA_DIR.")
    return folder


def read_readings(folder: Path, name: str) -> pd.DataFrame:
    """One NASA readings file (e.g. ``train_FD001``) with a leading dataset column."""
    path = folder / f"{name}.txt.gz"
    if not path.is_file():
        path = folder / f"{name}.txt"
    if not path.is_file():
        raise UserError(f"The file {name}.txt(.gz) is not in {folder}.")
    frame = pd.read_csv(path, sep=r"\s+", header=None, names=COLUMNS)
    frame.insert(0, "dataset", name)
    return frame


def read_truth(folder: Path, subset: str) -> pd.DataFrame:
    """``RUL_FD00x`` as DataFrame[dataset, unit, rul] for ``test_FD00x``."""
    path = folder / f"RUL_{subset}.txt.gz"
    if not path.is_file():
        path = folder / f"RUL_{subset}.txt"
    if not path.is_file():
        raise UserError(f"The file RUL_{subset}.txt(.gz) is not in {folder}.")
    rul = pd.read_csv(path, sep=r"\s+", header=None, names=["rul"])["rul"].to_numpy()
    return pd.DataFrame({"dataset": f"test_{subset}", "unit": np.arange(1, len(rul) + 1), "rul": rul})


def machine() -> dict[str, Any]:
    """Where the benchmark ran."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count()}


def _train_and_report(name: str, train_sets: list[str], test_subsets: list[str], folder: Path,
                      cfg: TrainConfig) -> list[dict[str, Any]]:
    frame = pd.concat([read_readings(folder, f"train_{s}") for s in train_sets], ignore_index=True)
    started = time.perf_counter()
    result = train(frame, cfg)
    seconds = time.perf_counter() - started
    val = {k: result.metrics[k] for k in ("val_rmse", "val_rmse_xgb", "val_rmse_lstm")}
    val["val_gain"] = 100.0 * (1.0 - val["val_rmse"] / min(val["val_rmse_xgb"], val["val_rmse_lstm"]))
    rows = []
    for subset in test_subsets:
        scores = evaluate(result.ensemble, read_readings(folder, f"test_{subset}"), read_truth(folder, subset))
        rows.append({"model": name, "test": f"test_{subset}", **scores, "train_seconds": seconds, **val,
                     "weights": result.ensemble.weights,
                     "thresholds": result.ensemble.thresholds, "device": result.ensemble.info["device"]["name"]})
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train per subset (and on all four) with the default recipe and report test-set accuracy."""
    folder = data_folder(args.data_dir)
    cfg = TrainConfig(seed=args.seed, device=args.device, epochs=args.epochs, n_trees=args.trees)
    cfg.validate()
    rows: list[dict[str, Any]] = []
    for subset in args.subsets:
        rows += _train_and_report(subset, [subset], [subset], folder, cfg)
    if not args.no_combined:
        rows += _train_and_report("ALL", list(SUBSETS), list(args.subsets), folder, cfg)
    return {"config": cfg.to_dict(), "machine": machine(), "results": rows}


def render(result: dict[str, Any]) -> str:
    """The results as a fixed-width table."""
    header = [title for _, title, _ in COLUMNS_SHOWN]
    body = [[fmt.format(row[key]) for key, _, fmt in COLUMNS_SHOWN] for row in result["results"]]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in body]
    lines.append(f"machine: {result['machine']['processor']}, {result['machine']['cpus']} CPUs; "
                 f"RMSE/PHM08/coverage against true RUL capped at 125, 'RMSE raw' uncapped.")
    return "\n".join(lines)


RMSE_TARGETS = {"test_FD001": 13.0, "test_FD002": 17.0, "test_FD003": 13.0, "test_FD004": 19.0}
"""Issue 3's test-RMSE targets per subset (the published DCNN results, rounded)."""


def figures(result: dict[str, Any]) -> list[Figure]:
    """Test RMSE (capped truth) and interval coverage of each model on its test set(s)."""
    out: list[Figure] = []
    for row in result["results"]:
        who = "one subset" if row["model"] != "ALL" else "all four subsets"
        key = f"accuracy.{row['model']}.{row['test']}"
        out.append(Figure(f"{key}.rmse", f"Test RMSE on {row['test']}, model trained on {who}", row["rmse"],
                          "cycles", target=RMSE_TARGETS.get(row["test"])))
        out.append(Figure(f"{key}.coverage", f"90 % interval coverage on {row['test']} ({who})", row["coverage"],
                          "", target=0.85, better="higher"))
    return out

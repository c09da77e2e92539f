"""Ablation of the LSTM member: one variant of its inputs/architecture on one subset, alone and blended.

Fits the feature pipeline and the LSTM on ``train_FD00x`` (validation engines held out as in
training), reports the LSTM's validation RMSE (every cycle of the held-out engines) and test
RMSE (last cycle, truth capped at 125), then blends it with the default XGBoost regressor
(weight fitted on validation as in training) and reports the blend and the gain over the better
member. XGBoost does not depend on the LSTM variant, so its predictions can be cached per subset.

Run ``python -m bench.lstm_ablation FD001 [--stats mean10,meanall,slopeall] [--conv 32] ...``;
it prints one JSON line (BENCHMARKS.md lists the variants measured).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.accuracy import data_folder, read_readings, read_truth
from core.data.cmapss import RUL_CAP
from core.data.features import DEFAULT_LSTM_STATS, FeaturePipeline
from models.calibration import fit_blend_weight
from models.device import resolve_device, seed_everything
from models.lstm import fit_lstm
from models.training import TrainConfig, prepared_targets, split_engines
from models.xgb import XGBModels


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def main(argv: list[str] | None = None) -> None:
    """Parse the variant, train and print the JSON line."""
    cfg = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m bench.lstm_ablation")
    parser.add_argument("subset")
    parser.add_argument("--stats", default=",".join(DEFAULT_LSTM_STATS), help="summary channels ('' for none)")
    parser.add_argument("--window", type=int, default=cfg.window)
    parser.add_argument("--conv", type=int, default=cfg.conv)
    parser.add_argument("--hidden", type=int, default=cfg.hidden)
    parser.add_argument("--epochs", type=int, default=cfg.epochs)
    parser.add_argument("--samples", type=int, default=cfg.samples_per_epoch, help="training windows per epoch")
    parser.add_argument("--fail-weight", type=float, default=cfg.fail_weight, help="weight of the failure head's loss")
    parser.add_argument("--seed", type=int, default=cfg.seed,
                        help="the LSTM's seed (the engine split and XGBoost keep the recipe's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--xgb-cache", type=Path, default=None, help="folder caching XGBoost predictions per subset")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder, cap = data_folder(args.data_dir), float(RUL_CAP)
    frame = read_readings(folder, f"train_{args.subset}")
    seed_everything(cfg.seed, resolve_device("cpu"))
    train_mask, val_mask = split_engines(frame, cfg.val_fraction, cfg.seed)
    stats = tuple(s for s in args.stats.split(",") if s)
    pipe = FeaturePipeline(lstm_window=args.window, lstm_stats=stats).fit(frame[train_mask])
    prep_tr, prep_val = pipe.prepare(frame[train_mask]), pipe.prepare(frame[val_mask])
    rul_tr, _, fail_tr = prepared_targets(prep_tr, cap)
    rul_val, _, fail_val = prepared_targets(prep_val, cap)
    rows_tr, rows_val = prep_tr.rows("all"), prep_val.rows("all")
    windows_val = pipe.windows(prep_val, rows_val)
    params = dataclasses.replace(cfg.lstm_params(), hidden=args.hidden, epochs=args.epochs,
                                 samples_per_epoch=args.samples, conv=args.conv, fail_weight=args.fail_weight)
    started = time.perf_counter()
    model, history = fit_lstm(pipe, prep_tr, rows_tr, rul_tr, fail_tr, windows_val, rul_val, fail_val,
                              params=params, cap=cap, device="cpu", seed=args.seed)
    seconds = time.perf_counter() - started
    test = pipe.transform(read_readings(folder, f"test_{args.subset}"), "last")
    truth = read_truth(folder, args.subset).set_index("unit")["rul"]
    capped = np.minimum(truth.reindex(test.keys["unit"].to_numpy()).to_numpy(dtype=float), cap)
    lstm_val, lstm_test = model.predict(windows_val)[0], model.predict(test.windows)[0]
    cache = args.xgb_cache / f"xgb_{args.subset}.npz" if args.xgb_cache else None
    if cache is not None and cache.is_file():
        stored = np.load(cache)
        xgb_val, xgb_test = stored["val"], stored["test"]
    else:
        xgb, _ = XGBModels.fit(pipe.tree_features(prep_tr, rows_tr), rul_tr, fail_tr,
                               pipe.tree_features(prep_val, rows_val), rul_val, fail_val,
                               params=TrainConfig(threads=args.threads).xgb_params(), cap=cap, device="cpu",
                               seed=cfg.seed, feature_names=pipe.tree_names)
        xgb_val, xgb_test = xgb.predict(pipe.tree_features(prep_val, rows_val))[0], xgb.predict(test.tree)[0]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, val=xgb_val, test=xgb_test)
    w = fit_blend_weight(xgb_val, lstm_val, rul_val, "squared")
    blend_val = np.clip(w * xgb_val + (1 - w) * lstm_val, 0, cap)
    blend_test = np.clip(w * xgb_test + (1 - w) * lstm_test, 0, cap)
    val = {"lstm": _rmse(lstm_val, rul_val), "xgb": _rmse(xgb_val, rul_val), "blend": _rmse(blend_val, rul_val)}
    print(json.dumps({
        "subset": args.subset, "seed": args.seed, "fail_weight": args.fail_weight, "stats": list(stats),
        "window": args.window, "conv": args.conv, "hidden": args.hidden, "samples_per_epoch": args.samples,
        "channels": pipe.n_channels,
        "val_rmse_lstm": round(val["lstm"], 3), "test_rmse_lstm": round(_rmse(lstm_test, capped), 3),
        "val_rmse_xgb": round(val["xgb"], 3), "test_rmse_xgb": round(_rmse(xgb_test, capped), 3),
        "w_xgb": w, "val_rmse_blend": round(val["blend"], 3), "test_rmse_blend": round(_rmse(blend_test, capped), 3),
        "val_gain_pct": round(100 * (1 - val["blend"] / min(val["lstm"], val["xgb"])), 2),
        "lstm_epochs": len([h for h in history if "train_loss" in h]), "lstm_seconds": round(seconds, 1),
    }), flush=True)


if __name__ == "__main__":
    main()

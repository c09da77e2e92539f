"""Benchmark: train one model on the C-MAPSS training sets on a chosen device, then check its bundle on the CPU.

``train`` runs the default recipe on the given subsets (all four by default, in one model, as
``python -m core train --subsets FD001 FD002 FD003 FD004`` does, but reading the NASA text files directly, without
the store or MLflow) and reports:

- the wall time of each phase (features, XGBoost, LSTM, calibration) and of the whole training;
- the device each member really trained on: the device of the LSTM's parameters in its forward passes, and each
  booster's configured ``device`` when XGBoost finished training it, before ``XGBModels.to_cpu`` moves the
  boosters to the CPU for serving (the network, too, is moved to the CPU at the end of ``fit_lstm``);
- the SHAP values of the trained model as the project computes them (:mod:`models.explain`): TreeSHAP by
  ``pred_contribs`` on every cycle of the test engines, and its additivity; when XGBoost trained on CUDA, the same
  call on a GPU copy of the regressor too, for its time and its difference; and the LSTM's expected gradients for
  a few test engines, with how far their sum misses the network's output minus the background mean.

It saves the bundle with :func:`models.bundle.save_bundle` to ``OUT/bundle``, the predictions of the trained model
for each test engine's last cycle (the blend and each member's outputs) to ``OUT/predictions.csv`` and the report to
``OUT/summary.json``. ``compare OUT`` loads that bundle on the CPU, predicts the same engines and reports the largest
absolute difference from the predictions written at training time.

Run ``python -m bench.gpu_train train --device cuda --out DIR`` and ``python -m bench.gpu_train compare DIR``;
each prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import torch
import xgboost as xgb

from bench.accuracy import data_folder, machine, read_readings, read_truth
from core.data.cmapss import SUBSETS
from models.bundle import load_bundle, save_bundle
from models.device import default_threads
from models.ensemble import Ensemble
from models.explain import Explainer, background_windows, tree_contributions
from models.lstm import RULNet
from models.training import TrainConfig, evaluate, train, versions

PREDICTED = ["rul", "rul_low", "rul_high", "p_fail_30", "rul_xgb", "rul_lstm", "p_xgb", "p_lstm"]
"""The prediction columns written at training time and compared after loading the bundle."""


class DeviceProbe:
    """Records where the members trained while :meth:`watch` is active.

    The LSTM: the device of a ``RULNet``'s first parameter at each forward pass in training mode (a global
    forward pre-hook). XGBoost: each booster's configured ``device`` and its time, read as ``xgboost.train``
    returns it.
    """

    def __init__(self) -> None:
        self.lstm_devices: Counter[str] = Counter()
        self.boosters: list[dict[str, Any]] = []

    def _forward(self, module: torch.nn.Module, _inputs: tuple) -> None:
        if isinstance(module, RULNet) and module.training:
            self.lstm_devices[str(next(module.parameters()).device)] += 1

    @contextmanager
    def watch(self) -> Iterator[DeviceProbe]:
        """Record while the block runs."""
        original = xgb.train

        def recorded_train(*args: Any, **kwargs: Any) -> xgb.Booster:
            started = time.perf_counter()
            booster = original(*args, **kwargs)
            config = json.loads(booster.save_config())
            self.boosters.append({"objective": config["learner"]["objective"]["name"],
                                  "device": config["learner"]["generic_param"]["device"],
                                  "seconds": time.perf_counter() - started,
                                  "rounds": booster.num_boosted_rounds()})
            return booster

        handle = torch.nn.modules.module.register_module_forward_pre_hook(self._forward)
        try:
            with mock.patch.object(xgb, "train", recorded_train):
                yield self
        finally:
            handle.remove()

    def to_dict(self) -> dict[str, Any]:
        """LSTM forward passes per device and one record per booster trained."""
        return {"lstm_forward_passes": dict(self.lstm_devices), "xgboost_boosters": self.boosters}


class PhaseClock:
    """A training progress function that notes when each phase starts (monotonic and local wall-clock time)."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, float, str]] = []

    def __call__(self, event: dict) -> None:
        phase = str(event.get("phase", ""))
        if phase and (not self.starts or self.starts[-1][0] != phase):
            self.starts.append((phase, time.perf_counter(), datetime.now().isoformat(timespec="milliseconds")))

    def phases(self, ended: float) -> list[dict[str, Any]]:
        """Each phase with its local start time and its seconds up to the next phase (the last up to `ended`)."""
        ends = [start for _, start, _ in self.starts[1:]] + [ended]
        return [{"phase": phase, "started_at": stamp, "seconds": end - start}
                for (phase, start, stamp), end in zip(self.starts, ends, strict=True)]


def read_sets(folder: Path, prefix: str, subsets: list[str]) -> pd.DataFrame:
    """The NASA readings files ``{prefix}_FD00x`` of `subsets`, one frame with a dataset column."""
    return pd.concat([read_readings(folder, f"{prefix}_{s}") for s in subsets], ignore_index=True)


def last_cycle_predictions(ensemble: Ensemble, frame: pd.DataFrame) -> pd.DataFrame:
    """dataset, unit, cycle and :data:`PREDICTED` at each engine's last cycle."""
    fs = ensemble.features(frame, "last")
    blended = ensemble.predict_features(fs)[["dataset", "unit", "cycle", "rul", "rul_low", "rul_high", "p_fail_30"]]
    return pd.concat([blended.reset_index(drop=True), ensemble.components(fs)], axis=1)


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - started


def tree_shap_check(ensemble: Ensemble, test: pd.DataFrame, on_gpu: bool) -> dict[str, Any]:
    """TreeSHAP on every test row as the project computes it, its additivity, and (`on_gpu`) a GPU copy's
    (timed after one warm-up call)."""
    pipeline = ensemble.pipeline
    prep = pipeline.prepare(test, "all")
    x = pipeline.tree_features(prep, prep.rows("all")).astype(np.float32)
    (values, bias), cpu_seconds = _timed(tree_contributions, ensemble, x)
    margin = ensemble.xgb.reg.predict(xgb.DMatrix(x), output_margin=True, validate_features=False)
    report = {"rows": len(x), "features": x.shape[1], "cpu_seconds": cpu_seconds,
              "cpu_threads": json.loads(ensemble.xgb.reg.save_config())["learner"]["generic_param"]["nthread"],
              "max_additivity_gap": float(np.max(np.abs(values.sum(axis=1) + bias - margin)))}
    if on_gpu:
        gpu = ensemble.xgb.reg.copy()
        gpu.set_param({"device": "cuda"})
        matrix = xgb.DMatrix(x)
        gpu.predict(matrix, pred_contribs=True, validate_features=False)
        contribs, gpu_seconds = _timed(gpu.predict, matrix, pred_contribs=True, validate_features=False)
        report.update({"gpu_seconds": gpu_seconds,
                       "gpu_device": json.loads(gpu.save_config())["learner"]["generic_param"]["device"],
                       "max_gpu_cpu_difference": float(np.max(np.abs(contribs[:, :-1] - values))),
                       "max_gpu_cpu_bias_difference": float(np.max(np.abs(contribs[:, -1] - bias)))})
    return report


def lstm_shap_check(ensemble: Ensemble, train_frame: pd.DataFrame, test: pd.DataFrame, engines: int,
                    seed: int) -> dict[str, Any]:
    """The LSTM's expected gradients (models.explain) for `engines` seeded test engines at their last cycle."""
    explainer = Explainer(ensemble, background_windows(ensemble, train_frame, seed=seed), seed=seed)
    fs = ensemble.features(test, "last")
    rows = np.sort(np.random.default_rng(seed).choice(len(fs.keys), size=min(engines, len(fs.keys)), replace=False))
    parts, seconds = _timed(explainer.attributions, fs, rows)
    with torch.no_grad():
        rul_lstm = ensemble.lstm.net(torch.from_numpy(fs.windows[rows]))[0].numpy() * ensemble.cap
    gap = np.abs(parts.lstm.sum(axis=(1, 2)) - (rul_lstm - explainer.lstm_base))
    return {"engines": len(rows), "seconds": seconds, "device": str(next(ensemble.lstm.net.parameters()).device),
            "nsamples": explainer.nsamples, "median_sum_gap_cycles": float(np.median(gap)),
            "max_sum_gap_cycles": float(np.max(gap))}


def run_train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, time, probe the devices, save the bundle and predictions, check SHAP; return the report."""
    folder = data_folder(args.data_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frame, read_seconds = _timed(read_sets, folder, "train", args.subsets)
    config = TrainConfig(device=args.device, seed=args.seed, epochs=args.epochs, n_trees=args.trees)
    probe, clock = DeviceProbe(), PhaseClock()
    started = time.perf_counter()
    with probe.watch():
        result = train(frame, config, clock)
    wall = time.perf_counter() - started
    ensemble = result.ensemble
    on_gpu = any(b["device"].startswith("cuda") for b in probe.boosters)
    gpu_memory = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    _, save_seconds = _timed(save_bundle, ensemble, out / "bundle")
    test = read_sets(folder, "test", args.subsets)
    predictions = last_cycle_predictions(ensemble, test)
    predictions.to_csv(out / "predictions.csv", index=False)
    report = {
        "device_requested": args.device, "device_resolved": ensemble.meta["device"], "probe": probe.to_dict(),
        "torch_cuda_max_memory_allocated_mib": gpu_memory / 2**20,
        "serving_devices": {"lstm": str(next(ensemble.lstm.net.parameters()).device),
                            "xgboost": [json.loads(b.save_config())["learner"]["generic_param"]["device"]
                                        for b in (ensemble.xgb.reg, ensemble.xgb.clf)]},
        "subsets": args.subsets, "rows": len(frame), "read_seconds": read_seconds, "train_wall_seconds": wall,
        "phases": clock.phases(started + wall), "save_seconds": save_seconds,
        "threads": config.threads or default_threads(),
        "xgb_trees_kept": [ensemble.xgb.reg.num_boosted_rounds(), ensemble.xgb.clf.num_boosted_rounds()],
        "lstm_epochs_run": sum(1 for h in result.history if h.get("phase") == "lstm" and "train_loss" in h),
        "validation": {k: result.metrics[k] for k in ("val_rmse", "val_rmse_xgb", "val_rmse_lstm", "val_coverage")},
        "test": {f"test_{s}": {k: v for k, v in evaluate(ensemble, read_readings(folder, f"test_{s}"),
                                                          read_truth(folder, s)).items()
                               if k in ("rmse", "rmse_xgb", "rmse_lstm", "coverage")}
                 for s in args.subsets},
        "versions": {**versions(), "torch_cuda": torch.version.cuda,
                     "xgboost_cuda": bool(xgb.build_info().get("USE_CUDA", False))},
        "machine": machine(),
    }
    if not args.skip_shap:
        report["shap"] = {"tree": tree_shap_check(ensemble, test, on_gpu),
                          "lstm": lstm_shap_check(ensemble, frame, test, args.shap_engines, args.seed)}
    (out / "summary.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def run_compare(args: argparse.Namespace) -> dict[str, Any]:
    """Load ``OUT/bundle`` on the CPU and compare its predictions with ``OUT/predictions.csv``."""
    out = Path(args.out)
    saved = pd.read_csv(out / "predictions.csv")
    ensemble, load_seconds = _timed(load_bundle, out / "bundle")
    folder = data_folder(args.data_dir)
    test = pd.concat([read_readings(folder, str(name)) for name in saved["dataset"].unique()], ignore_index=True)
    loaded = last_cycle_predictions(ensemble, test)
    merged = saved.merge(loaded, on=["dataset", "unit", "cycle"], how="outer", suffixes=("_saved", "_loaded"),
                         indicator=True, validate="one_to_one")
    unmatched = int((merged["_merge"] != "both").sum())
    both = merged[merged["_merge"] == "both"]
    return {"engines": len(both), "unmatched_engines": unmatched, "load_seconds": load_seconds,
            "trained_on": ensemble.meta.get("device"),
            "lstm_device": str(next(ensemble.lstm.net.parameters()).device),
            "xgboost_devices": [json.loads(b.save_config())["learner"]["generic_param"]["device"]
                                for b in (ensemble.xgb.reg, ensemble.xgb.clf)],
            "max_abs_difference": {c: float(np.max(np.abs(both[f"{c}_saved"] - both[f"{c}_loaded"])))
                                   for c in PREDICTED},
            "versions": versions()}


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run ``train`` or ``compare`` and print the result as JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_train", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("train", help="train, time, save the bundle and the predictions")
    fit.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cuda", help="training device")
    fit.add_argument("--out", required=True, help="folder for bundle/, predictions.csv and summary.json")
    fit.add_argument("--subsets", nargs="+", choices=SUBSETS, default=list(SUBSETS), help="default: all four")
    fit.add_argument("--epochs", type=int, default=TrainConfig.epochs, help="LSTM epochs (default: the recipe's)")
    fit.add_argument("--trees", type=int, default=TrainConfig.n_trees, help="XGBoost trees (default: the recipe's)")
    fit.add_argument("--seed", type=int, default=TrainConfig.seed, help="training seed")
    fit.add_argument("--shap-engines", type=int, default=32, help="test engines whose LSTM attributions are checked")
    fit.add_argument("--skip-shap", action="store_true", help="leave out the SHAP checks")
    compare = sub.add_parser("compare", help="load OUT/bundle on the CPU and compare with OUT/predictions.csv")
    compare.add_argument("out", help="the folder `train --out` wrote")
    for command in (fit, compare):
        command.add_argument("--data-dir", default=None, help="folder with the NASA .txt.gz files "
                                                              "(default: PM_DATA_DIR or ../shared/data/cmapss)")
    args = parser.parse_args(argv)
    result = run_train(args) if args.command == "train" else run_compare(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

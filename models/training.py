"""Train the ensemble on run-to-failure engines and evaluate it on a test set.

Engines (never rows) are split into training and validation, seeded and per dataset. The
feature pipeline and both model families are fitted on the training engines; early stopping,
blend weights, probability calibration, conformal intervals and risk thresholds on the
validation engines. Test sets are never used here: :func:`evaluate` only reports on them. Which rows are
training data is decided by dataset role before they get here (:mod:`core.data.snapshot`), never by a name; an
engine closed by an outcome carries its lineage (the in-service dataset and engine it came from), which the model
records so that :func:`evaluate` leaves such engines out of its test-set figures.

Intervals are calibrated on the validation rows within ``calibration_horizon`` cycles of
failure: every validation engine then weighs the same, whatever its life length, as engines
do in service near failure. Further from failure the capped target (125) is reached by the
intervals' upper end anyway, so those rows would only add easy, near-zero residuals. Their
quantile level is raised above the nominal coverage until intervals fitted without a group of
validation engines cover that group's readings at the nominal rate (``Conformal.fit``), since an
engine's readings are not independent of each other.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch
import xgboost

from core import metrics as m
from core.data.cmapss import FAIL_HORIZON, RUL_CAP
from core.data.features import DEFAULT_LSTM_STATS, FeaturePipeline, Prepared, check_frame
from core.data.snapshot import END_OF_LIFE_COLUMN, SOURCE_COLUMNS
from core.errors import UserError
from models.calibration import Calibrator, Conformal, fit_blend_weight, fit_thresholds
from models.device import default_threads, resolve_device, seed_everything
from models.ensemble import Ensemble
from models.lstm import LSTMParams, fit_lstm
from models.ood import ExperienceCheck
from models.xgb import XGBModels, XGBParams

ProgressFn = Callable[[dict], None]
XGBFit = Callable[[FeaturePipeline, pd.DataFrame], tuple[XGBModels, list[dict]]]
"""An XGBoost fit in place of the local one: (fitted pipeline, validation engines as DataFrame[dataset, unit]) ->
(both boosters, loss history); it trains on the other engines of the same data (see models.xgb_dask)."""


@dataclass
class TrainConfig:
    """Everything that decides a training run. Its defaults are the benchmarked recipe and the one place the
    training defaults live: :class:`models.xgb.XGBParams` and :class:`models.lstm.LSTMParams` are built from it."""

    epochs: int = 25
    n_trees: int = 600
    device: str = "auto"
    seed: int = 42
    val_fraction: float = 0.2
    window: int = 30
    coverage: float = 0.9
    calibration_horizon: int = 150
    """Conformal intervals are calibrated on validation rows at most this many cycles before failure."""
    max_depth: int = 5
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample: float = 0.6
    min_child_weight: float = 5.0
    early_stopping: int = 50
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.2
    batch: int = 256
    lr: float = 1e-3
    patience: int = 8
    """LSTM epochs without a better validation RMSE before training stops (the best epoch's weights are kept)."""
    fail_weight: float = 0.5
    """Weight of the LSTM's failure-head loss next to its (RUL / cap) squared error."""
    conv: int = 32
    """Filters of the LSTM's 1-D convolution front end (0: none)."""
    lstm_stats: str = ",".join(DEFAULT_LSTM_STATS)
    """The LSTM's summary channels, comma-separated (see ``FeaturePipeline.lstm_stats``; '' for none)."""
    lr_patience: int = 3
    """LSTM epochs without a better validation RMSE before its learning rate is halved."""
    samples_per_epoch: int = 16384
    """LSTM training windows drawn at random per epoch (0: every training row once)."""
    max_bin: int = 64
    medium_ratio: float = 0.5
    threads: int = 0
    """CPU threads for torch and XGBoost (0: every core but one, see models.device.default_threads)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict, converting each value to its setting's type; UserError on an unknown or bad setting."""
        kinds: dict[str, type] = {f.name: type(f.default) for f in fields(cls)}
        unknown = sorted(set(data) - set(kinds))
        if unknown:
            raise UserError(f"Unknown training setting(s): {', '.join(unknown)}.")
        values = {}
        for name, value in data.items():
            try:
                values[name] = kinds[name](value)
            except (TypeError, ValueError) as err:
                raise UserError(f"The training setting {name} must be a {kinds[name].__name__}, "
                                f"not {value!r}.") from err
        return cls(**values)

    def validate(self) -> None:
        """Raise UserError for a setting outside its range."""
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.n_trees >= 1, "n_trees must be at least 1"),
            (0.0 < self.val_fraction < 1.0, "val_fraction must lie between 0 and 1"),
            (self.window >= 2, "window must be at least 2 cycles"),
            (0.5 <= self.coverage < 1.0, "coverage must lie in [0.5, 1)"),
            (self.calibration_horizon >= FAIL_HORIZON, "calibration_horizon must be at least the failure horizon"),
            (self.max_depth >= 1 and self.hidden >= 1 and self.layers >= 1 and self.batch >= 1,
             "model sizes must be positive"),
            (0.0 <= self.dropout < 1.0, "dropout must lie in [0, 1)"),
            (0.0 < self.medium_ratio <= 1.0, "medium_ratio must lie in (0, 1]"),
            (self.threads >= 0 and self.samples_per_epoch >= 0, "threads and samples_per_epoch cannot be negative"),
            (self.conv >= 0 and self.lr_patience >= 1, "conv cannot be negative and lr_patience must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"Invalid training setting: {message}.")

    def summary_channels(self) -> tuple[str, ...]:
        """:attr:`lstm_stats` as the tuple the feature pipeline takes."""
        return tuple(spec.strip() for spec in self.lstm_stats.split(",") if spec.strip())

    def xgb_params(self) -> XGBParams:
        """The XGBoost part of the config."""
        return XGBParams(n_trees=self.n_trees, max_depth=self.max_depth, learning_rate=self.learning_rate,
                         subsample=self.subsample, colsample=self.colsample, min_child_weight=self.min_child_weight,
                         early_stopping=self.early_stopping, max_bin=self.max_bin,
                         threads=self.threads or default_threads())

    def lstm_params(self) -> LSTMParams:
        """The LSTM part of the config."""
        return LSTMParams(hidden=self.hidden, layers=self.layers, dropout=self.dropout, epochs=self.epochs,
                          batch=self.batch, lr=self.lr, patience=self.patience, fail_weight=self.fail_weight,
                          samples_per_epoch=self.samples_per_epoch, conv=self.conv, lr_patience=self.lr_patience)


@dataclass
class TrainResult:
    """The trained ensemble, validation metrics and the per-epoch/per-phase history."""

    ensemble: Ensemble
    metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)


def split_engines(frame: pd.DataFrame, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean row masks (train, validation): a seeded share of each dataset's engines goes to validation."""
    rng = np.random.default_rng(seed)
    val_keys: set[tuple[str, int]] = set()
    engines = frame[["dataset", "unit"]].drop_duplicates().sort_values(["dataset", "unit"])
    for name, group in engines.groupby("dataset", sort=True):
        units = group["unit"].to_numpy()
        n_val = round(val_fraction * len(units))
        n_val = min(max(n_val, 1), len(units) - 1) if len(units) > 1 else 0
        val_keys.update((str(name), int(u)) for u in rng.permutation(units)[:n_val])
    if not val_keys:
        raise UserError("Training needs at least two engines so that some can be held out for validation.")
    keys = pd.MultiIndex.from_arrays([frame["dataset"].astype(str), frame["unit"].astype(int)])
    val = np.asarray(keys.isin(list(val_keys)))
    if val.all():
        raise UserError("Training needs at least one engine outside the validation share.")
    return ~val, val


def end_of_life_offsets(frame: pd.DataFrame) -> dict[tuple[str, int], float]:
    """(dataset, unit) -> cycles from the last reading to the end of life, for engines where it is not 0.

    Read from the optional column :data:`core.data.snapshot.END_OF_LIFE_COLUMN` (absent: every engine ran to
    failure at its last reading, as NASA's training engines do).
    """
    if END_OF_LIFE_COLUMN not in frame.columns:
        return {}
    after = frame.groupby(["dataset", "unit"], sort=False)[END_OF_LIFE_COLUMN].max()
    keys = zip(after.index.get_level_values("dataset"), after.index.get_level_values("unit"), strict=True)
    return {(str(d), int(u)): float(v) for (d, u), v in zip(keys, after.to_numpy(), strict=True) if v}


def prepared_targets(prep: Prepared, cap: float,
                     offsets: dict[tuple[str, int], float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(capped RUL, uncapped RUL, fails-within-horizon label) of every row of engines whose end of life is known.

    An engine ends at its last reading unless `offsets` (see :func:`end_of_life_offsets`) gives the cycles after it.
    """
    cycle = prep.cycle.astype(float)
    rul_true = cycle[prep.last][prep.engine] - cycle
    if offsets:
        last = prep.last[prep.engine]
        rul_true = rul_true + np.array([offsets.get((str(d), int(u)), 0.0)
                                        for d, u in zip(prep.dataset[last], prep.unit[last], strict=True)])
    return np.minimum(rul_true, cap), rul_true, (rul_true <= FAIL_HORIZON).astype(np.float32)


def in_service_engines(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The in-service engines (dataset, engine id, unit) whose closed copies are among the rows of `frame`.

    Read from the optional :data:`core.data.snapshot.SOURCE_COLUMNS` (absent: none); an engine whose source is no
    longer stored has no unit.
    """
    if SOURCE_COLUMNS[0] not in frame.columns:
        return []
    found = frame[list(SOURCE_COLUMNS)].dropna(subset=list(SOURCE_COLUMNS[:2])).drop_duplicates(SOURCE_COLUMNS[:2])
    return [{"dataset": str(d), "engine": str(e), "unit": None if pd.isna(u) else int(u)}
            for d, e, u in sorted(found.itertuples(index=False, name=None), key=lambda r: (str(r[0]), str(r[1])))]


def trained_engines(ensemble: Ensemble) -> set[tuple[str, int]]:
    """(dataset, unit) of every in-service engine the ensemble was trained on (see :func:`in_service_engines`)."""
    listed = ensemble.meta.get("trained_on", {}).get("in_service_engines", [])
    return {(str(e["dataset"]), int(e["unit"])) for e in listed if e.get("unit") is not None}


def versions() -> dict[str, str]:
    """Library versions recorded with a model."""
    return {"python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "torch": torch.__version__, "xgboost": xgboost.__version__, "sklearn": sklearn.__version__}


def score_rows(rul: np.ndarray, rul_low: np.ndarray, rul_high: np.ndarray, p: np.ndarray, high: np.ndarray,
               truth: np.ndarray, cap: float) -> dict[str, float]:
    """Regression, classification and interval metrics of predictions against the true (uncapped) RUL.

    RMSE, MAE, PHM08 and coverage use the true RUL capped at `cap` (the target definition);
    ``rmse_uncapped`` compares with the raw truth. The failure label is true RUL <= horizon.
    """
    capped = np.minimum(truth, cap)
    label = truth <= FAIL_HORIZON
    return {
        "rmse": m.rmse(capped, rul), "rmse_uncapped": m.rmse(truth, rul), "mae": m.mae(capped, rul),
        "phm08": m.phm08_score(capped, rul), "f2": m.f2(label, high), "precision": m.precision(label, high),
        "recall": m.recall(label, high), "roc_auc": m.roc_auc(label, p), "pr_auc": m.pr_auc(label, p),
        "coverage": m.interval_coverage(capped, rul_low, rul_high),
        "interval_width": m.interval_width(rul_low, rul_high), "n": float(len(truth)),
    }


def _fit_on_validation(rul_x: np.ndarray, p_x: np.ndarray, rul_l: np.ndarray, p_l: np.ndarray, rul_val: np.ndarray,
                       true_val: np.ndarray, fail_val: np.ndarray, engine_val: np.ndarray, config: TrainConfig,
                       cap: float) -> dict[str, Any]:
    """Blend weights, calibration, conformal intervals and thresholds from validation rows, and their scores.

    `engine_val` numbers the engine of each row, so the intervals are calibrated to cover unseen engines.
    """
    w_rul = fit_blend_weight(rul_x, rul_l, rul_val, "squared")
    w_p = fit_blend_weight(p_x, p_l, fail_val, "logloss")
    rul = np.clip(w_rul * rul_x + (1 - w_rul) * rul_l, 0.0, cap)
    p_raw = w_p * p_x + (1 - w_p) * p_l
    calibrator = Calibrator.fit(p_raw, fail_val)
    p = calibrator.apply(p_raw)
    near = true_val <= config.calibration_horizon
    conformal = Conformal.fit(rul[near], rul_val[near], config.coverage, cap, engines=engine_val[near])
    thresholds = fit_thresholds(p, fail_val, config.medium_ratio)
    low, high = conformal.interval(rul)
    return {"weights": {"rul_xgb": w_rul, "p_xgb": w_p}, "calibrator": calibrator, "conformal": conformal,
            "thresholds": thresholds,
            "scores": score_rows(rul, low, high, p, p >= thresholds["high"], true_val, cap)}


def train(frame: pd.DataFrame, config: TrainConfig | None = None,
          progress: ProgressFn | None = None, fit_xgb: XGBFit | None = None) -> TrainResult:
    """Fit the ensemble on run-to-failure engines of `frame` and return it with validation metrics.

    `fit_xgb` replaces the local XGBoost fit (see :data:`XGBFit`); everything else stays the same.
    """
    config = config or TrainConfig()
    config.validate()
    check_frame(frame)
    started = time.perf_counter()
    emit = progress or (lambda _record: None)
    device = resolve_device(config.device)
    seed_everything(config.seed, device)
    torch.set_num_threads(config.threads or default_threads())
    cap = float(RUL_CAP)
    history: list[dict] = []

    emit({"phase": "features", "message": f"Preparing features on {device.name}"})
    train_mask, val_mask = split_engines(frame, config.val_fraction, config.seed)
    pipeline = FeaturePipeline(lstm_window=config.window, lstm_stats=config.summary_channels())
    pipeline.fit(frame[train_mask])
    prep_tr, prep_val = pipeline.prepare(frame[train_mask]), pipeline.prepare(frame[val_mask])
    offsets = end_of_life_offsets(frame)
    rul_tr, _, fail_tr = prepared_targets(prep_tr, cap, offsets)
    rul_val, true_val, fail_val = prepared_targets(prep_val, cap, offsets)
    rows_tr, rows_val = prep_tr.rows("all"), prep_val.rows("all")
    x_val = pipeline.tree_features(prep_val, rows_val)

    emit({"phase": "xgboost", "epoch": 0, "epochs": config.n_trees, "message": "Training XGBoost"})
    if fit_xgb is None:
        xgb_models, h_xgb = XGBModels.fit(pipeline.tree_features(prep_tr, rows_tr), rul_tr, fail_tr, x_val, rul_val,
                                          fail_val, params=config.xgb_params(), cap=cap, device=device.xgboost,
                                          seed=config.seed, feature_names=pipeline.tree_names, progress=progress)
    else:
        xgb_models, h_xgb = fit_xgb(pipeline, frame.loc[val_mask, ["dataset", "unit"]].drop_duplicates())
    history += h_xgb

    emit({"phase": "lstm", "epoch": 0, "epochs": config.epochs, "message": "Training the LSTM"})
    windows_val = pipeline.windows(prep_val, rows_val)
    lstm_model, h_lstm = fit_lstm(pipeline, prep_tr, rows_tr, rul_tr, fail_tr, windows_val, rul_val, fail_val,
                                  params=config.lstm_params(), cap=cap, device=device.torch, seed=config.seed,
                                  progress=progress)
    history += h_lstm

    emit({"phase": "calibrate", "message": "Fitting blend weights, calibration, intervals and thresholds"})
    rul_x, p_x = xgb_models.predict(x_val)
    rul_l, p_l = lstm_model.predict(windows_val)
    engine_val = pd.factorize(pd.MultiIndex.from_arrays([prep_val.dataset[rows_val], prep_val.unit[rows_val]]))[0]
    fitted = _fit_on_validation(rul_x, p_x, rul_l, p_l, rul_val, true_val, fail_val, engine_val, config, cap)
    metrics = {f"val_{k}": float(v) for k, v in fitted.pop("scores").items()}
    metrics.update({"val_rmse_xgb": m.rmse(rul_val, rul_x), "val_rmse_lstm": m.rmse(rul_val, rul_l),
                    **{f"weight_{k}": float(v) for k, v in fitted["weights"].items()},
                    "train_seconds": time.perf_counter() - started})
    meta = {
        "device": device.to_dict(), "seed": config.seed, "versions": versions(), "config": config.to_dict(),
        "trained_on": {"datasets": sorted(str(d) for d in frame["dataset"].unique()),
                       "train_engines": len(prep_tr.last), "val_engines": len(prep_val.last),
                       "in_service_engines": in_service_engines(frame)},
        "coverage": {"validation": metrics["val_coverage"], "validation_width": metrics["val_interval_width"]},
        "validation": metrics,
    }
    ensemble = Ensemble(pipeline=pipeline, xgb=xgb_models, lstm=lstm_model, meta=meta,
                        experience=ExperienceCheck.fit(pipeline, prep_tr), **fitted)
    emit({"phase": "done", "message": f"Validation RMSE {metrics['val_rmse']:.2f} cycles, "
                                      f"coverage {metrics['val_coverage']:.1%}"})
    return TrainResult(ensemble=ensemble, metrics=metrics, history=history)


def evaluate(ensemble: Ensemble, test_frame: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Metrics at each test engine's last cycle against `truth` (DataFrame[dataset, unit, rul]).

    Besides the blend's metrics, ``rmse_xgb`` and ``rmse_lstm`` score each member alone (capped truth).
    Test engines the ensemble was trained on (an evaluation engine closed by an outcome, :func:`trained_engines`)
    are left out; ``excluded`` counts them and ``n`` the engines scored (only those two keys when none is left).
    """
    missing = [c for c in ("dataset", "unit", "rul") if c not in truth.columns]
    if missing:
        raise UserError(f"The true RUL table lacks the column(s) {', '.join(missing)}.")
    seen = trained_engines(ensemble)
    keys = pd.MultiIndex.from_arrays([test_frame["dataset"].astype(str), test_frame["unit"].astype(int)])
    trained = np.asarray(keys.isin(list(seen))) if seen else np.zeros(len(test_frame), dtype=bool)
    excluded = float(keys[trained].unique().size)
    test_frame = test_frame[~trained]
    if test_frame.empty:
        return {"n": 0.0, "excluded": excluded}
    fs = ensemble.features(test_frame, "last")
    parts = ensemble.components(fs)
    pred = ensemble.predict_features(fs).assign(member_xgb=parts["rul_xgb"].to_numpy(),
                                                member_lstm=parts["rul_lstm"].to_numpy())
    keyed = truth.assign(dataset=truth["dataset"].astype(str), unit=truth["unit"].astype(int))
    merged = pred.assign(unit=pred["unit"].astype(int)).merge(keyed[["dataset", "unit", "rul"]],
                                                              on=["dataset", "unit"], how="left",
                                                              suffixes=("", "_true"))
    if merged["rul_true"].isna().any():
        row = merged[merged["rul_true"].isna()].iloc[0]
        raise UserError(f"No true RUL is given for engine {row['unit']} of {row['dataset']}.")
    true = merged["rul_true"].to_numpy(dtype=float)
    scores = score_rows(merged["rul"].to_numpy(), merged["rul_low"].to_numpy(), merged["rul_high"].to_numpy(),
                        merged["p_fail_30"].to_numpy(), (merged["risk"] == "HIGH").to_numpy(), true, ensemble.cap)
    capped = np.minimum(true, ensemble.cap)
    return {**scores, "rmse_xgb": m.rmse(capped, merged["member_xgb"].to_numpy()),
            "rmse_lstm": m.rmse(capped, merged["member_lstm"].to_numpy()), "excluded": excluded}

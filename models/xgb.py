"""XGBoost models on the tree features: an RUL regressor and a fails-within-horizon classifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xgboost as xgb

from core.errors import UserError

ProgressFn = Callable[[dict], None]


@dataclass(frozen=True)
class XGBParams:
    """Hyper-parameters shared by the regressor and the classifier. The recipe's values, and what each means, are
    :class:`models.training.TrainConfig`'s (build these with ``TrainConfig.xgb_params()``)."""

    n_trees: int
    max_depth: int
    learning_rate: float
    subsample: float
    colsample: float
    min_child_weight: float
    early_stopping: int
    max_bin: int
    threads: int
    """CPU threads (0: let XGBoost use every core)."""


class _Report(xgb.callback.TrainingCallback):
    """Forward evaluation losses to a progress function every `every` rounds."""

    def __init__(self, progress: ProgressFn, label: str, total: int, every: int = 25) -> None:
        super().__init__()
        self.progress, self.label, self.total, self.every = progress, label, total, every

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.total:
            train = next(iter(evals_log["train"].values()))[-1]
            val = next(iter(evals_log["val"].values()))[-1]
            self.progress({"phase": "xgboost", "epoch": epoch + 1, "epochs": self.total,
                           "train_loss": float(train), "val_loss": float(val),
                           "message": f"XGBoost {self.label}: tree {epoch + 1} of at most {self.total}"})
        return False


def _params(p: XGBParams, objective: str, metric: str, device: str, seed: int) -> dict:
    params = {
        "objective": objective, "eval_metric": metric, "tree_method": "hist", "device": device,
        "max_depth": p.max_depth, "eta": p.learning_rate, "subsample": p.subsample,
        "colsample_bytree": p.colsample, "min_child_weight": p.min_child_weight, "max_bin": p.max_bin,
        "seed": seed,
    }
    if p.threads:
        params["nthread"] = p.threads
    return params


def _train(params: dict, p: XGBParams, train: xgb.DMatrix, val: xgb.DMatrix,
           progress: ProgressFn | None, label: str) -> tuple[xgb.Booster, list[dict]]:
    log: dict = {}
    callbacks = [_Report(progress, label, p.n_trees)] if progress else []
    booster = xgb.train(params, train, num_boost_round=p.n_trees, evals=[(train, "train"), (val, "val")],
                        early_stopping_rounds=p.early_stopping, evals_result=log, verbose_eval=False,
                        callbacks=callbacks)
    best = booster.best_iteration + 1
    history = [{"phase": "xgboost", "model": label, "epoch": i + 1,
                "train_loss": float(a), "val_loss": float(b)}
               for i, (a, b) in enumerate(zip(next(iter(log["train"].values())),
                                              next(iter(log["val"].values()))))]
    return booster[:best], history


@dataclass
class XGBModels:
    """The fitted regressor (predicts capped RUL) and classifier (P(fail within horizon))."""

    reg: xgb.Booster
    clf: xgb.Booster
    cap: float

    @classmethod
    def fit(cls, x_train: np.ndarray, rul_train: np.ndarray, fail_train: np.ndarray,
            x_val: np.ndarray, rul_val: np.ndarray, fail_val: np.ndarray, *, params: XGBParams,
            cap: float, device: str, seed: int, feature_names: list[str],
            progress: ProgressFn | None = None) -> tuple[XGBModels, list[dict]]:
        """Train both boosters with early stopping on the validation rows; return them and the loss history."""
        def matrix(x: np.ndarray, y: np.ndarray) -> xgb.DMatrix:
            return xgb.DMatrix(x, label=y, feature_names=feature_names)

        reg, h_reg = _train(_params(params, "reg:squarederror", "rmse", device, seed), params,
                            matrix(x_train, rul_train), matrix(x_val, rul_val), progress, "RUL regressor")
        clf, h_clf = _train(_params(params, "binary:logistic", "logloss", device, seed), params,
                            matrix(x_train, fail_train), matrix(x_val, fail_val), progress, "failure classifier")
        models = cls(reg=reg, clf=clf, cap=cap)
        models.to_cpu(params.threads)
        return models, h_reg + h_clf

    def to_cpu(self, threads: int = 0) -> None:
        """Serve on the CPU (a GPU-trained booster would otherwise try to predict on the GPU).

        `threads` > 0 also fixes the prediction threads.
        """
        for booster in (self.reg, self.clf):
            booster.set_param({"device": "cpu", **({"nthread": threads} if threads else {})})

    def dmatrix(self, x: np.ndarray) -> xgb.DMatrix:
        """A DMatrix of tree features named as the boosters expect (for ``pred_contribs`` SHAP values)."""
        return xgb.DMatrix(x, feature_names=self.reg.feature_names)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(RUL clipped to [0, cap], failure probability) for each row of the tree feature matrix."""
        if x.ndim != 2 or x.shape[1] != self.reg.num_features():
            raise UserError(f"The tree features have shape {x.shape} but the model expects "
                            f"{self.reg.num_features()} columns.")
        rul = np.clip(self.reg.inplace_predict(x), 0.0, self.cap)
        return rul.astype(float), self.clf.inplace_predict(x).astype(float)

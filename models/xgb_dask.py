"""The XGBoost member trained with ``xgboost.dask`` on a Dask cluster, from the Parquet training snapshot.

The workers read the snapshot's ``train.parquet`` with ``dask.dataframe`` (or receive it from this process
when they cannot see its path), shuffle it so that each engine's readings sit in one partition, and compute
the tree features and targets of their partitions with the feature pipeline fitted by
:func:`models.training.train`: every feature of a row depends only on that engine's readings, so they equal
the local ones. Both boosters are then trained by ``xgboost.dask.train`` with the same hyper-parameters, seed
and early stopping on the same validation engines as :meth:`models.xgb.XGBModels.fit`. XGBoost's distributed
histogram merges per-worker quantile sketches and each worker draws its own row subsample, so the trees are
close to, not identical with, a local training's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
import xgboost as xgb
from distributed import Client
from distributed.client import CancelledError, FuturesCancelledError
from xgboost import dask as dxgb

from core.data.features import FeaturePipeline
from core.errors import UserError
from models.training import ProgressFn, end_of_life_offsets, prepared_targets
from models.xgb import XGBModels, XGBParams, _params

VAL_COLUMN = "val"


def _empty_features(names: list[str]) -> pd.DataFrame:
    columns = {name: pd.Series(dtype=np.float32) for name in names}
    return pd.DataFrame({**columns, "rul": pd.Series(dtype=float), "fail": pd.Series(dtype=np.float32),
                         VAL_COLUMN: pd.Series(dtype=bool)})


def partition_features(part: pd.DataFrame, pipeline: FeaturePipeline, val_keys: pd.MultiIndex,
                       cap: float) -> pd.DataFrame:
    """Tree features, capped RUL, failure label and validation flag of every row of whole engines' readings."""
    names = pipeline.tree_names
    if part.empty:
        return _empty_features(names)
    prep = pipeline.prepare(part)
    rul, _, fail = prepared_targets(prep, cap, end_of_life_offsets(part))
    out = pd.DataFrame(pipeline.tree_features(prep, prep.rows("all")), columns=names)
    keys = pd.MultiIndex.from_arrays([prep.dataset.astype(str), prep.unit.astype(int)])
    return out.assign(rul=rul.astype(float), fail=fail.astype(np.float32), **{VAL_COLUMN: keys.isin(val_keys)})


@dataclass(frozen=True)
class DaskXGBFit:
    """A :data:`models.training.XGBFit` that trains both boosters on the cluster behind `client`."""

    client: Client
    train_parquet: Path
    """The snapshot's ``train.parquet``: the same rows :func:`models.training.train` gets."""
    params: XGBParams
    cap: float
    seed: int
    upload: bool = False
    """True: the workers cannot see `train_parquet`, so this process reads it and sends it to them."""
    progress: ProgressFn | None = None

    def _readings(self) -> dd.DataFrame:
        workers = max(len(self.client.nthreads()), 1)
        if self.upload:
            frame = dd.from_pandas(pd.read_parquet(self.train_parquet), npartitions=workers)
        else:
            frame = dd.read_parquet(str(self.train_parquet))
        return frame.shuffle(on=["dataset", "unit"], npartitions=max(frame.npartitions, workers))

    def _emit(self, message: str, **extra: object) -> None:
        if self.progress:
            self.progress({"phase": "xgboost", "message": message, **extra})

    def __call__(self, pipeline: FeaturePipeline, val_engines: pd.DataFrame) -> tuple[XGBModels, list[dict]]:
        """Train the regressor and the classifier on the workers; return them (served on the CPU) and the history.

        UserError when the cluster loses the work or cannot import this project's code.
        """
        try:
            return self._fit(pipeline, val_engines)
        except (CancelledError, FuturesCancelledError, ImportError, OSError) as err:
            raise UserError(f"The Dask cluster could not train the XGBoost member ({type(err).__name__}: "
                            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); its scheduler and workers "
                            "need this project's code and packages (see the README).") from err

    def _fit(self, pipeline: FeaturePipeline, val_engines: pd.DataFrame) -> tuple[XGBModels, list[dict]]:
        val_keys = pd.MultiIndex.from_arrays([val_engines["dataset"].astype(str), val_engines["unit"].astype(int)])
        names = pipeline.tree_names
        features = self._readings().map_partitions(partition_features, pipeline, val_keys, self.cap,
                                                   meta=_empty_features(names))
        features = self.client.persist(features)
        train, val = features[~features[VAL_COLUMN]], features[features[VAL_COLUMN]]
        params = replace(self.params, threads=0)
        boosters, history = {}, []
        for target, objective, metric, label in (("rul", "reg:squarederror", "rmse", "RUL regressor"),
                                                 ("fail", "binary:logistic", "logloss", "failure classifier")):
            self._emit(f"XGBoost {label} on the Dask cluster ({len(self.client.nthreads())} worker(s))")
            d_train = dxgb.DaskDMatrix(self.client, train[names], train[target], feature_names=names)
            d_val = dxgb.DaskDMatrix(self.client, val[names], val[target], feature_names=names)
            out = dxgb.train(self.client, _params(params, objective, metric, "cpu", self.seed), d_train,
                             num_boost_round=params.n_trees, evals=[(d_train, "train"), (d_val, "val")],
                             early_stopping_rounds=params.early_stopping, verbose_eval=False)
            booster: xgb.Booster = out["booster"]
            boosters[target] = booster[:booster.best_iteration + 1]
            losses = zip(out["history"]["train"][metric], out["history"]["val"][metric], strict=True)
            history += [{"phase": "xgboost", "model": label, "epoch": i + 1, "train_loss": float(a),
                         "val_loss": float(b)} for i, (a, b) in enumerate(losses)]
            self._emit(f"XGBoost {label}: {booster.best_iteration + 1} trees kept",
                       epoch=booster.best_iteration + 1, epochs=params.n_trees,
                       train_loss=history[-1]["train_loss"], val_loss=history[-1]["val_loss"])
        models = XGBModels(reg=boosters["rul"], clf=boosters["fail"], cap=self.cap)
        models.to_cpu(self.params.threads)
        return models, history

"""Scoring engines with a registered model: one record per engine at its last cycle."""

from __future__ import annotations

import pandas as pd

from core.data import queries, store, writes
from core.operations import registry
from models.bundle import load_bundle
from models.ensemble import Ensemble

PREDICTION_COLUMNS = ["dataset", "unit", "cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk", "ood", "ood_reason"]


def load_model(model: str | int | None = "champion") -> tuple[int, Ensemble]:
    """Resolve ``model`` (a version, ``champion`` or ``challenger``) and load its bundle."""
    version = registry.resolve(model)
    return version, load_bundle(registry.bundle_dir(version))


def fleet_frame(names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Readings of ``names`` (with a ``dataset`` column) and their true RUL where known."""
    with store.connect(read_only=True) as con:
        rows = queries.readings_many(con, names)
        truth = [queries.rul_truth(con, name).assign(dataset=name) for name in names]
    truth_frame = pd.concat(truth, ignore_index=True) if truth else pd.DataFrame(columns=["unit", "rul", "dataset"])
    return rows, truth_frame.rename(columns={"rul": "true_rul"})


def score(ensemble: Ensemble, rows: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Predictions at each engine's last cycle, with ``true_rul`` where the truth is known."""
    predictions = ensemble.predict_last(rows)[PREDICTION_COLUMNS]
    if truth.empty:
        return predictions.assign(true_rul=float("nan"))
    return predictions.merge(truth[["dataset", "unit", "true_rul"]], on=["dataset", "unit"], how="left")


def record(predictions: pd.DataFrame, version: int) -> None:
    """Write predictions to the audit trail (``predictions`` table), one dataset at a time."""
    with store.connect() as con:
        for name, part in predictions.groupby("dataset"):
            writes.insert_predictions(con, str(name), part, str(version))

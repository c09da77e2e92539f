"""Prediction drift: has the model's output changed between a reference and the current data?

The serving model predicts the RUL at every cycle of both frames; the PSI of the two predicted-RUL
samples (bins from the reference's quantiles, see :func:`core.monitoring.drift.prediction_drift`) is the
prediction drift. Large frames are cut to a seeded sample of whole engines first, so a comparison
stays a few seconds on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.monitoring import statistics

if TYPE_CHECKING:  # imported for type hints only: models.ensemble pulls in torch
    from models.ensemble import Ensemble

MAX_ROWS = 12_000
"""Rows per side scored for prediction drift; more rows are cut to a sample of whole engines."""


@dataclass(frozen=True)
class PredictionDrift:
    """The PSI of predicted RUL and the two predicted samples it was computed from."""

    result: statistics.DriftResult
    reference_rul: np.ndarray
    current_rul: np.ndarray
    model_version: int | None


def sample_engines(frame: pd.DataFrame, max_rows: int = MAX_ROWS, seed: int = 0) -> pd.DataFrame:
    """``frame`` itself if it has at most ``max_rows`` rows, else a seeded sample of whole engines.

    Engines are (dataset, unit) when a ``dataset`` column is present, else units. At least one
    engine is always kept.
    """
    if len(frame) <= max_rows:
        return frame
    keys = ["dataset", "unit"] if "dataset" in frame.columns else ["unit"]
    keep = choose_engines(frame.groupby(keys, sort=True).size(), max_rows, seed)
    chosen = frame.set_index(keys).index.isin(keep)
    return frame[chosen]


def choose_engines(sizes: pd.Series, max_rows: int, seed: int = 0) -> pd.Index:
    """A seeded sample of the engines in ``sizes`` (engine key -> readings, sorted by key) holding at most
    ``max_rows`` readings together (at least one engine is always chosen)."""
    order = np.random.default_rng(seed).permutation(len(sizes))
    cumulative = sizes.iloc[order].cumsum().to_numpy()
    return sizes.index[order[: max(1, int(np.searchsorted(cumulative, max_rows, side="right")))]]


def predicted_rul(ensemble: Ensemble, frame: pd.DataFrame, label: str = "current") -> np.ndarray:
    """The ensemble's predicted RUL at every cycle of ``frame`` (a ``dataset`` column is added if absent)."""
    rows = frame if "dataset" in frame.columns else frame.assign(dataset=label)
    return ensemble.predict_cycles(rows)["rul"].to_numpy(dtype=float)


def measure(
    ensemble: Ensemble,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    threshold: float = statistics.Thresholds.prediction_psi,
    model_version: int | None = None,
    max_rows: int = MAX_ROWS,
) -> PredictionDrift:
    """Score both frames (sampled to ``max_rows`` rows each) and return the PSI of predicted RUL."""
    reference_rul = predicted_rul(ensemble, sample_engines(reference, max_rows), "reference")
    current_rul = predicted_rul(ensemble, sample_engines(current, max_rows), "current")
    result = statistics.prediction_drift(reference_rul, current_rul, threshold)
    return PredictionDrift(result, reference_rul, current_rul, model_version)

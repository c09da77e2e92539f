"""Drift of a whole frame: per-feature drift tables (raw or regime-normalised), the drift share, and live
error where the truth is known.

A feature counts as *drifted* when it reaches the alert level of the chosen statistic; the drift share
is the fraction of the *informative* compared features that drifted: a feature near-constant in the
reference (e.g. sensor_1 in FD001) has no scale to drift on and is reported but not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import duckdb
import numpy as np
import pandas as pd

from core.data import queries
from core.data.cmapss import FAIL_HORIZON, RUL_CAP, SENSORS
from core.errors import UserError
from core.monitoring.prediction_drift import choose_engines
from core.monitoring.regimes import normalise_by_regime, require_columns, sorted_near_constant
from core.monitoring.statistics import Level, SortedPair, Thresholds, check_method, level, sample_array

# Reading one side --------------------------------------------------------------------------

MAX_SIDE_ROWS = 65_000
"""Readings per side a comparison reads: a larger side is cut to a seeded sample of whole engines. Every NASA
file (the largest, train_FD004, has 61,249 readings) is compared whole."""


@dataclass(frozen=True)
class Sample:
    """How much of one side a comparison read: every reading, or a seeded sample of whole engines."""

    engines: int
    readings: int
    total_engines: int
    total_readings: int
    seed: int

    @property
    def sampled(self) -> bool:
        """True when only part of the side was read."""
        return self.engines < self.total_engines

    def describe(self) -> str:
        """e.g. '325 of 20,000 engines (64,980 of 3,558,202 readings)', or 'all 100 engines (20,631 readings)'."""
        if not self.sampled:
            return f"all {self.total_engines:,} engines ({self.total_readings:,} readings)"
        return (f"{self.engines:,} of {self.total_engines:,} engines ({self.readings:,} of {self.total_readings:,} "
                "readings)")

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return {**asdict(self), "sampled": self.sampled}


def read_side(con: duckdb.DuckDBPyConnection, names: Sequence[str], max_rows: int = MAX_SIDE_ROWS,
              seed: int = 0) -> tuple[pd.DataFrame, Sample]:
    """The readings of the datasets ``names`` (with a ``dataset`` column), whole when they hold at most
    ``max_rows`` readings together, else of a seeded sample of whole engines (chosen in DuckDB from the
    per-engine counts, so only the chosen engines' rows are read), and what was read."""
    parts = [queries.engines(con, name).assign(dataset=name) for name in names]
    sizes = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dataset", "unit", "readings"])
    counts = sizes[sizes["readings"] > 0].set_index(["dataset", "unit"])["readings"].sort_index()
    total = int(counts.sum())
    if total <= max_rows:
        frame = queries.readings_many(con, list(names))
        return frame, Sample(len(counts), len(frame), len(counts), total, seed)
    keep = choose_engines(counts, max_rows, seed)
    datasets, units = keep.get_level_values(0), keep.get_level_values(1)
    frame = pd.concat([queries.readings_of_engines(con, name, sorted(units[datasets == name]))
                       for name in names if (datasets == name).any()], ignore_index=True)
    return frame, Sample(len(keep), len(frame), len(counts), total, seed)


# Comparing frames ----------------------------------------------------------------------------


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str] | None = None,
    method: str = "psi",
    normalise: bool = False,
    thresholds: Thresholds | None = None,
) -> pd.DataFrame:
    """Per-feature drift of ``current`` against ``reference``.

    Returns one row per feature: ``feature, psi, ks, ks_p_value, wasserstein, drifted, level,
    informative``; ``level`` and ``drifted`` (= level ``alert``) come from ``method`` and its
    thresholds; ``informative`` is False for a feature near-constant in the reference (in the view
    compared), which the drift share leaves out. With
    ``normalise`` the features are first z-scored per operating regime (:func:`normalise_by_regime`).
    """
    check_method(method)
    limits = thresholds or Thresholds()
    names = list(features) if features is not None else list(SENSORS)
    if not names:
        raise UserError("No features were given to compare.")
    require_columns(reference, names, "reference")
    require_columns(current, names, "current")
    if normalise:
        reference, current, _ = normalise_by_regime(reference, current, names)
    return drift_table(reference, current, names, method, limits)


TABLE_COLUMNS: tuple[str, ...] = (
    "feature", "psi", "ks", "ks_p_value", "wasserstein", "drifted", "level", "informative"
)


def drift_table(
    reference: pd.DataFrame, current: pd.DataFrame, names: list[str], method: str, limits: Thresholds
) -> pd.DataFrame:
    """The per-feature drift table of two frames already in the view to compare."""
    warn, alert = limits.levels(method)
    rows = []
    for name in names:
        pair = SortedPair.of(reference[name].to_numpy(dtype=float), current[name].to_numpy(dtype=float))
        ks_score, ks_p_value = pair.ks()
        scores = {"psi": pair.psi(), "ks": ks_score, "wasserstein": pair.wasserstein()}
        feature_level = level(scores[method], warn, alert)
        rows.append(
            {
                "feature": name,
                "psi": scores["psi"],
                "ks": scores["ks"],
                "ks_p_value": ks_p_value,
                "wasserstein": scores["wasserstein"],
                "drifted": feature_level == "alert",
                "level": feature_level,
                "informative": not sorted_near_constant(pair.reference),
            }
        )
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS])


def drift_share(table: pd.DataFrame) -> float:
    """Fraction of the informative compared features that drifted (reached the alert threshold)."""
    informative = table[table["informative"]]
    if informative.empty:
        raise UserError("None of the compared features varies in the reference, so there is no drift share.")
    return float(informative["drifted"].mean())


def worst_level(table: pd.DataFrame) -> Level:
    """The highest level among the informative features of a drift table."""
    levels = set(table.loc[table["informative"], "level"])
    return "alert" if "alert" in levels else "warn" if "warn" in levels else "none"


# Live error ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveError:
    """Accuracy on a window where the truth is known.

    ``f2`` is None when the window has no actual and no predicted failure (F2 is undefined).
    """

    n: int
    rmse: float
    f2: float | None
    horizon: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def live_error(
    true_rul: object,
    predicted_rul: object,
    p_fail: object | None = None,
    p_threshold: float = 0.5,
    horizon: int = FAIL_HORIZON,
    cap: int | None = RUL_CAP,
) -> LiveError:
    """RMSE of predicted RUL and F2 of the 'fails within ``horizon`` cycles' call on one window.

    The truth is capped at ``cap`` for the RMSE, like the training target. An engine truly fails
    within the horizon when its true RUL is ``<= horizon``; it is predicted to when ``p_fail >=
    p_threshold`` or, without probabilities, when its predicted RUL is ``<= horizon``.
    """
    truth = sample_array(true_rul, "true RUL")
    predicted = sample_array(predicted_rul, "predicted RUL")
    if truth.size != predicted.size:
        raise UserError(f"Got {truth.size} true RUL values but {predicted.size} predictions.")
    capped = np.minimum(truth, cap) if cap is not None else truth
    rmse = float(np.sqrt(np.mean((predicted - capped) ** 2)))
    actual = truth <= horizon
    if p_fail is None:
        called = predicted <= horizon
    else:
        probs = sample_array(p_fail, "failure probability")
        if probs.size != truth.size:
            raise UserError(f"Got {truth.size} true RUL values but {probs.size} failure probabilities.")
        called = probs >= p_threshold
    tp = int(np.sum(actual & called))
    fp = int(np.sum(~actual & called))
    fn = int(np.sum(actual & ~called))
    denominator = 5 * tp + 4 * fn + fp
    f2 = 5 * tp / denominator if denominator else None
    return LiveError(n=int(truth.size), rmse=rmse, f2=f2, horizon=horizon)


# Verdict -------------------------------------------------------------------------------------


def match_life_stage(reference: pd.DataFrame, current: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """``reference`` with each engine cut at an age drawn from the current engines' ages (seeded).

    In-service engines are observed only up to their present age, while training engines run to
    failure, so their late, degraded cycles would read as drift that is only a difference in life
    stage. Cutting every reference engine at the last cycle of a randomly drawn current engine (never
    beyond its own end) compares engines at comparable ages. Engines are (dataset, unit) where a
    ``dataset`` column is present, else units.
    """
    keys = ["dataset", "unit"] if "dataset" in reference.columns else ["unit"]
    current_keys = ["dataset", "unit"] if "dataset" in current.columns else ["unit"]
    ages = current.groupby(current_keys, sort=False)["cycle"].max().to_numpy()
    if reference.empty or ages.size == 0:
        return reference
    engines = reference.groupby(keys, sort=False).ngroup().to_numpy()
    cuts = np.random.default_rng(seed).choice(ages, size=int(engines.max()) + 1)
    return reference[reference["cycle"].to_numpy() <= cuts[engines]]

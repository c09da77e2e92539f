"""Operating-regime normalisation for drift, in a small self-contained form: settings rounded to a grid,
sensors z-scored per regime with the reference's statistics.

It is independent of the training-side feature pipeline on purpose: drift must be measurable without a
model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from core.data.cmapss import SETTINGS
from core.errors import UserError

SETTING_RESOLUTION: tuple[float, float, float] = (1.0, 0.01, 1.0)
"""Grid the three settings are rounded to when finding operating conditions (altitude kft, Mach, TRA)."""
MAX_REGIMES = 12
"""More rounded setting groups than this in the reference means the settings are not discrete regimes."""
NEAR_CONSTANT_SHARE = 0.95
"""A feature whose most common reference value covers this share of rows is near-constant (uninformative)."""


# Operating conditions ------------------------------------------------------------------------


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"The {what} data lacks the column(s) {', '.join(missing)}.")
    if frame.empty:
        raise UserError(f"The {what} data has no rows.")


def condition_keys(frame: pd.DataFrame) -> np.ndarray:
    """Each row's operating condition: its three settings rounded to ``SETTING_RESOLUTION`` (int grid)."""
    settings = frame[SETTINGS].to_numpy(dtype=float)
    return np.rint(settings / np.asarray(SETTING_RESOLUTION)).astype(np.int64)


def count_operating_conditions(frame: pd.DataFrame) -> int:
    """How many distinct operating conditions (rounded setting groups) a frame runs at."""
    require_columns(frame, SETTINGS, "given")
    return int(np.unique(condition_keys(frame), axis=0).shape[0])


@dataclass(frozen=True)
class RegimeSummary:
    """What regime normalisation found: conditions per frame and those new to the current data."""

    reference_conditions: int
    current_conditions: int
    unseen_conditions: int
    unseen_rows: int

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def sorted_near_constant(values: np.ndarray, share: float = NEAR_CONSTANT_SHARE) -> bool:
    """True when the most common value of a sorted sample covers at least ``share`` of it (the longest run of
    equal values is the mode's count)."""
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1], [True])))
    return bool(np.diff(starts).max() >= share * values.size)


def _moments(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations; a constant column gets its exact value and std 0."""
    mean = block.mean(axis=0)
    std = block.std(axis=0)
    constant = block.max(axis=0) == block.min(axis=0)
    mean[constant] = block[0, constant]
    std[constant] = 0.0
    return mean, std


def _zscore(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(values - mean) / std`` with a zero std replaced by 1 (a constant sensor is only centred)."""
    return (values - mean) / np.where(std > 0, std, 1.0)


def normalise_by_regime(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, RegimeSummary]:
    """Z-score ``features`` per operating regime, with regimes and statistics fitted on the reference.

    Regimes are the reference's rounded setting groups. A current row joins the nearest reference
    regime when its settings lie within one grid step of that regime's mean settings (on every
    setting); rows further away belong to conditions the reference never saw. Those are grouped
    by their own rounded settings and centred on their own statistics, so for them only the
    shape of the distribution is compared, not its level. A constant sensor (std 0) is only centred.
    Returns the normalised copies (features only) and a summary.
    """
    require_columns(reference, [*SETTINGS, *features], "reference")
    require_columns(current, [*SETTINGS, *features], "current")
    ref_keys = condition_keys(reference)
    regimes, ref_regime = np.unique(ref_keys, axis=0, return_inverse=True)
    ref_regime = ref_regime.ravel()
    if regimes.shape[0] > MAX_REGIMES:
        raise UserError(
            f"The reference's settings form {regimes.shape[0]} groups, more than {MAX_REGIMES}, "
            "so they are not discrete operating conditions and regime normalisation does not apply."
        )
    ref_values = reference[features].to_numpy(dtype=float)
    ref_settings = reference[SETTINGS].to_numpy(dtype=float)
    resolution = np.asarray(SETTING_RESOLUTION)
    ref_out = np.empty_like(ref_values)
    centres = np.empty((regimes.shape[0], len(SETTINGS)))
    means = np.empty((regimes.shape[0], len(features)))
    stds = np.empty_like(means)
    for i in range(regimes.shape[0]):
        rows = ref_regime == i
        centres[i] = ref_settings[rows].mean(axis=0)
        means[i], stds[i] = _moments(ref_values[rows])
        ref_out[rows] = _zscore(ref_values[rows], means[i], stds[i])

    cur_values = current[features].to_numpy(dtype=float)
    cur_settings = current[SETTINGS].to_numpy(dtype=float)
    steps = np.abs(cur_settings[:, None, :] - centres[None, :, :]) / resolution
    distance = steps.max(axis=2)
    nearest = distance.argmin(axis=1)
    seen = distance[np.arange(nearest.size), nearest] <= 1.0
    cur_out = np.empty_like(cur_values)
    for i in np.unique(nearest[seen]):
        rows = seen & (nearest == i)
        cur_out[rows] = _zscore(cur_values[rows], means[i], stds[i])
    unseen_keys = condition_keys(current)[~seen]
    new_regimes, new_regime = np.unique(unseen_keys, axis=0, return_inverse=True)
    unseen_values = cur_values[~seen]
    unseen_out = np.empty_like(unseen_values)
    for j in range(new_regimes.shape[0]):
        rows = new_regime.ravel() == j
        block = unseen_values[rows]
        unseen_out[rows] = _zscore(block, *_moments(block))
    cur_out[~seen] = unseen_out

    summary = RegimeSummary(
        reference_conditions=int(regimes.shape[0]),
        current_conditions=count_operating_conditions(current),
        unseen_conditions=int(new_regimes.shape[0]),
        unseen_rows=int((~seen).sum()),
    )
    return (
        pd.DataFrame(ref_out, columns=features, index=reference.index),
        pd.DataFrame(cur_out, columns=features, index=current.index),
        summary,
    )

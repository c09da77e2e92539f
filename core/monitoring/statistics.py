"""Drift statistics, each a pure function ``(reference, current, threshold) -> DriftResult``.

A result is *drifted* when its score reaches the threshold (``score >= threshold``). Per feature, a score
below the warn threshold is level ``none``, from warn up to the alert threshold ``warn``, and from the
alert threshold on ``alert``. Thresholds for each statistic and for retraining live in :class:`Thresholds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from core.errors import UserError

Level = Literal["none", "warn", "alert"]
VerdictLevel = Literal["none", "warn", "alert", "retrain"]

METHODS: tuple[str, ...] = ("psi", "ks", "wasserstein")
DEFAULT_BINS = 10
EPSILON = 1e-4
"""Floor for a bin's share in PSI, so an empty bin gives a large but finite term."""


@dataclass(frozen=True)
class DriftResult:
    """One statistic's verdict on one feature: ``drifted`` is ``score >= threshold``.

    ``p_value`` is informational only (KS): on thousands of rows it is ~0 for tiny shifts.
    """

    method: str
    score: float
    drifted: bool
    threshold: float
    p_value: float | None = None

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


@dataclass(frozen=True)
class Thresholds:
    """Warn/alert thresholds per statistic, and when to recommend retraining.

    Retraining is recommended when the drift share is *above* ``share`` or the prediction PSI is
    *above* ``prediction_psi``. The KS and Wasserstein defaults are heuristics of this project
    (Wasserstein is in units of the reference's standard deviation).
    """

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    ks_warn: float = 0.1
    ks_alert: float = 0.2
    wasserstein_warn: float = 0.1
    wasserstein_alert: float = 0.25
    share: float = 0.3
    prediction_psi: float = 0.25

    def __post_init__(self) -> None:
        for method in METHODS:
            warn, alert = self.levels(method)
            if not (np.isfinite(warn) and np.isfinite(alert)) or warn < 0 or alert < warn:
                raise UserError(
                    f"The {method} thresholds must satisfy 0 <= warn <= alert; got warn {warn} and alert {alert}."
                )
        if not 0 <= self.share <= 1:
            raise UserError(f"The drift-share threshold must be between 0 and 1; got {self.share}.")
        if not (np.isfinite(self.prediction_psi) and self.prediction_psi >= 0):
            raise UserError(f"The prediction-PSI threshold must be a non-negative number; got {self.prediction_psi}.")

    def levels(self, method: str) -> tuple[float, float]:
        """``(warn, alert)`` for a statistic."""
        check_method(method)
        return getattr(self, f"{method}_warn"), getattr(self, f"{method}_alert")

    def with_levels(self, method: str, warn: float | None = None, alert: float | None = None) -> Thresholds:
        """A copy with the warn and/or alert threshold of ``method`` replaced."""
        current_warn, current_alert = self.levels(method)
        values = asdict(self)
        values[f"{method}_warn"] = current_warn if warn is None else warn
        values[f"{method}_alert"] = current_alert if alert is None else alert
        return Thresholds(**values)

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise UserError(f"Unknown drift method '{method}'; choose one of {', '.join(METHODS)}.")


def sample_array(values: object, what: str) -> np.ndarray:
    """``values`` as a 1-D float array, refusing empty, non-numeric or non-finite input."""
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as err:
        raise UserError(f"The {what} sample must be numeric ({err}).") from err
    if array.size == 0:
        raise UserError(f"The {what} sample is empty, so drift cannot be measured.")
    if not np.all(np.isfinite(array)):
        raise UserError(f"The {what} sample contains NaN or infinite values.")
    return array


def psi_bin_shares(
    reference: np.ndarray, current: np.ndarray, bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Shares of ``reference`` and ``current`` per bin, bins cut at the reference's quantiles.

    Bins are right-closed, ``(edge[i-1], edge[i]]``, open-ended at both sides; tied quantiles
    collapse into one edge, so a discrete reference gets fewer bins. A constant reference ``c``
    gets the degenerate bins ``x < c``, ``x == c``, ``x > c``: any departure from ``c`` counts.
    """
    if bins < 2:
        raise UserError(f"PSI needs at least 2 bins; got {bins}.")
    low, high = reference.min(), reference.max()
    if low == high:
        ref_idx = np.ones(reference.size, dtype=int)
        cur_idx = np.where(current < low, 0, np.where(current > low, 2, 1))
        n_bins = 3
    else:
        edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
        ref_idx = np.searchsorted(edges, reference, side="left")
        cur_idx = np.searchsorted(edges, current, side="left")
        n_bins = edges.size + 1
    ref_share = np.bincount(ref_idx, minlength=n_bins) / reference.size
    cur_share = np.bincount(cur_idx, minlength=n_bins) / current.size
    return ref_share, cur_share


def psi(
    reference: object,
    current: object,
    threshold: float = 0.25,
    bins: int = DEFAULT_BINS,
    epsilon: float = EPSILON,
) -> DriftResult:
    """Population stability index, ``sum((c - r) * ln(c / r))`` over reference-quantile bins.

    Shares are floored at ``epsilon`` (not renormalised) so empty bins stay finite.
    """
    ref = sample_array(reference, "reference")
    cur = sample_array(current, "current")
    ref_share, cur_share = psi_bin_shares(ref, cur, bins)
    r = np.maximum(ref_share, epsilon)
    c = np.maximum(cur_share, epsilon)
    score = float(np.sum((c - r) * np.log(c / r)))
    return DriftResult("psi", score, score >= threshold, threshold)


def ks(reference: object, current: object, threshold: float = 0.2) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov statistic (``scipy.stats.ks_2samp``); judged on the statistic.

    The p-value is the asymptotic one (the exact one is slow on thousands of rows and, like any
    p-value on large samples, ~0 for tiny shifts), kept as information only.
    """
    ref = sample_array(reference, "reference")
    cur = sample_array(current, "current")
    from scipy import stats  # imported here: scipy.stats takes seconds to import, and the CLI lists this module

    test = stats.ks_2samp(ref, cur, method="asymp")
    score = float(test.statistic)
    return DriftResult("ks", score, score >= threshold, threshold, p_value=float(test.pvalue))


def wasserstein(reference: object, current: object, threshold: float = 0.25, normalise: bool = True) -> DriftResult:
    """Earth mover's distance (``scipy.stats.wasserstein_distance``).

    With ``normalise`` it is divided by the reference's standard deviation, so thresholds are in
    reference standard deviations; a constant reference has no scale and keeps the raw distance.
    """
    ref = sample_array(reference, "reference")
    cur = sample_array(current, "current")
    from scipy import stats

    score = float(stats.wasserstein_distance(ref, cur))
    scale = float(ref.std())
    if normalise and scale > 0:
        score /= scale
    return DriftResult("wasserstein", score, score >= threshold, threshold)


def level(score: float, warn: float, alert: float) -> Level:
    """``alert`` from ``alert`` up, ``warn`` from ``warn`` up, else ``none``."""
    if score >= alert:
        return "alert"
    if score >= warn:
        return "warn"
    return "none"


def prediction_drift(reference_rul: object, current_rul: object, threshold: float = 0.25) -> DriftResult:
    """Prediction drift: PSI of the predicted RUL of the current window against the reference's."""
    return psi(reference_rul, current_rul, threshold)

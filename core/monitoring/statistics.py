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


class SortedPair:
    """A reference and a current sample, each sorted once; PSI, KS and Wasserstein all read them.

    Every statistic gives the same number as on the unsorted samples (PSI bins from the reference's
    quantiles, scipy's ``ks_2samp`` asymptotic statistic and p-value, scipy's ``wasserstein_distance``):
    sorting once instead of in each statistic is what keeps a comparison of many features fast.
    """

    def __init__(self, reference: np.ndarray, current: np.ndarray) -> None:
        self.reference = np.sort(reference)
        self.current = np.sort(current)
        self.reference_std = float(reference.std())
        self._cdfs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, reference: object, current: object) -> SortedPair:
        """Validate both samples (see :func:`sample_array`) and sort them."""
        return cls(sample_array(reference, "reference"), sample_array(current, "current"))

    def psi_shares(self, bins: int = DEFAULT_BINS) -> tuple[np.ndarray, np.ndarray]:
        """Shares of the reference and the current sample per bin, bins cut at the reference's quantiles.

        Bins are right-closed, ``(edge[i-1], edge[i]]``, open-ended at both sides; tied quantiles
        collapse into one edge, so a discrete reference gets fewer bins. A constant reference ``c``
        gets the degenerate bins ``x < c``, ``x == c``, ``x > c``: any departure from ``c`` counts.
        """
        if bins < 2:
            raise UserError(f"PSI needs at least 2 bins; got {bins}.")
        ref, cur = self.reference, self.current
        low, high = ref[0], ref[-1]
        if low == high:
            edges = np.array([np.nextafter(low, -np.inf), low])
        else:
            edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))

        def shares(values: np.ndarray) -> np.ndarray:
            at_or_below = np.searchsorted(values, edges, side="right")
            return np.diff(np.concatenate(([0], at_or_below, [values.size]))) / values.size

        return shares(ref), shares(cur)

    def psi(self, bins: int = DEFAULT_BINS, epsilon: float = EPSILON) -> float:
        """Population stability index, ``sum((c - r) * ln(c / r))``, shares floored at ``epsilon``."""
        ref_share, cur_share = self.psi_shares(bins)
        r = np.maximum(ref_share, epsilon)
        c = np.maximum(cur_share, epsilon)
        return float(np.sum((c - r) * np.log(c / r)))

    def cdfs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(both samples merged and sorted, the reference's and the current's empirical CDF at each of them)."""
        if self._cdfs is None:
            ref, cur = self.reference, self.current
            both = np.concatenate([ref, cur])
            both.sort(kind="mergesort")
            self._cdfs = (both, np.searchsorted(ref, both, side="right") / ref.size,
                          np.searchsorted(cur, both, side="right") / cur.size)
        return self._cdfs

    def ks(self) -> tuple[float, float]:
        """(statistic, asymptotic p-value) of the two-sample Kolmogorov-Smirnov test, as scipy computes them."""
        from scipy import stats  # imported here: scipy.stats takes seconds to import, and the CLI lists this module

        _, ref_cdf, cur_cdf = self.cdfs()
        diffs = ref_cdf - cur_cdf
        statistic = max(float(diffs.max()), float(np.clip(-diffs.min(), 0, 1)))
        m, n = sorted([float(self.reference.size), float(self.current.size)], reverse=True)
        p_value = float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
        return statistic, p_value

    def wasserstein(self, normalise: bool = True) -> float:
        """Earth mover's distance; with ``normalise`` divided by the reference's standard deviation (if not 0)."""
        both, ref_cdf, cur_cdf = self.cdfs()
        score = float(np.dot(np.abs(ref_cdf[:-1] - cur_cdf[:-1]), np.diff(both)))
        if normalise and self.reference_std > 0:
            score /= self.reference_std
        return score


def psi_bin_shares(
    reference: np.ndarray, current: np.ndarray, bins: int = DEFAULT_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Shares of ``reference`` and ``current`` per bin (see :meth:`SortedPair.psi_shares`)."""
    return SortedPair(np.asarray(reference, dtype=float), np.asarray(current, dtype=float)).psi_shares(bins)


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
    score = SortedPair.of(reference, current).psi(bins, epsilon)
    return DriftResult("psi", score, score >= threshold, threshold)


def ks(reference: object, current: object, threshold: float = 0.2) -> DriftResult:
    """Two-sample Kolmogorov-Smirnov statistic (as ``scipy.stats.ks_2samp``); judged on the statistic.

    The p-value is the asymptotic one (the exact one is slow on thousands of rows and, like any
    p-value on large samples, ~0 for tiny shifts), kept as information only.
    """
    score, p_value = SortedPair.of(reference, current).ks()
    return DriftResult("ks", score, score >= threshold, threshold, p_value=p_value)


def wasserstein(reference: object, current: object, threshold: float = 0.25, normalise: bool = True) -> DriftResult:
    """Earth mover's distance (as ``scipy.stats.wasserstein_distance``).

    With ``normalise`` it is divided by the reference's standard deviation, so thresholds are in
    reference standard deviations; a constant reference has no scale and keeps the raw distance.
    """
    score = SortedPair.of(reference, current).wasserstein(normalise)
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
